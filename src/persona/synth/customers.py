"""Synthetic customers: the ground truth and the plan the simulator follows for each one.

Each customer gets its own `random.Random`, seeded from (workload seed, customer index).
That makes a customer independent of block size and of how many customers come before or
after it, and lets `Workload.customers()` rebuild the ground truth without simulating any
events. The plan draws latent traits first (tastes, price sensitivity, propensity to buy),
then the session schedule, then which device each session happens on.
"""

from __future__ import annotations

import math
import random
import unicodedata
from bisect import bisect
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate

from persona.synth.catalog import Catalog
from persona.synth.ids import MS_PER_DAY, MS_PER_HOUR, documentation_ip, from_ms, uuid4_from
from persona.synth.vocab import (
    CITIES,
    DEVICE_MODELS,
    FIRST_NAMES,
    HOURLY_WEIGHTS,
    LAST_NAMES,
    City,
    DeviceModel,
)

_HOUR_CUM = list(accumulate(HOURLY_WEIGHTS))
_CITY_CUM = list(accumulate(c.weight for c in CITIES))
_DEVICE_CUM = list(accumulate(d.weight for d in DEVICE_MODELS))
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_PLANS = ("free", "free", "free", "plus", "plus", "premium")

SIGNUP_RATE = 0.68  # share of customers who ever create an account
LAPSE_RATE = 0.22  # share who stop visiting well before the window ends
MIN_SESSION_GAP_MS = 2 * MS_PER_HOUR  # sessions never overlap, so identify order is clean
LAPSE_QUIET_MS = 14 * MS_PER_DAY  # a lapsed customer is silent for at least the last two weeks
MAX_SESSIONS = 60


@dataclass(frozen=True, slots=True)
class Customer:
    """Ground truth for one synthetic customer, for checking identity resolution and profiles."""

    index: int
    user_id: str | None  # "u-000042"; None if the customer never signs up
    email: str | None
    anonymous_ids: list[str]  # one per device, same order as `devices`
    devices: list[str]  # context.device.id of each device
    signs_up: bool
    lapses: bool
    favorite_categories: list[str]  # "Department > Subcategory" groups, strongest first
    price_sensitivity: float  # 0 = indifferent to price, 1 = always hunts the cheaper option
    first_name: str = ""
    last_name: str = ""
    city: str = ""
    country: str = ""
    first_seen: datetime | None = None  # start of the first session
    lapsed_at: datetime | None = None  # no sessions start after this (refunds may still arrive)
    sessions: int = 0  # planned sessions, all of which fall inside the window


@dataclass(slots=True)
class Device:
    """One browser or app install; `anonymous_id` is what its Segment library persists."""

    id: str
    anonymous_id: str
    model: DeviceModel
    ip: str
    logged_in: bool = False


@dataclass(slots=True)
class CustomerPlan:
    """Everything the simulator needs for one customer, drawn before any event."""

    customer: Customer
    devices: list[Device]
    sessions: list[tuple[int, int]]  # (start in epoch ms, device index), time-ordered
    signup_session: int | None  # index into `sessions`, or None for anonymous-only customers
    tastes: list[str]  # favorite groups
    taste_cum: list[float]  # cumulative taste weights over `tastes`
    focus: float  # chance a browse follows tastes rather than the shop's popularity
    buy_propensity: float  # multiplier on add-to-cart and checkout chances
    depth: float  # mean number of browse actions per session
    city: City
    plan_tier: str


def plan_customer(seed: int, index: int, catalog: Catalog, start_ms: int, end_ms: int,
                  ) -> tuple[CustomerPlan, random.Random]:
    """Draw customer `index`; returns the plan and its RNG, positioned for event simulation."""
    rng = random.Random(f"persona.synth:{seed}:{index}")
    first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
    last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
    city = CITIES[bisect(_CITY_CUM, rng.random() * _CITY_CUM[-1])]
    signs_up = rng.random() < SIGNUP_RATE
    sensitivity = round(rng.betavariate(2.0, 2.5), 4)
    tastes = _draw_tastes(rng, catalog)
    taste_cum = list(accumulate((0.6, 0.25, 0.15)[: len(tastes)]))
    focus = 0.55 + 0.35 * rng.random()
    buy_propensity = rng.lognormvariate(0.0, 0.55)
    depth = 0.3 + 1.3 * rng.random()
    plan_tier = _PLANS[rng.randrange(len(_PLANS))]
    domain = _EMAIL_DOMAINS[rng.randrange(len(_EMAIL_DOMAINS))]
    # Most signed-up shoppers use one device; a third use two, some three (phone, laptop, tablet).
    roll = rng.random()
    wanted_devices = 1 if not signs_up or roll < 0.55 else (2 if roll < 0.88 else 3)

    lapses = rng.random() < LAPSE_RATE
    times, lapse_ms = _schedule(rng, start_ms, end_ms, city.utc_offset_hours, lapses)
    lapses = lapse_ms is not None
    signup_session: int | None = None
    if signs_up:
        # Some sign up on their first visit, most after browsing anonymously for a while.
        k = (0, 0, 1, 1, 1, 2, 2, 3, 4, 5)[rng.randrange(10)]
        signup_session = min(k, len(times) - 1)
    after = len(times) - 1 - signup_session if signup_session is not None else 0
    n_devices = min(wanted_devices, 1 + after)

    devices = [_make_device(rng, None)]
    for _ in range(n_devices - 1):
        devices.append(_make_device(rng, {d.model for d in devices}))
    assignment = _assign_devices(rng, len(times), signup_session, n_devices)

    customer = Customer(
        index=index,
        user_id=f"u-{index:06d}" if signs_up else None,
        email=_email(first, last, index, domain) if signs_up else None,
        anonymous_ids=[d.anonymous_id for d in devices],
        devices=[d.id for d in devices],
        signs_up=signs_up,
        lapses=lapses,
        favorite_categories=tastes,
        price_sensitivity=sensitivity,
        first_name=first,
        last_name=last,
        city=city.name,
        country=city.country,
        first_seen=from_ms(times[0]),
        lapsed_at=from_ms(lapse_ms) if lapse_ms is not None else None,
        sessions=len(times),
    )
    plan = CustomerPlan(
        customer=customer, devices=devices, sessions=list(zip(times, assignment, strict=True)),
        signup_session=signup_session, tastes=tastes, taste_cum=taste_cum, focus=focus,
        buy_propensity=buy_propensity, depth=depth, city=city,
        plan_tier=plan_tier,
    )
    return plan, rng


def _draw_tastes(rng: random.Random, catalog: Catalog) -> list[str]:
    """One to three distinct favorite groups, popular groups being more likely favorites."""
    wanted = min((1, 2, 2, 3)[rng.randrange(4)], len(catalog.groups))
    tastes: list[str] = []
    for _ in range(wanted * 4):  # rejection sampling; the bound keeps tiny catalogs terminating
        group = catalog.pick_group(rng)
        if group not in tastes:
            tastes.append(group)
            if len(tastes) == wanted:
                break
    return tastes


def _schedule(rng: random.Random, start_ms: int, end_ms: int, utc_offset_hours: int,
              lapses: bool) -> tuple[list[int], int | None]:
    """Session start times: an arrival, then bursty gaps, at plausible local hours."""
    window = end_ms - start_ms
    last_start = end_ms - MIN_SESSION_GAP_MS  # sessions finish inside the window
    # A third are existing customers seen in the first days; the rest arrive over time.
    if rng.random() < 0.35:
        arrival = start_ms + int(rng.random() * min(window, 4 * MS_PER_DAY))
    else:
        arrival = start_ms + int(rng.random() * window * 0.85)
    first = min(_at_local_hour(rng, arrival, utc_offset_hours, start_ms), last_start)
    first = max(first, start_ms)
    limit = last_start
    lapse_ms: int | None = None
    if lapses and first + 2 * MS_PER_DAY < end_ms - LAPSE_QUIET_MS:
        # Lapsers keep coming for a few days to a few weeks, then go quiet for good.
        lapse_ms = min(first + int((2 + rng.expovariate(1 / 10)) * MS_PER_DAY), end_ms - LAPSE_QUIET_MS)
        limit = lapse_ms
    mean_gap_days = min(max(rng.lognormvariate(math.log(21.0), 0.9), 1.5), 60.0)
    times = [first]
    t = first
    while len(times) < MAX_SESSIONS:
        if rng.random() < 0.12:  # come back later the same day
            t += MIN_SESSION_GAP_MS + int(rng.random() * 6 * MS_PER_HOUR)
        else:
            t = _at_local_hour(rng, t + int(rng.expovariate(1 / mean_gap_days) * MS_PER_DAY),
                               utc_offset_hours, start_ms)
            t = max(t, times[-1] + MIN_SESSION_GAP_MS)
        if t >= limit:
            break
        times.append(t)
    return times, lapse_ms


def _at_local_hour(rng: random.Random, moment: int, utc_offset_hours: int, origin: int) -> int:
    """Move `moment` to a diurnally likely time on the same local calendar day."""
    offset = utc_offset_hours * MS_PER_HOUR
    local_midnight = (moment + offset) // MS_PER_DAY * MS_PER_DAY - offset
    hour = bisect(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
    at = local_midnight + hour * MS_PER_HOUR + int(rng.random() * MS_PER_HOUR)
    return at if at >= origin else at + MS_PER_DAY  # never before the window opens


def _make_device(rng: random.Random, taken: set[DeviceModel] | None) -> Device:
    model = DEVICE_MODELS[bisect(_DEVICE_CUM, rng.random() * _DEVICE_CUM[-1])]
    while taken and model in taken:  # a second device is a different kind of device
        model = DEVICE_MODELS[bisect(_DEVICE_CUM, rng.random() * _DEVICE_CUM[-1])]
    device_id = uuid4_from(rng)
    if model.type == "ios":
        device_id = device_id.upper()  # identifierForVendor is upper case
    return Device(id=device_id, anonymous_id=uuid4_from(rng), model=model, ip=documentation_ip(rng))


def _assign_devices(rng: random.Random, n_sessions: int, signup_session: int | None,
                    n_devices: int) -> list[int]:
    """Which device each session uses.

    The sign-up session is on device 0. Every other device is guaranteed a session after
    sign-up (where the shopper logs in), so each anonymousId ends up linked to the userId;
    it may also have anonymous sessions before sign-up.
    """
    assignment = [0] * n_sessions
    if n_devices == 1 or signup_session is None:
        return assignment
    guaranteed = rng.sample(range(signup_session + 1, n_sessions), n_devices - 1)
    for device, slot in enumerate(guaranteed, start=1):
        assignment[slot] = device
    for s in range(n_sessions):
        if s == signup_session or s in guaranteed or rng.random() < 0.55:
            continue
        assignment[s] = rng.randrange(1, n_devices)
    return assignment


def _email(first: str, last: str, index: int, domain: str) -> str:
    """`olivia.smith42@example.com`, ASCII-folded; reserved example domains only."""
    raw = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    local = "".join(ch for ch in raw.lower() if ch.isalnum() or ch == ".")
    return f"{local}{index}@{domain}"
