"""Shoppers of four planted, clearly different behaviors, for testing that personas find them.

| group | device | views | sessions | orders |
|---|---|---|---|---|
| bargain | mobile | Apparel | many, short | small, nearly always with a coupon |
| big_spender | desktop | Electronics | few | big, every visit, no coupon |
| window_shopper | tablet | Home & Kitchen | many, long, many views | none (adds to cart, never buys) |
| lapsed | ios | Books | one or two, in the first `LAPSED_DAYS` days only | one |

Device and category are only the usual ones (`USUAL` of sessions and views), so that no
single mix gives the groups away.
"""

from __future__ import annotations

import random
from typing import Any

from persona.log.events import Event
from tests.support.events import event

GROUPS = ("bargain", "big_spender", "window_shopper", "lapsed")
DAY = 24 * 60  # minutes
LAPSED_DAYS = 10
USUAL = 0.7
DEVICES = ("mobile", "desktop", "tablet", "ios")
CATEGORIES = ("Apparel > Women > Dresses", "Electronics > Audio > Headphones", "Home & Kitchen > Cookware > Pans",
              "Books > Fiction > Crime")


def planted_stream(seed: int, per_group: int, days: int = 60) -> tuple[list[Event], dict[str, str]]:
    """Events of `per_group` shoppers of each group over `days` from tests.support.events.BASE;
    and each shopper's group, by user id."""
    rng = random.Random(seed)
    events: list[Event] = []
    truth: dict[str, str] = {}
    for group in GROUPS:
        for i in range(per_group):
            user = f"{group}-{i}"
            truth[user] = group
            events += _shopper(rng, group, user, days)
    return events, truth


def _shopper(rng: random.Random, group: str, user: str, days: int) -> list[Event]:
    usual = GROUPS.index(group)
    sessions, views, order_chance = {
        "bargain": (rng.randint(8, 12), (1, 3), 0.8),
        "big_spender": (rng.randint(2, 4), (2, 4), 1.0),
        "window_shopper": (rng.randint(6, 9), (8, 14), 0.0),
        "lapsed": (rng.randint(1, 2), (2, 4), 1.0),
    }[group]
    span = LAPSED_DAYS if group == "lapsed" else days
    out: list[Event] = []
    ordered = False
    for start in sorted(rng.uniform(0, span * DAY - 120) for _ in range(sessions)):
        minute = start
        context: dict[str, Any] = {"device": {"type": _usually(rng, DEVICES, usual)}}
        gap = (3.0, 6.0) if group == "window_shopper" else (0.3, 1.0)  # window shoppers linger
        for _ in range(rng.randint(*views)):
            out.append(event("track", user=user, minutes=minute, event="Product Viewed", context=context,
                             properties={"category": _usually(rng, CATEGORIES, usual), "price": 20}))
            minute += rng.uniform(*gap)
        out.append(event("track", user=user, minutes=minute, event="Product Added", context=context,
                         properties={"category": CATEGORIES[usual], "price": 20}))
        minute += rng.uniform(*gap)
        if rng.random() < order_chance and not (group == "lapsed" and ordered):
            properties: dict[str, Any] = {"revenue": round(_amount(rng, group), 2), "order_id": f"o-{user}-{minute}"}
            if group == "bargain" and rng.random() < 0.9:
                properties.update(coupon="FALL15", discount=3.0)
            out.append(event("track", user=user, minutes=minute, event="Order Completed", context=context,
                             properties=properties))
            ordered = True
    return out


def _usually(rng: random.Random, options: tuple[str, ...], usual: int) -> str:
    return options[usual] if rng.random() < USUAL else rng.choice(options)


def _amount(rng: random.Random, group: str) -> float:
    low, high = {"bargain": (15, 40), "big_spender": (300, 700), "lapsed": (30, 60)}.get(group, (10, 20))
    return rng.uniform(low, high)
