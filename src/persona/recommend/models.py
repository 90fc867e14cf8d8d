"""The baseline recommenders, behind one small interface.

    Popularity      decayed interaction weight summed per item; overall and per top-level
                    category; the cold-start fallback ("popular in Hiking")
    Trending        recent velocity: the last 7 days against the 28 before, smoothed so
                    that one view of a new item does not top the list ("trending")
    AlsoViewed      item-to-item cosine similarity of the user-item matrix's columns, the
                    top neighbours of each item kept ("because you viewed Trail Pack")
    BoughtTogether  cosine similarity of items over the orders they share

Every model fits on `Interactions` and an `ItemIndex` (the item vocabulary with names and
categories), and saves itself as plain numpy arrays (no pickle), so a trained set can be
stored in the database and loaded by any server.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from persona.recommend.interactions import MICROS_PER_DAY, Interactions

NEIGHBOURS = 50        # kept per item by the item-to-item models
HISTORY_ITEMS = 20     # the user's most recent distinct items that seed item-to-item scores
RECENCY_HALF_RANK = 5  # the 6th most recent item weighs half as much as the most recent
TRENDING_SMOOTHING = 5.0


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reason: str


@dataclass(frozen=True)
class UserHistory:
    """A user's items, most recent first, with their summed decayed weights; and what they bought."""

    items: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    purchased: frozenset[str] = frozenset()


@dataclass
class ItemIndex:
    """The item vocabulary shared by a model set: ids, display names and top-level categories."""

    ids: list[str]
    names: list[str]       # "" when unknown
    categories: list[str]  # "" when unknown
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {item_id: i for i, item_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def label(self, index: int) -> str:
        return self.names[index] or self.ids[index]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": np.asarray(self.ids, dtype=str), "names": np.asarray(self.names, dtype=str),
                "categories": np.asarray(self.categories, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ItemIndex:
        return cls(arrays["ids"].tolist(), arrays["names"].tolist(), arrays["categories"].tolist())


class Model(Protocol):
    name: str

    def fit(self, interactions: Interactions, items: ItemIndex) -> None: ...
    def recommend(self, history: UserHistory, k: int, exclude: Collection[str] = ()) -> list[Scored]: ...
    def arrays(self) -> dict[str, np.ndarray]: ...
    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None: ...


class ItemModel(Model, Protocol):
    def similar(self, item_id: str, k: int) -> list[Scored]: ...


class _Ranked:
    """A model that is one score per item: ranked overall and within each top-level category."""

    name = "ranked"
    items: ItemIndex
    scores: np.ndarray

    def _rank(self) -> None:
        ranked = np.argsort(-self.scores, kind="stable")
        self.order = ranked[self.scores[ranked] > 0]
        self.by_category: dict[str, np.ndarray] = {}
        categories = np.asarray(self.items.categories, dtype=str)[self.order] if len(self.order) else np.array([])
        for category in set(categories.tolist()) - {""}:
            self.by_category[category] = self.order[categories == category]

    def top(self, k: int, exclude: Collection[str] = (), category: str | None = None) -> list[Scored]:
        order = self.order if category is None else self.by_category.get(category, self.order[:0])
        found: list[Scored] = []
        for index in order:
            item_id = self.items.ids[index]
            if item_id not in exclude:
                found.append(Scored(item_id, float(self.scores[index]), self._reason(int(index))))
                if len(found) == k:
                    break
        return found

    def recommend(self, history: UserHistory, k: int, exclude: Collection[str] = ()) -> list[Scored]:
        return self.top(k, set(exclude) | history.purchased)

    def _reason(self, index: int) -> str:
        return self.name

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None:
        self.items, self.scores = items, arrays["scores"]
        self._rank()


class Popularity(_Ranked):
    name = "popularity"

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        self.scores = np.bincount(interactions.items, weights=interactions.weights, minlength=len(items))
        self._rank()

    def _reason(self, index: int) -> str:
        category = self.items.categories[index]
        return f"popular in {category}" if category else "popular"


class Trending(_Ranked):
    """Score: (last 7 days + s) / (the 28 before, per 7 days, + s); only items that are growing."""

    name = "trending"

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        week = 7 * MICROS_PER_DAY
        age = interactions.now - interactions.timestamps
        recent = np.bincount(interactions.items[(age >= 0) & (age < week)], minlength=len(items))
        before = np.bincount(interactions.items[(age >= week) & (age < 5 * week)], minlength=len(items))
        velocity = (recent + TRENDING_SMOOTHING) / (before / 4 + TRENDING_SMOOTHING)
        self.scores = np.where((recent > 0) & (velocity > 1), velocity, 0.0)
        self._rank()

    def _reason(self, index: int) -> str:
        return "trending"


def cold_start(popularity: Popularity, trending: Trending, k: int, exclude: Collection[str] = ()) -> list[Scored]:
    """For someone we know nothing about: trending and popular items, alternately."""
    lists = [trending.top(k, exclude), popularity.top(k, exclude)]
    found: dict[str, Scored] = {}
    for pair in zip(*(lst + [None] * (k - len(lst)) for lst in lists), strict=True):
        for scored in pair:
            if scored is not None and scored.item_id not in found and len(found) < k:
                found[scored.item_id] = scored
    return list(found.values())


class _Neighbours:
    """Item-to-item: the top neighbours of each item (a sparse items x items matrix, rows sorted)."""

    name = "neighbours"
    items: ItemIndex
    neighbours: sp.csr_matrix

    def _keep_top(self, similarity: sp.csr_matrix) -> None:
        similarity = similarity.tocsr()
        similarity.setdiag(0)
        similarity.eliminate_zeros()
        indptr, indices, data = [0], [], []
        for row in range(similarity.shape[0]):
            start, end = similarity.indptr[row], similarity.indptr[row + 1]
            cols, values = similarity.indices[start:end], similarity.data[start:end]
            best = np.lexsort((cols, -values))[:NEIGHBOURS]  # highest first, ties by index
            indices.append(cols[best])
            data.append(values[best])
            indptr.append(indptr[-1] + len(best))
        shape = similarity.shape
        self.neighbours = sp.csr_matrix(
            (np.concatenate(data or [np.zeros(0)]).astype(np.float32),
             np.concatenate(indices or [np.zeros(0, dtype=np.int32)]).astype(np.int32),
             np.asarray(indptr, dtype=np.int64)), shape=shape)

    def _row(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.neighbours.indptr[index], self.neighbours.indptr[index + 1]
        return self.neighbours.indices[start:end], self.neighbours.data[start:end]

    def similar(self, item_id: str, k: int) -> list[Scored]:
        """Empty for an item with no neighbours (or unknown to the model)."""
        index = self.items.position.get(item_id)
        if index is None:
            return []
        cols, values = self._row(index)
        return [Scored(self.items.ids[c], float(v), self._similar_reason(index)) for c, v in
                zip(cols[:k], values[:k], strict=True)]

    def recommend(self, history: UserHistory, k: int, exclude: Collection[str] = ()) -> list[Scored]:
        """Items scored by their similarity to the user's recent items, the most recent weighing most."""
        scores: dict[int, float] = {}
        best: dict[int, tuple[float, int]] = {}  # candidate -> (largest contribution, from which item)
        seeds = [(i, w) for i, w in zip(history.items, history.weights, strict=True) if w > 0][:HISTORY_ITEMS]
        for rank, (item_id, weight) in enumerate(seeds):
            index = self.items.position.get(item_id)
            if index is None:
                continue
            seed_weight = 0.5 ** (rank / RECENCY_HALF_RANK) * float(np.log1p(weight))
            cols, values = self._row(index)
            for c, v in zip(cols.tolist(), values.tolist(), strict=True):
                contribution = seed_weight * v
                scores[c] = scores.get(c, 0.0) + contribution
                if contribution > best.get(c, (0.0, -1))[0]:
                    best[c] = (contribution, index)
        skip = set(exclude) | history.purchased
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return [Scored(self.items.ids[c], score, self._because(best[c][1])) for c, score in ranked
                if self.items.ids[c] not in skip][:k]

    def _similar_reason(self, index: int) -> str:
        return self.name

    def _because(self, index: int) -> str:
        return self.name

    def arrays(self) -> dict[str, np.ndarray]:
        return {"indptr": self.neighbours.indptr, "indices": self.neighbours.indices, "data": self.neighbours.data}

    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None:
        self.items = items
        self.neighbours = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                        shape=(len(items), len(items)))


def _cosine_of_columns(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    normalized = (matrix @ sp.diags(scale)).tocsc()
    return (normalized.T @ normalized).tocsr()


class AlsoViewed(_Neighbours):
    """"Viewed this also viewed": cosine of item columns over every kind of interaction."""

    name = "also_viewed"

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        matrix = interactions.matrix()
        matrix.data = np.maximum(matrix.data, 0)  # a poor rating does not make two items alike
        self._keep_top(_cosine_of_columns(matrix))

    def _similar_reason(self, index: int) -> str:
        return f"viewed with {self.items.label(index)}"

    def _because(self, index: int) -> str:
        return f"because you viewed {self.items.label(index)}"


class BoughtTogether(_Neighbours):
    """Frequently bought together: cosine of items over the orders (`Order Completed`) they share."""

    name = "bought_together"

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        lines = interactions.baskets >= 0
        baskets = interactions.baskets[lines]
        orders = int(baskets.max()) + 1 if len(baskets) else 0
        matrix = sp.csr_matrix((np.ones(len(baskets)), (baskets, interactions.items[lines])),
                               shape=(orders, len(items)))
        matrix.data[:] = 1.0  # an item twice in one order is still one order
        self._keep_top(_cosine_of_columns(matrix))

    def _similar_reason(self, index: int) -> str:
        return f"often bought with {self.items.label(index)}"

    def _because(self, index: int) -> str:
        return f"goes with {self.items.label(index)}"
