"""Behavioral features per customer, engineered from the log, for clustering personas.

Every folded event (`profiles/history.folded_rows`) counts for the profile it belongs to
now, so a customer's devices and merged-in anonymous visits count together. Only what the
features read is decoded from each body (category, coupon, revenue, device type), into
flat arrays; the features are then computed with numpy:

| feature | what |
|---|---|
| `recency_days` | days from the customer's last event to `as_of` |
| `orders`, `revenue`, `avg_order_value` | `Order Completed` events; their `revenue` (else `total`): sum, mean |
| `sessions` | visits: events split wherever 30 minutes pass without one |
| `session_minutes` | mean time from the first to the last event of a visit |
| `views_per_session` | `Product Viewed` per visit |
| `cart_to_order` | orders per `Product Added` (at most 1; 0 with no adds) |
| `discount_share` | share of orders with a `coupon` or a `discount` above 0 |
| `device=<type>` | share of the customer's events from each `context.device.type` (the most common few) |
| `category=<department>` | share of `Product Viewed` per top-level `category` ("Outdoor > Hiking": Outdoor) |

A customer with no order has no order value, discount share or (with no add to cart) cart
conversion: they get the average of the customers who have one, so that these features
tell buyers apart from each other, while `orders` and `revenue` tell them from non-buyers.
Customers with fewer than `min_events` events in the window are left out (and counted).
Segment Entered/Exited announcements (source `persona`) are not behavior and are skipped.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from persona.log.store import EventLog
from persona.profiles.history import folded_rows
from persona.profiles.profile import ORDER_COMPLETED
from persona.profiles.sql import SQLStateStore
from persona.segments.stage import SYSTEM_SOURCE

SESSION_GAP_US = 30 * 60 * 1_000_000
DAY_US = 86_400 * 1_000_000
MAX_DEVICES = 6      # device types kept as features, the most common first
MAX_CATEGORIES = 8   # top-level categories kept as features

VIEWED, ADDED, ORDERED, OTHER = 0, 1, 2, 3
_KINDS = {"Product Viewed": VIEWED, "Product Added": ADDED, ORDER_COMPLETED: ORDERED}


@dataclass(frozen=True)
class Column:
    name: str        # "orders", "device=mobile", "category=Outdoor"
    label: str       # in plain words: "orders", "events on mobile", "views of Outdoor"
    kind: str        # "count" (heavy-tailed: log1p before scaling), "share" (0..1) or "ratio"
    block: str = ""  # columns of one mix (device, category) share a block


BEHAVIOR = [
    Column("recency_days", "days since last seen", "count"),
    Column("orders", "orders", "count"),
    Column("revenue", "revenue", "count"),
    Column("avg_order_value", "average order value", "count"),
    Column("sessions", "sessions", "count"),
    Column("session_minutes", "minutes per session", "count"),
    Column("views_per_session", "product views per session", "count"),
    Column("cart_to_order", "orders per add to cart", "ratio"),
    Column("discount_share", "share of orders with a discount", "share"),
]


@dataclass
class CustomerFeatures:
    customers: list[str]          # profile (root) ids, one per row
    columns: list[Column]
    values: np.ndarray            # (customers, columns), raw (not yet transformed) values
    left_out: int                 # customers active in the window with fewer than min_events events
    events: int                   # events read in the window
    since: int | None             # µs, the window
    until: int | None
    as_of: int                    # µs: recency is counted to here

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names().index(name)]


# What the features read of a body, the rest skipped over. gc=False: millions are decoded per pass
# and none can be in a cycle, so the collector need not track them.
class _Device(msgspec.Struct, gc=False):
    type: Any = None


class _Context(msgspec.Struct, gc=False):
    device: _Device | None = None


class _Properties(msgspec.Struct, gc=False):
    category: Any = None
    coupon: Any = None
    discount: Any = None
    revenue: Any = None
    total: Any = None


class _Body(msgspec.Struct, gc=False):
    properties: _Properties | None = None
    context: _Context | None = None


_NO_PROPERTIES = _Properties()
_decode_view = msgspec.json.Decoder(_Body).decode
_decode_full = msgspec.json.Decoder().decode


def _decode(raw: bytes) -> _Body:
    try:
        return _decode_view(raw)
    except msgspec.ValidationError:  # an unusual shape (a string device, say): take what fits
        whole = _decode_full(raw)
        props, context = whole.get("properties"), whole.get("context")
        props = props if isinstance(props, dict) else {}
        device = context.get("device") if isinstance(context, dict) else None
        return _Body(_Properties(**{f: props.get(f) for f in _Properties.__struct_fields__}),
                     _Context(_Device(device.get("type") if isinstance(device, dict) else None)))


_NUMBERS = (int, float)


def _number(value: Any) -> bool:
    return isinstance(value, _NUMBERS) and not isinstance(value, bool) and abs(value) < 1e15


class EventArrays:
    """One entry per event, as flat typed arrays (16 bytes or so an event)."""

    def __init__(self) -> None:
        self.customer = array("q")
        self.timestamp = array("q")
        self.kind = array("b")
        self.device = array("i")
        self.category = array("i")
        self.discounted = array("b")
        self.amount = array("d")
        self.customers: dict[str, int] = {}
        self.devices: dict[str, int] = {}
        self.categories: dict[str, int] = {}
        self._category_codes: dict[str, int] = {}  # "Outdoor > Hiking" -> the code of Outdoor

    def add(self, pid: str, timestamp: int, name: str | None, raw: bytes) -> None:
        """One event: its profile (root), time, track event name (None for other calls), stored body."""
        body = _decode(raw)
        props = body.properties or _NO_PROPERTIES
        context = body.context
        device = context.device.type if context is not None and context.device is not None else None
        kind = _KINDS.get(name or "", OTHER)
        discounted, amount, category = 0, 0.0, -1
        if kind == VIEWED and isinstance(props.category, str) and props.category:
            category = self._category(props.category)
        elif kind == ORDERED:
            coupon, discount = props.coupon, props.discount
            discounted = int(bool(coupon) or (_number(discount) and discount > 0))
            value = props.revenue
            if not _number(value):
                value = props.total
            amount = float(value) if _number(value) else 0.0
        self.customer.append(self.customers.setdefault(pid, len(self.customers)))
        self.timestamp.append(timestamp)
        self.kind.append(kind)
        self.device.append(self.devices.setdefault(device, len(self.devices)) if isinstance(device, str) else -1)
        self.category.append(category)
        self.discounted.append(discounted)
        self.amount.append(amount)

    def _category(self, category: str) -> int:
        code = self._category_codes.get(category)
        if code is None:
            top = category.split(">", 1)[0].strip()
            code = self._category_codes[category] = self.categories.setdefault(top, len(self.categories))
        return code


def extract_features(log: EventLog, state: SQLStateStore, *, since: int | None = None, until: int | None = None,
                     now: int | None = None, min_events: int = 2,
                     progress: Callable[[int], object] | None = None) -> CustomerFeatures:
    """Features of every customer with at least `min_events` events in [since, until) (µs, None: open).

    Recency counts to `until`, or with no end to the window, to `now` or the newest event if
    that is later (future-dated, e.g. synthetic, data); `progress` gets events read so far."""
    arrays = EventArrays()
    read = 0
    for batch in folded_rows(log, state):
        for pid, (_, source, kind, name, timestamp, body) in batch:
            if source == SYSTEM_SOURCE:
                continue
            if (since is not None and timestamp < since) or (until is not None and timestamp >= until):
                continue
            arrays.add(pid, timestamp, name if kind == "track" else None, body)
        read += len(batch)
        if progress is not None:
            progress(read)
    return features_of(arrays, since, until, now, min_events)


def features_of(a: EventArrays, since: int | None, until: int | None, now: int | None,
              min_events: int) -> CustomerFeatures:
    customer = np.frombuffer(a.customer, dtype=np.int64)
    timestamp = np.frombuffer(a.timestamp, dtype=np.int64)
    kind = np.frombuffer(a.kind, dtype=np.int8)
    device = np.frombuffer(a.device, dtype=np.int32)
    category = np.frombuffer(a.category, dtype=np.int32)
    n = len(a.customers)
    newest = int(timestamp.max()) if len(timestamp) else 0
    as_of = until if until is not None else max(now or 0, newest)

    def per_customer(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(customer, weights=weights, minlength=n).astype(np.float64)

    events = per_customer()
    views = per_customer(kind == VIEWED)
    adds = per_customer(kind == ADDED)
    orders = per_customer(kind == ORDERED)
    discounted = per_customer(np.frombuffer(a.discounted, dtype=np.int8))
    revenue = per_customer(np.frombuffer(a.amount, dtype=np.float64))
    sessions, session_minutes, last_seen = _sessions(customer, timestamp, n)

    columns = list(BEHAVIOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = [
            np.maximum(0.0, (as_of - last_seen) / DAY_US),
            orders,
            revenue,
            np.where(orders > 0, revenue / orders, 0.0),
            sessions,
            session_minutes,
            views / np.maximum(sessions, 1),
            np.where(adds > 0, np.minimum(1.0, orders / adds), 0.0),
            np.where(orders > 0, discounted / orders, 0.0),
        ]
    for block, codes, names, label in (("device", device, a.devices, "events on {}"),
                                       ("category", category, a.categories, "product views in {}")):
        limit = MAX_DEVICES if block == "device" else MAX_CATEGORIES
        known = codes >= 0
        totals = np.bincount(codes[known], minlength=len(names))
        per = np.bincount(customer[known], minlength=n).astype(np.float64)
        for name, code in sorted(names.items(), key=lambda item: (-totals[item[1]], item[0]))[:limit]:
            mine = per_customer(codes == code)
            values.append(np.where(per > 0, mine / np.maximum(per, 1), 0.0))
            columns.append(Column(f"{block}={name}", label.format(name), "share", block))

    matrix = np.column_stack(values) if n else np.zeros((0, len(columns)))
    keep = events >= min_events
    for name, undefined in (("avg_order_value", orders == 0), ("discount_share", orders == 0),
                            ("cart_to_order", adds == 0)):
        _fill_with_mean(matrix[:, [c.name for c in columns].index(name)], undefined, keep)
    ids = list(a.customers)
    return CustomerFeatures(customers=[ids[i] for i in np.flatnonzero(keep)], columns=columns,
                            values=matrix[keep], left_out=int((~keep).sum()), events=len(customer),
                            since=since, until=until, as_of=as_of)


def _fill_with_mean(column: np.ndarray, undefined: np.ndarray, keep: np.ndarray) -> None:
    """Where the feature means nothing, the mean of the customers kept for whom it does (0 if none)."""
    defined = keep & ~undefined
    column[undefined] = column[defined].mean() if defined.any() else 0.0


def _sessions(customer: np.ndarray, timestamp: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: visits (30-minute gaps), their mean length in minutes, and the last event's time."""
    if not len(customer):
        return np.zeros(n), np.zeros(n), np.zeros(n)
    order = np.lexsort((timestamp, customer))
    c, t = customer[order], timestamp[order]
    starts = np.ones(len(c), dtype=bool)
    starts[1:] = (c[1:] != c[:-1]) | (t[1:] - t[:-1] > SESSION_GAP_US)
    ends = np.ones(len(c), dtype=bool)
    ends[:-1] = starts[1:]
    owner = c[starts]
    minutes = (t[ends] - t[starts]) / 60e6
    sessions = np.bincount(owner, minlength=n).astype(np.float64)
    mean_minutes = np.bincount(owner, weights=minutes, minlength=n) / np.maximum(sessions, 1)
    last = np.ones(len(c), dtype=bool)  # each customer's last event, in time order
    last[:-1] = c[1:] != c[:-1]
    last_seen = np.zeros(n)
    last_seen[c[last]] = t[last]
    return sessions, mean_minutes, last_seen
