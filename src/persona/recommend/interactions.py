"""Who interacted with which product, how strongly and when: what every model trains on.

Interactions come from the folded log (`profiles.history.folded_events`), so an event counts
for the profile it belongs to now. Segment's e-commerce events: `Product Viewed`, `Product
Clicked`, `Product Added` (product_id or sku), each line of `Order Completed` `products[]`,
and `Product Reviewed` with a `rating`. Each is weighted by its kind and decayed by its age
relative to `now` (half of its weight every `half_life_days`). A rating weighs
`per_star * (rating - neutral_rating)`, so a poor review counts against the item.

The result is a set of parallel numpy arrays, one entry per interaction, plus the user and
item vocabularies the indices refer to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from persona.log.events import Event
from persona.log.store import EventLog
from persona.profiles.history import folded_events
from persona.profiles.sql import SQLStateStore
from persona.recommend.settings import InteractionWeights

VIEW, CLICK, ADD, PURCHASE, RATING = range(5)
KIND_NAMES = ("view", "click", "add", "purchase", "rating")
PRODUCT_EVENTS = {"Product Viewed": VIEW, "Product Clicked": CLICK, "Product Added": ADD}
ORDER_EVENT = "Order Completed"
REVIEW_EVENT = "Product Reviewed"
MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass
class Interactions:
    """One entry per interaction; `basket` numbers the order an order line came from (-1 otherwise)."""

    users: np.ndarray       # int32, index into user_ids
    items: np.ndarray       # int32, index into item_ids
    weights: np.ndarray     # float32, by kind, decayed by age
    timestamps: np.ndarray  # int64, microseconds since the epoch
    kinds: np.ndarray       # int8, VIEW .. RATING
    baskets: np.ndarray     # int32
    user_ids: list[str]
    item_ids: list[str]
    now: int                # microseconds; what the ages were measured from

    def __len__(self) -> int:
        return len(self.users)

    def matrix(self) -> sp.csr_matrix:
        """Users x items, the decayed weights summed."""
        shape = (len(self.user_ids), len(self.item_ids))
        return sp.csr_matrix((self.weights.astype(np.float64), (self.users, self.items)), shape=shape)


@dataclass
class _Collector:
    weights: InteractionWeights
    now: int
    user_index: dict[str, int] = field(default_factory=dict)
    item_index: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[int, int, float, int, int, int]] = field(default_factory=list)
    orders: int = 0

    def add(self, root: str, event: Event) -> None:
        if event.type != "track" or not event.name:
            return
        properties = event.body.get("properties")
        if not isinstance(properties, dict):
            return
        if event.name in PRODUCT_EVENTS:
            self._row(root, properties, PRODUCT_EVENTS[event.name], 1.0, event.timestamp, -1)
        elif event.name == ORDER_EVENT:
            lines = properties.get("products")
            if isinstance(lines, list):
                basket = self.orders
                self.orders += 1
                for line in lines:
                    if isinstance(line, dict):
                        self._row(root, line, PURCHASE, 1.0, event.timestamp, basket)
        elif event.name == REVIEW_EVENT:
            rating = properties.get("rating")
            if isinstance(rating, int | float) and not isinstance(rating, bool):
                self._row(root, properties, RATING, float(rating) - self.weights.neutral_rating, event.timestamp, -1)

    def _row(self, root: str, product: dict[str, Any], kind: int, scale: float, timestamp: int, basket: int) -> None:
        item_id = product.get("product_id") or product.get("sku")
        if not isinstance(item_id, str | int) or isinstance(item_id, bool) or item_id == "":
            return
        item = self.item_index.setdefault(str(item_id), len(self.item_index))
        user = self.user_index.setdefault(root, len(self.user_index))
        age_days = max(0, self.now - timestamp) / MICROS_PER_DAY
        weight = self.weights.of_kind(kind) * scale * 0.5 ** (age_days / self.weights.half_life_days)
        self.rows.append((user, item, weight, timestamp, kind, basket))

    def result(self) -> Interactions:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * 6
        return Interactions(
            users=np.asarray(columns[0], dtype=np.int32), items=np.asarray(columns[1], dtype=np.int32),
            weights=np.asarray(columns[2], dtype=np.float32), timestamps=np.asarray(columns[3], dtype=np.int64),
            kinds=np.asarray(columns[4], dtype=np.int8), baskets=np.asarray(columns[5], dtype=np.int32),
            user_ids=list(self.user_index), item_ids=list(self.item_index), now=self.now)


def interactions_from(pairs: Iterable[tuple[str, Event]], now: int,
                      weights: InteractionWeights | None = None, items: Iterable[str] = (),
                      before: int | None = None) -> Interactions:
    """Interactions from (profile root, event) pairs; `items` seeds the item vocabulary (the catalog's
    ids, so items nobody touched yet still have an index). With `before` (microseconds), events at
    or after it are left out: training for an offline evaluation must not see the test period."""
    collector = _Collector(weights or InteractionWeights(), now)
    for item_id in items:
        collector.item_index.setdefault(item_id, len(collector.item_index))
    for root, event in pairs:
        if before is None or event.timestamp < before:
            collector.add(root, event)
    return collector.result()


def collect_interactions(log: EventLog, state: SQLStateStore, now: int, weights: InteractionWeights | None = None,
                         items: Iterable[str] = (), progress: Callable[[int], object] | None = None,
                         before: int | None = None) -> Interactions:
    """Interactions from the whole folded log (or its events before `before`); `progress(events
    read)` after each batch."""
    def pairs() -> Iterable[tuple[str, Event]]:
        for batch in folded_events(log, state):
            yield from batch
            if progress is not None:
                progress(len(batch))

    return interactions_from(pairs(), now, weights, items, before)
