"""A trained set of models, what serving reads: the item index, each user's history as of
training, and the baseline models; saved as one `np.savez` archive (no pickle) plus a JSON summary.

`train` builds one from the log and the catalog. A user's recommendations are the learned blend
of every base model (`blend.py`): its weights are tuned on the last `validation_days` of the
training period with the models fitted on what came before, then the models are refitted on the
whole period. Someone unknown gets popular and trending items only. Similar items come from
co-views first, then from the catalog (content-based: how a new item finds neighbours), then
from what is popular in the item's category.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from persona.catalog.items import Item
from persona.catalog.store import CatalogStore
from persona.errors import NotFound
from persona.log.store import EventLog
from persona.profiles.sql import SQLStateStore
from persona.recommend.blend import CANDIDATES, DEFAULT_WEIGHTS, MODELS, LearnedWeights, candidates, learn_weights, rank
from persona.recommend.content import ContentBased
from persona.recommend.interactions import (
    MICROS_PER_DAY,
    PURCHASE,
    Interactions,
    InteractionWeights,
    collect_interactions,
)
from persona.recommend.metrics import relevant_items
from persona.recommend.models import (
    AlsoViewed,
    BoughtTogether,
    ItemIndex,
    Model,
    Popularity,
    Scored,
    Trending,
    UserHistory,
    cold_start,
)


@dataclass
class UserHistories:
    """Per user (a profile root at training time): items most recent first, decayed weights, purchases
    (and when each item was last bought, µs; absent from a set saved before it was kept)."""

    user_ids: list[str]
    indptr: np.ndarray     # int64, len(user_ids) + 1
    items: np.ndarray      # int32
    weights: np.ndarray    # float32
    purchased: np.ndarray  # bool
    purchased_at: np.ndarray | None = None  # int64, the latest purchase; meaningless where not purchased

    @classmethod
    def of(cls, interactions: Interactions) -> UserHistories:
        n = len(interactions)
        # One row per (user, item): summed weight, latest timestamp, whether it was bought.
        keys = interactions.users.astype(np.int64) * max(1, len(interactions.item_ids)) + interactions.items
        unique, inverse = np.unique(keys, return_inverse=True)
        weight = np.bincount(inverse, weights=interactions.weights, minlength=len(unique))
        latest = np.full(len(unique), np.iinfo(np.int64).min)
        np.maximum.at(latest, inverse, interactions.timestamps)
        bought = np.zeros(len(unique), dtype=bool)
        bought[inverse[interactions.kinds == PURCHASE]] = True
        bought_at = np.full(len(unique), np.iinfo(np.int64).min)
        purchases = interactions.kinds == PURCHASE
        np.maximum.at(bought_at, inverse[purchases], interactions.timestamps[purchases])
        users = (unique // max(1, len(interactions.item_ids))).astype(np.int64) if n else np.zeros(0, np.int64)
        items = (unique % max(1, len(interactions.item_ids))).astype(np.int32) if n else np.zeros(0, np.int32)
        order = np.lexsort((-latest, users))  # by user, then most recent first
        counts = np.bincount(users, minlength=len(interactions.user_ids))
        return cls(interactions.user_ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   items[order], weight[order].astype(np.float32), bought[order], bought_at[order])

    def history(self, user: int, items: ItemIndex) -> UserHistory:
        start, end = self.indptr[user], self.indptr[user + 1]
        ids = tuple(items.ids[i] for i in self.items[start:end].tolist())
        return UserHistory(ids, tuple(self.weights[start:end].tolist()),
                           frozenset(i for i, bought in zip(ids, self.purchased[start:end].tolist(), strict=True)
                                     if bought))

    def purchases(self, user: int, items: ItemIndex) -> dict[str, int]:
        """Each item the user bought, with when they last bought it (µs); empty when not kept."""
        if self.purchased_at is None:
            return {}
        start, end = self.indptr[user], self.indptr[user + 1]
        bought = np.flatnonzero(self.purchased[start:end]) + start
        return {items.ids[int(self.items[i])]: int(self.purchased_at[i]) for i in bought.tolist()}


class ModelSet:
    def __init__(self, items: ItemIndex, histories: UserHistories, popularity: Popularity, trending: Trending,
                 also_viewed: AlsoViewed, bought_together: BoughtTogether, summary: dict[str, Any],
                 content: ContentBased | None = None, weights: Mapping[str, float] | None = None) -> None:
        self.items, self.histories, self.summary = items, histories, summary
        self.popularity, self.trending = popularity, trending
        self.also_viewed, self.bought_together = also_viewed, bought_together
        self.content = content if content is not None else _no_content(items)
        self.weights = dict(weights if weights is not None else DEFAULT_WEIGHTS)
        self._users = {user_id: i for i, user_id in enumerate(histories.user_ids)}

    # -- serving -----------------------------------------------------------------------------
    def history(self, root: str | None) -> UserHistory | None:
        user = self._users.get(root) if root is not None else None
        return None if user is None else self.histories.history(user, self.items)

    def purchases(self, root: str | None) -> dict[str, int]:
        """What the user had bought at training time, with when (µs) they last bought each."""
        user = self._users.get(root) if root is not None else None
        return {} if user is None else self.histories.purchases(user, self.items)

    def for_user(self, root: str | None, k: int, exclude: Collection[str] = (),
                 allow_purchased: Collection[str] = ()) -> list[Scored]:
        """The user's recommendations; popular and trending items for a user the models never saw.
        Purchased items are left out, except `allow_purchased` (a placement's repurchase window)."""
        history = self.history(root)
        if history is None:
            return cold_start(self.popularity, self.trending, k, exclude)
        if allow_purchased:
            history = replace(history, purchased=history.purchased - frozenset(allow_purchased))
        found = candidates(self.base_models(), history, max(k, CANDIDATES), exclude)
        return rank(found, np.asarray([self.weights.get(name, 0.0) for name in MODELS]), k)

    def base_models(self) -> list[Model]:
        """The blend's models, in `blend.MODELS` order."""
        by_name: dict[str, Model] = {m.name: m for m in (self.popularity, self.trending, self.also_viewed,
                                                          self.bought_together, self.content)}
        return [by_name[name] for name in MODELS]

    def similar(self, item_id: str, k: int) -> list[Scored]:
        """Co-viewed items; an item with few or none (a new one) is filled up with items alike in
        the catalog, then with what is popular in its category."""
        self._known(item_id)
        found = {s.item_id: s for s in self.also_viewed.similar(item_id, k)}
        if len(found) < k:
            for s in self.content.similar(item_id, k):
                if s.item_id not in found and len(found) < k:
                    found[s.item_id] = s
        listed = list(found.values())
        return listed + self._same_category(item_id, k - len(listed), {item_id, *found})

    def bought_with(self, item_id: str, k: int) -> list[Scored]:
        self._known(item_id)
        return self.bought_together.similar(item_id, k)

    def _same_category(self, item_id: str, k: int, exclude: Collection[str]) -> list[Scored]:
        """Fills a short list of similar items with what is popular in the item's category."""
        category = self.items.categories[self.items.position[item_id]]
        return self.popularity.top(k, exclude, category) if k > 0 and category else []

    def _known(self, item_id: str) -> None:
        if item_id not in self.items.position:
            raise NotFound(f"no item {item_id!r} in the catalog or in the events the model was trained on",
                           field="item_id")

    # -- saving ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {f"items.{k}": v for k, v in self.items.arrays().items()}
        h = self.histories
        arrays |= {"users.ids": np.asarray(h.user_ids, dtype=str), "users.indptr": h.indptr,
                   "users.items": h.items, "users.weights": h.weights, "users.purchased": h.purchased}
        if h.purchased_at is not None:
            arrays["users.purchased_at"] = h.purchased_at
        for model in (self.popularity, self.trending, self.also_viewed, self.bought_together, self.content):
            arrays |= {f"{model.name}.{k}": v for k, v in model.arrays().items()}
        arrays["blend.weights"] = np.asarray([self.weights.get(name, 0.0) for name in MODELS], dtype=np.float64)
        out = io.BytesIO()
        np.savez(out, **arrays)  # type: ignore[arg-type]
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, summary: dict[str, Any]) -> ModelSet:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k.removeprefix(prefix + "."): v for k, v in arrays.items() if k.startswith(prefix + ".")}

        items = ItemIndex.from_arrays(part("items"))
        u = part("users")
        histories = UserHistories(u["ids"].tolist(), u["indptr"], u["items"], u["weights"], u["purchased"],
                                  u.get("purchased_at"))
        popularity, trending, also_viewed, bought = Popularity(), Trending(), AlsoViewed(), BoughtTogether()
        for model in (popularity, trending, also_viewed, bought):
            model.load(part(model.name), items)
        content = None
        if content_arrays := part(ContentBased.name):  # a set saved before content-based existed has none
            content = ContentBased()
            content.load(content_arrays, items)
        # A set saved before the blend was learned has no weights: the defaults.
        weights = dict(zip(MODELS, arrays["blend.weights"].tolist(), strict=True)) if "blend.weights" in arrays \
            else None
        return cls(items, histories, popularity, trending, also_viewed, bought, summary, content, weights)


def train(log: EventLog, state: SQLStateStore, catalog: CatalogStore, *, now: int | None = None,
          weights: InteractionWeights | None = None, progress: Callable[[int], object] | None = None,
          before: int | None = None, validation_days: float = 7) -> ModelSet:
    """Fit every model on the folded log; `now` (microseconds) is what ages are measured from, and
    only events before `before` count when it is given (an offline evaluation's training period).
    The blend's weights are learned on the last `validation_days` of the events trained on."""
    started = time.perf_counter()
    now = now if now is not None else int(time.time() * 1_000_000)
    catalog_items = _all_items(catalog)
    interactions = collect_interactions(log, state, now, weights, catalog_items, progress, before)
    known = [catalog_items.get(item_id) for item_id in interactions.item_ids]
    items = ItemIndex(interactions.item_ids, [(i.name or "") if i else "" for i in known],
                      [(i.top_category or "") if i else "" for i in known])
    content = ContentBased(catalog_items)
    content.fit(interactions, items)  # from the catalog only: the same for the validation fit
    half_life = (weights or InteractionWeights()).half_life_days
    learned = _learn_blend(interactions, items, content, validation_days, half_life)
    popularity, trending, also_viewed, bought = _fit_interaction_models(interactions, items)
    summary = {"users": len(interactions.user_ids), "items": len(items), "interactions": len(interactions),
               "orders": int(interactions.baskets.max()) + 1 if len(interactions) else 0,
               "latest_interaction": int(interactions.timestamps.max()) if len(interactions) else None,
               "now": now, "half_life_days": (weights or InteractionWeights()).half_life_days,
               "blend": asdict(learned) | {"validation_days": validation_days},
               "seconds": round(time.perf_counter() - started, 3)}
    return ModelSet(items, UserHistories.of(interactions), popularity, trending, also_viewed, bought, summary,
                    content, learned.weights)


def _fit_interaction_models(interactions: Interactions,
                            items: ItemIndex) -> tuple[Popularity, Trending, AlsoViewed, BoughtTogether]:
    popularity, trending, also_viewed, bought = Popularity(), Trending(), AlsoViewed(), BoughtTogether()
    for model in (popularity, trending, also_viewed, bought):
        model.fit(interactions, items)
    return popularity, trending, also_viewed, bought


def _learn_blend(interactions: Interactions, items: ItemIndex, content: ContentBased, validation_days: float,
                 half_life_days: float) -> LearnedWeights:
    """Weights tuned on the last `validation_days` of the interactions, the models fitted on the
    ones before (aged from the validation cut); users with history before the cut are scored."""
    if not len(interactions) or validation_days <= 0:
        return learn_weights([], [])
    cut = int(interactions.timestamps.max()) - int(validation_days * MICROS_PER_DAY) + 1
    past = _before(interactions, cut, half_life_days)
    popularity, trending, also_viewed, bought = _fit_interaction_models(past, items)
    validation = ModelSet(items, UserHistories.of(past), popularity, trending, also_viewed, bought, {}, content)
    users = [(history, relevant) for root, relevant in relevant_items(interactions, cut).items()
             if (history := validation.history(root)) is not None and history.items]
    return learn_weights(validation.base_models(), users)


def _before(interactions: Interactions, cut: int, half_life_days: float) -> Interactions:
    """The interactions before `cut`, their weights aged from `cut` instead of `now`."""
    keep = interactions.timestamps < cut
    younger = 2.0 ** (max(0, interactions.now - cut) / MICROS_PER_DAY / half_life_days)
    i = interactions
    return Interactions(i.users[keep], i.items[keep], (i.weights[keep] * younger).astype(np.float32),
                        i.timestamps[keep], i.kinds[keep], i.baskets[keep], i.user_ids, i.item_ids, cut)


def _no_content(items: ItemIndex) -> ContentBased:
    content = ContentBased()
    content.load({"indptr": np.zeros(len(items) + 1, np.int64), "indices": np.zeros(0, np.int32),
                  "data": np.zeros(0, np.float32)}, items)
    return content


def _all_items(catalog: CatalogStore) -> dict[str, Item]:
    items: dict[str, Item] = {}
    cursor: str | None = None
    while True:
        page = catalog.page(1000, cursor)
        items.update((item.id, item) for item in page.items)
        if (cursor := page.next) is None:
            return items
