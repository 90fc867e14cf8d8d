"""A trained set of models, what serving reads: the item index, each user's history as of
training, and the models by name; saved as one `np.savez` archive (no pickle) plus a JSON summary.

`train` builds one from the log and the catalog. A user's recommendations are the learned blend
of every base model (`blend.py`). The last `validation_days` of the training period choose the
hyperparameters (`tuning.py`) and then the blend's weights, with the models fitted on what came
before; then the models are refitted on the whole period. Someone unknown gets popular and
trending items only. Similar items come from co-views first, then from the catalog (content-based:
how a new item finds neighbours), then from what is popular in the item's category.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np

from persona.catalog.items import Item
from persona.catalog.store import CatalogStore
from persona.errors import NotFound
from persona.log.store import EventLog
from persona.profiles.sql import SQLStateStore
from persona.recommend.blend import CANDIDATES, DEFAULT_WEIGHTS, MODELS, LearnedWeights, candidates, learn_weights, rank
from persona.recommend.content import ContentBased
from persona.recommend.factors import Factors
from persona.recommend.interactions import (
    MICROS_PER_DAY,
    PURCHASE,
    Interactions,
    collect_interactions,
)
from persona.recommend.metrics import relevant_items
from persona.recommend.models import (
    AlsoViewed,
    BoughtTogether,
    ItemIndex,
    Model,
    NextItem,
    Popularity,
    Scored,
    Trending,
    UserHistory,
    cold_start,
)
from persona.recommend.settings import TrainingSettings
from persona.recommend.tuning import Hyperparameters, Trial, tune

RECENT_WEIGHT = 3.0      # what a session item weighs in the history the models read
VALIDATION_USERS = 3000  # at most, sampled: enough to rank settings, bounded at any scale


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
    """The trained models by name (`blend.MODELS`; a set saved by an older version may lack some)."""

    def __init__(self, items: ItemIndex, histories: UserHistories, models: Mapping[str, Model],
                 summary: dict[str, Any], weights: Mapping[str, float] | None = None) -> None:
        self.items, self.histories, self.summary = items, histories, summary
        self.models = {name: models[name] for name in MODELS if name in models}
        # The models serving reads by name besides blending them:
        self.popularity = cast(Popularity, self.models["popularity"])
        self.trending = cast(Trending, self.models["trending"])
        self.also_viewed = cast(AlsoViewed, self.models["also_viewed"])
        self.bought_together = cast(BoughtTogether, self.models["bought_together"])
        self.content = cast(ContentBased, self.models.get("content") or _no_content(items))
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
                 allow_purchased: Collection[str] = (), recent: Sequence[str] = ()) -> list[Scored]:
        """The user's recommendations; popular and trending items for a user the models never saw
        and who did nothing yet. `recent` (most recent first: the browsing session) goes in front
        of the history the models read, so the sequential, item-to-item and factor models follow it
        at once, and a visitor unknown at training time gets a list of their own. Purchased items are
        left out, except `allow_purchased` (a placement's repurchase window)."""
        history = self.history(root)
        if recent:
            history = with_recent(history or UserHistory(), recent)
        if history is None or not history.items:
            return cold_start(self.popularity, self.trending, k, exclude)
        if allow_purchased:
            history = replace(history, purchased=history.purchased - frozenset(allow_purchased))
        models = self.base_models()
        found = candidates(models, history, max(k, CANDIDATES), exclude)
        return rank(found, np.asarray([self.weights.get(m.name, 0.0) for m in models]), k)

    def base_models(self) -> list[Model]:
        """The blend's models, in `blend.MODELS` order."""
        return list(self.models.values())

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
        for name, model in self.models.items():
            arrays |= {f"{name}.{k}": v for k, v in model.arrays().items()}
        arrays["blend.models"] = np.asarray(list(self.weights), dtype=str)
        arrays["blend.weights"] = np.asarray(list(self.weights.values()), dtype=np.float64)
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
        models: dict[str, Model] = {}
        for name in MODELS:
            if stored := part(name):  # a set saved by an older version lacks the models added since
                models[name] = MODEL_TYPES[name]()
                models[name].load(stored, items)
        weights = None  # a set saved before the blend was learned: the defaults
        if "blend.models" in arrays:
            weights = dict(zip(arrays["blend.models"].tolist(), arrays["blend.weights"].tolist(), strict=True))
        elif "blend.weights" in arrays:  # saved when the blend had five models, in this order
            weights = dict(zip(MODELS[:5], arrays["blend.weights"].tolist(), strict=True))
        return cls(items, histories, models, summary, weights)


def with_recent(history: UserHistory, recent: Sequence[str], weight: float = RECENT_WEIGHT) -> UserHistory:
    """The history with `recent` items (most recent first) moved to its front, each weighing at
    least `weight` (what an add to cart weighs today)."""
    known = dict(zip(history.items, history.weights, strict=True))
    front = list(dict.fromkeys(recent))
    moved = set(front)
    items = front + [i for i in history.items if i not in moved]
    weights = [max(known.get(i, 0.0), weight) if i in moved else known[i] for i in items]
    return replace(history, items=tuple(items), weights=tuple(weights))


MODEL_TYPES: dict[str, Callable[[], Model]] = {
    "popularity": Popularity, "trending": Trending, "also_viewed": AlsoViewed, "bought_together": BoughtTogether,
    "content": ContentBased, "next_item": NextItem, "factors": Factors}


def train(log: EventLog, state: SQLStateStore, catalog: CatalogStore, *, settings: TrainingSettings | None = None,
          now: int | None = None, progress: Callable[[int], object] | None = None, before: int | None = None,
          threads: int = 0) -> ModelSet:
    """Fit every model on the folded log; `now` (microseconds) is what ages are measured from, and
    only events before `before` count when it is given (an offline evaluation's training period).
    Hyperparameters (if `settings.tune`) and the blend's weights are chosen on the last
    `settings.validation_days` of the events trained on; `threads` for matrix factorization (0: all cores)."""
    settings = settings or TrainingSettings()
    now = now if now is not None else int(time.time() * 1_000_000)
    catalog_items = _all_items(catalog)
    interactions = collect_interactions(log, state, now, settings.weights, catalog_items, progress, before)
    return fit(interactions, catalog_items, settings=settings, threads=threads)


def fit(interactions: Interactions, catalog_items: Mapping[str, Item], *, settings: TrainingSettings | None = None,
        threads: int = 0) -> ModelSet:
    """`train` after the log is read: every model fitted on `interactions` (whose item vocabulary
    holds the catalog's ids), tuned and blended on their last `settings.validation_days`."""
    settings = settings or TrainingSettings()
    half_life_days, validation_days = settings.weights.half_life_days, settings.validation_days
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    known = [catalog_items.get(item_id) for item_id in interactions.item_ids]
    items = ItemIndex(interactions.item_ids, [(i.name or "") if i else "" for i in known],
                      [(i.top_category or "") if i else "" for i in known])
    content = ContentBased(catalog_items)
    content.fit(interactions, items)  # from the catalog only: the same for the validation fit
    seconds["content"] = time.perf_counter() - started
    validated = _validate(interactions, items, content, validation_days, half_life_days, settings.tune, threads)
    seconds["validation"] = time.perf_counter() - started - sum(seconds.values())
    models: dict[str, Model] = {"content": content}
    for name, model in _interaction_models(validated.hyperparameters, threads).items():
        step = time.perf_counter()
        model.fit(interactions, items)
        models[name] = model
        seconds[name] = time.perf_counter() - step
    summary = {"users": len(interactions.user_ids), "items": len(items), "interactions": len(interactions),
               "orders": int(interactions.baskets.max()) + 1 if len(interactions) else 0,
               "latest_interaction": int(interactions.timestamps.max()) if len(interactions) else None,
               "now": interactions.now, "half_life_days": half_life_days,
               "blend": asdict(validated.blend) | {"validation_days": validation_days},
               "hyperparameters": validated.hyperparameters.as_dict() | {"tuned": settings.tune},
               "tuning": [asdict(trial) for trial in validated.trials],
               "fit_seconds": {name: round(value, 3) for name, value in seconds.items()},
               "seconds": round(time.perf_counter() - started, 3)}
    return ModelSet(items, UserHistories.of(interactions), models, summary, validated.blend.weights)


def _interaction_models(hyperparameters: Hyperparameters, threads: int) -> dict[str, Model]:
    """Every model fitted on interactions (content-based is fitted on the catalog), unfitted."""
    return {"popularity": Popularity(), "trending": Trending(), "also_viewed": AlsoViewed(),
            "bought_together": BoughtTogether(), "next_item": NextItem(hyperparameters.next_item_damping),
            "factors": Factors(hyperparameters.factors, threads)}


@dataclass(frozen=True)
class _Validated:
    hyperparameters: Hyperparameters
    blend: LearnedWeights
    trials: list[Trial]


def _validate(interactions: Interactions, items: ItemIndex, content: ContentBased, validation_days: float,
              half_life_days: float, tune_models: bool, threads: int) -> _Validated:
    """Hyperparameters and blend weights chosen on the last `validation_days` of the interactions,
    the models fitted on the ones before (aged from the validation cut); the validation users are
    those with history before the cut (at most `VALIDATION_USERS` of them, a seeded sample)."""
    defaults = Hyperparameters()
    if not len(interactions) or validation_days <= 0:
        return _Validated(defaults, learn_weights([], []), [])
    cut = int(interactions.timestamps.max()) - int(validation_days * MICROS_PER_DAY) + 1
    past = _before(interactions, cut, half_life_days)
    histories = UserHistories.of(past)
    positions = {user_id: i for i, user_id in enumerate(histories.user_ids)}
    users = [(history, relevant) for root, relevant in sorted(relevant_items(interactions, cut).items())
             if root in positions and (history := histories.history(positions[root], items)).items]
    if len(users) > VALIDATION_USERS:
        chosen = np.random.default_rng(0).choice(len(users), VALIDATION_USERS, replace=False)
        users = [users[i] for i in sorted(chosen.tolist())]
    models = _interaction_models(defaults, threads)
    hyperparameters, trials, tuned = defaults, [], {}
    if tune_models and users:
        hyperparameters, tuned, trials = tune(past, items, users, threads=threads)
        models |= tuned
    for name, model in models.items():
        if name not in tuned:
            model.fit(past, items)
    models["content"] = content
    blend = learn_weights([models[name] for name in MODELS], users)
    return _Validated(hyperparameters, blend, trials)


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
