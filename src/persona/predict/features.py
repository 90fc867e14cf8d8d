"""Features for the churn and propensity classifiers, computed as of a cut-off so training never
sees the future; the same code makes them for training (past cut-offs) and scoring (now).

One pass over the folded log (`personas/features.py` reads it: every event counts for the
profile it belongs to now) keeps each behavioral event as a row of flat arrays; a cut-off then
takes the rows before it. Features are the personas' (recency, orders, revenue, order value,
sessions and their length, product views per session, orders per add to cart, discount share,
device and category mix) and these:

| feature | what |
|---|---|
| `tenure_days` | days from the customer's first event to the cut-off |
| `days_between_orders` | mean gap between consecutive orders (missing with fewer than 2) |
| `events_30d`, `orders_90d` | activity just before the cut-off |
| `activity_trend` | events in the 30 days before the cut-off per 30 days of the 60 before those |
| `category_breadth` | distinct top-level categories viewed |

Labels come from the rows in [cut-off, cut-off + horizon): whether the customer ordered, whether
they did anything at all. A row at or after the cut-off never reaches a feature.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from persona.log.store import EventLog
from persona.personas.features import (
    DAY_US,
    ORDERED,
    VIEWED,
    Column,
    CustomerFeatures,
    EventArrays,
    features_of,
)
from persona.profiles.history import folded_rows
from persona.profiles.sql import SQLStateStore
from persona.segments.stage import SYSTEM_SOURCE

EXTRA = [
    Column("tenure_days", "days since first seen", "count"),
    Column("days_between_orders", "days between orders", "count"),
    Column("events_30d", "events in the last 30 days", "count"),
    Column("orders_90d", "orders in the last 90 days", "count"),
    Column("activity_trend", "last 30 days' events per 30 days of the 60 before", "ratio"),
    Column("category_breadth", "categories viewed", "count"),
]


@dataclass(frozen=True)
class Events:
    """Every behavioral event read, as arrays (see `personas/features.EventArrays`)."""

    arrays: EventArrays
    until: int  # µs: nothing at or after this was read


def read_events(log: EventLog, state: SQLStateStore, until: int,
                progress: Callable[[int], object] | None = None) -> Events:
    """One pass over the folded log: the behavioral events stamped before `until`."""
    arrays, read = EventArrays(), 0
    for batch in folded_rows(log, state):
        for pid, (_, source, kind, name, timestamp, body) in batch:
            if source != SYSTEM_SOURCE and timestamp < until:
                arrays.add(pid, timestamp, name if kind == "track" else None, body)
        read += len(batch)
        if progress is not None:
            progress(read)
    return Events(arrays, until)


def before(events: Events, cutoff: int) -> EventArrays:
    """The rows stamped before `cutoff`, sharing the customers', devices' and categories' codes."""
    a = events.arrays
    keep = np.frombuffer(a.timestamp, dtype=np.int64) < cutoff
    out = EventArrays()
    out.customers, out.devices, out.categories = a.customers, a.devices, a.categories
    for name, code, dtype in (("customer", "q", np.int64), ("timestamp", "q", np.int64), ("kind", "b", np.int8),
                              ("device", "i", np.int32), ("category", "i", np.int32), ("discounted", "b", np.int8),
                              ("amount", "d", np.float64)):
        column = array(code)
        column.frombytes(np.frombuffer(getattr(a, name), dtype=dtype)[keep].tobytes())
        setattr(out, name, column)
    return out


def features_as_of(events: Events, cutoff: int) -> CustomerFeatures:
    """Every customer with an event before `cutoff`, their features from those events alone."""
    rows = before(events, cutoff)
    base = features_of(rows, None, cutoff, None, 1)
    wanted = np.asarray([rows.customers[pid] for pid in base.customers], dtype=np.int64)
    extra = _extras(rows, cutoff, len(rows.customers))[wanted]
    return CustomerFeatures(base.customers, [*base.columns, *EXTRA], np.column_stack([base.values, extra]),
                            base.left_out, base.events, None, cutoff, cutoff)


def _extras(a: EventArrays, cutoff: int, n: int) -> np.ndarray:
    customer = np.frombuffer(a.customer, dtype=np.int64)
    timestamp = np.frombuffer(a.timestamp, dtype=np.int64)
    kind = np.frombuffer(a.kind, dtype=np.int8)
    category = np.frombuffer(a.category, dtype=np.int32)
    age = (cutoff - timestamp) / DAY_US

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(customer[mask], minlength=n).astype(np.float64)

    first = np.full(n, np.inf)
    np.minimum.at(first, customer, timestamp.astype(np.float64))
    tenure = np.where(np.isfinite(first), (cutoff - first) / DAY_US, 0.0)
    ordered = kind == ORDERED
    orders = count(ordered)
    span = np.zeros(n)
    if ordered.any():
        last_order = np.full(n, -np.inf)
        first_order = np.full(n, np.inf)
        np.maximum.at(last_order, customer[ordered], timestamp[ordered].astype(np.float64))
        np.minimum.at(first_order, customer[ordered], timestamp[ordered].astype(np.float64))
        span = np.where(orders >= 2, (last_order - first_order) / DAY_US, 0.0)
    between = np.where(orders >= 2, span / np.maximum(orders - 1, 1), np.nan)  # missing: the trees handle it
    recent = count(age < 30)
    earlier = count((age >= 30) & (age < 90))
    trend = (recent + 1) / (earlier / 2 + 1)
    viewed = (kind == VIEWED) & (category >= 0)
    pairs = np.unique(customer[viewed] * (len(a.categories) + 1) + category[viewed])
    breadth = np.bincount(pairs // (len(a.categories) + 1), minlength=n).astype(np.float64)
    return np.column_stack([tenure, between, recent, count(ordered & (age < 90)), trend, breadth])


def labels(events: Events, customers: list[str], start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """For each customer: whether they ordered, and whether they did anything, in [start, end)."""
    a = events.arrays
    customer = np.frombuffer(a.customer, dtype=np.int64)
    timestamp = np.frombuffer(a.timestamp, dtype=np.int64)
    kind = np.frombuffer(a.kind, dtype=np.int8)
    inside = (timestamp >= start) & (timestamp < end)
    n = len(a.customers)
    ordered = np.bincount(customer[inside & (kind == ORDERED)], minlength=n) > 0
    active = np.bincount(customer[inside], minlength=n) > 0
    rows = np.asarray([a.customers[pid] for pid in customers], dtype=np.int64)
    return ordered[rows], active[rows]


def aligned(features: CustomerFeatures, names: list[str]) -> np.ndarray:
    """The feature matrix with `names`' columns in that order (a device or category column the
    window lacks is 0): what a model trained on another window reads."""
    own = {c.name: i for i, c in enumerate(features.columns)}
    out = np.zeros((len(features.customers), len(names)))
    for j, name in enumerate(names):
        if name in own:
            out[:, j] = features.values[:, own[name]]
    return out
