"""The baseline recommenders, behind one small interface.

    Popularity      decayed interaction weight summed per item; overall and per top-level
                    category; the cold-start fallback ("popular in Hiking")
    Trending        recent velocity: the last 7 days against the 28 before, smoothed so
                    that one view of a new item does not top the list ("trending")
    AlsoViewed      item-to-item cosine similarity of the user-item matrix's columns, the
                    top neighbours of each item kept ("because you viewed Trail Pack")
    BoughtTogether  cosine similarity of items over the orders they share
    NextItem        sequential: what people go on to next after an item, from each user's
                    ordered history; the user's latest item weighs most ("often next after X")

Matrix factorization (ALS, BPR) is in `factors.py`, content-based similarity in `content.py`.

Every model fits on `Interactions` and an `ItemIndex` (the item vocabulary with names and
categories), and saves itself as plain numpy arrays (no pickle), so a trained set can be
stored in the database and loaded by any server.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from persona.recommend.interactions import MICROS_PER_DAY, RATING, Interactions

NEIGHBOURS = 50        # kept per item by the item-to-item models
HISTORY_ITEMS = 20     # the user's most recent distinct items that seed item-to-item scores
RECENCY_HALF_RANK = 5  # the 6th most recent item weighs half as much as the most recent
TRENDING_SMOOTHING = 5.0
NEXT_WITHIN_DAYS = 1.0  # a step further apart than this is not "next"
NEXT_LAGS = 3           # an item counts as next after each of the user's 3 items before it, less each step back


class Scored:
    """An item with its score and why. The reason may be given as a function, worked out only when
    read: a list is ranked from many more candidates than are served, and saying why a factor
    model picked an item costs a dot product per recent item."""

    __slots__ = ("_reason", "item_id", "score")

    def __init__(self, item_id: str, score: float, reason: str | Callable[[], str]) -> None:
        self.item_id, self.score, self._reason = item_id, score, reason

    @property
    def reason(self) -> str:
        if not isinstance(self._reason, str):
            self._reason = self._reason()
        return self._reason

    def rescored(self, score: float) -> Scored:
        return Scored(self.item_id, score, self._reason)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scored) and (self.item_id, self.score, self.reason) == (
            other.item_id, other.score, other.reason)

    def __hash__(self) -> int:
        return hash((self.item_id, self.score))

    def __repr__(self) -> str:
        return f"Scored({self.item_id!r}, {self.score!r}, {self.reason!r})"


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

    def positions(self, item_ids: Iterable[str]) -> np.ndarray:
        """The positions of the ids this index knows (others are left out)."""
        known = (p for i in item_ids if (p := self.position.get(i)) is not None)
        return np.fromiter(known, dtype=np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": np.asarray(self.ids, dtype=str), "names": np.asarray(self.names, dtype=str),
                "categories": np.asarray(self.categories, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ItemIndex:
        return cls(arrays["ids"].tolist(), arrays["names"].tolist(), arrays["categories"].tolist())


@dataclass(frozen=True)
class Ranked:
    """A model's candidates for one user, best first, as arrays (what the blend works on); the reason
    of a candidate is worked out only when it is asked for, since most are never shown."""

    indices: np.ndarray        # int64 positions in the item index
    scores: np.ndarray         # float64, descending
    why: Callable[[int], str]  # the reason for the j-th candidate

    def scored(self, items: ItemIndex) -> list[Scored]:
        return [Scored(items.ids[i], s, self.why(j))
                for j, (i, s) in enumerate(zip(self.indices.tolist(), self.scores.tolist(), strict=True))]


NOTHING = Ranked(np.zeros(0, np.int64), np.zeros(0), lambda j: "")


class Model(Protocol):
    name: str
    items: ItemIndex

    def fit(self, interactions: Interactions, items: ItemIndex) -> None: ...
    def rank(self, history: UserHistory, n: int, skip: np.ndarray) -> Ranked: ...
    def recommend(self, history: UserHistory, k: int, exclude: Collection[str] = ()) -> list[Scored]: ...
    def arrays(self) -> dict[str, np.ndarray]: ...
    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None: ...


class _Recommends:
    """`recommend` as the model's `rank` with the user's purchases and `exclude` skipped."""

    items: ItemIndex

    def rank(self, history: UserHistory, n: int, skip: np.ndarray) -> Ranked:
        raise NotImplementedError

    def recommend(self, history: UserHistory, k: int, exclude: Collection[str] = ()) -> list[Scored]:
        skip = self.items.positions([*exclude, *history.purchased])
        return self.rank(history, k, skip).scored(self.items)


def top_n(indices: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Where the `n` best are in `indices`/`scores`: highest score first, ties by item position."""
    if len(scores) > 4 * n:  # most are out of the running: partition first
        kept = np.argpartition(-scores, n - 1)[:n] if n > 0 else np.zeros(0, np.int64)
        threshold = scores[kept].min() if len(kept) else np.inf
        kept = np.flatnonzero(scores >= threshold)  # every tie at the threshold, to order them by position
        return kept[np.lexsort((indices[kept], -scores[kept]))][:n]
    return np.lexsort((indices, -scores))[:n]


class ItemModel(Model, Protocol):
    def similar(self, item_id: str, k: int) -> list[Scored]: ...


class _Ranked(_Recommends):
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

    def rank(self, history: UserHistory, n: int, skip: np.ndarray) -> Ranked:
        head = self.order[:n + len(skip)]
        head = head[~np.isin(head, skip)][:n]
        return Ranked(head, self.scores[head].astype(np.float64), lambda j: self._reason(int(head[j])))

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


class _Neighbours(_Recommends):
    """Item-to-item: the top neighbours of each item (a sparse items x items matrix, rows sorted)."""

    name = "neighbours"
    recency_half_rank: float = RECENCY_HALF_RANK
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

    def rank(self, history: UserHistory, n: int, skip: np.ndarray) -> Ranked:
        """Items scored by their similarity to the user's recent items, the most recent weighing most
        (summed over the seeds); the reason names the seed that contributed most (the earlier on a tie)."""
        seeds = [(i, w) for i, w in zip(history.items, history.weights, strict=True) if w > 0][:HISTORY_ITEMS]
        columns, contributions, sources, counts = [], [], [], []
        indptr, indices, data = self.neighbours.indptr, self.neighbours.indices, self.neighbours.data
        for rank, (item_id, weight) in enumerate(seeds):
            index = self.items.position.get(item_id)
            if index is None:
                continue
            start, end = indptr[index], indptr[index + 1]
            columns.append(indices[start:end])
            contributions.append(data[start:end] * (0.5 ** (rank / self.recency_half_rank) * np.log1p(weight)))
            sources.append(index)
            counts.append(end - start)
        if not columns:
            return NOTHING
        column, contribution = np.concatenate(columns), np.concatenate(contributions)
        source = np.repeat(np.asarray(sources, dtype=np.int64), counts)
        candidates, which = np.unique(column, return_inverse=True)
        scores = np.bincount(which, weights=contribution, minlength=len(candidates))
        strongest = np.lexsort((-contribution, which))  # per candidate, its largest contribution first (stable)
        first = np.ones(len(strongest), dtype=bool)
        first[1:] = which[strongest][1:] != which[strongest][:-1]
        because = source[strongest[first]]  # one per candidate, in candidate order
        allowed = np.flatnonzero(~np.isin(candidates, skip))
        best = allowed[top_n(candidates[allowed], scores[allowed], n)]
        chosen, by = candidates[best].astype(np.int64), because[best]
        return Ranked(chosen, scores[best], lambda j: self._because(int(by[j])))

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


class NextItem(_Neighbours):
    """Sequential: how often people went on from one item to another within a day (the next three
    distinct items, each step back counting half as much), over how often they left the first item
    for anything; `popularity_damping` > 0 divides by the next item's popularity to that power, so
    a list is not just the bestsellers. Seeds halve in weight with every step back in the user's
    history, so the latest item leads."""

    name = "next_item"
    recency_half_rank = 1.0

    def __init__(self, popularity_damping: float = 0.0) -> None:
        self.popularity_damping = popularity_damping

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        keep = interactions.kinds != RATING
        order = np.lexsort((interactions.timestamps[keep], interactions.users[keep]))
        users = interactions.users[keep][order]
        steps = interactions.items[keep][order]
        times = interactions.timestamps[keep][order]
        repeat = np.zeros(len(users), dtype=bool)
        repeat[1:] = (users[1:] == users[:-1]) & (steps[1:] == steps[:-1])
        users, steps, times = users[~repeat], steps[~repeat], times[~repeat]  # a view then an add is one step
        rows, cols, values = [], [], []
        for lag in range(1, NEXT_LAGS + 1):
            pair = (users[lag:] == users[:-lag]) & (times[lag:] - times[:-lag] <= NEXT_WITHIN_DAYS * MICROS_PER_DAY)
            pair &= steps[lag:] != steps[:-lag]
            rows.append(steps[:-lag][pair])
            cols.append(steps[lag:][pair])
            values.append(np.full(int(pair.sum()), 0.5 ** (lag - 1)))
        n = len(items)
        counts = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        left = np.asarray(counts.sum(axis=1)).ravel()
        arrived = np.asarray(counts.sum(axis=0)).ravel()
        row_scale = np.divide(1.0, left, out=np.zeros(n), where=left > 0)
        col_scale = np.divide(1.0, arrived ** self.popularity_damping, out=np.zeros(n), where=arrived > 0)
        self._keep_top(sp.diags(row_scale) @ counts @ sp.diags(col_scale))

    def _similar_reason(self, index: int) -> str:
        return f"often next after {self.items.label(index)}"

    def _because(self, index: int) -> str:
        return f"often next after {self.items.label(index)}"

    def arrays(self) -> dict[str, np.ndarray]:
        return super().arrays() | {"popularity_damping": np.asarray(self.popularity_damping)}

    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None:
        super().load(arrays, items)
        self.popularity_damping = float(arrays["popularity_damping"])
