"""The hybrid blend behind a user's list: every base model's top candidates for the user, each
model's scores divided by its best score for that user (so each lies in 0..1), summed with one
weight per model. The weights are learned, not hand-set: `learn_weights` tries every point of a
simplex grid (weights in fifths summing to 1, the single-model corners included) on users of a
validation period, then moves a tenth at a time from one model to another while the mean NDCG
rises; so on validation the blend is never worse than the best single model. (The whole grid in
tenths is 8,008 points for seven models, and each costs a ranking per user.)
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from persona.recommend.models import ItemIndex, Model, Ranked, Scored, UserHistory

MODELS = ("popularity", "trending", "also_viewed", "bought_together", "content", "next_item", "factors")
CANDIDATES = 50  # asked of each model per user
COARSE_STEPS = 5  # the grid searched whole: weights in fifths
FINE_STEPS = 10   # then refined in tenths
# For a set saved before weights were learned, or trained with no validation users.
DEFAULT_WEIGHTS = {"popularity": 0.1, "trending": 0.1, "also_viewed": 0.3, "bought_together": 0.1, "content": 0.1,
                   "next_item": 0.1, "factors": 0.2}


@dataclass(frozen=True)
class Candidates:
    """A user's candidates: the union of each model's top, in the order first seen."""

    items: ItemIndex
    indices: np.ndarray        # candidates: item positions
    scores: np.ndarray         # candidates x models: the model's score over its best, 0 where not its candidate
    ranked: list[Ranked]       # each model's own list
    places: np.ndarray         # candidates x models: where the candidate is in that model's list, -1 if not

    @property
    def item_ids(self) -> list[str]:
        return [self.items.ids[i] for i in self.indices.tolist()]

    def reason(self, row: int, model: int) -> str:
        return self.ranked[model].why(int(self.places[row, model]))


def candidates(models: Sequence[Model], history: UserHistory, n: int = CANDIDATES,
               exclude: Collection[str] = ()) -> Candidates:
    items = models[0].items
    skip = items.positions([*exclude, *history.purchased])
    ranked = [model.rank(history, n, skip) for model in models]
    every = np.concatenate([r.indices for r in ranked])
    unique, first = np.unique(every, return_index=True)
    order = np.argsort(first, kind="stable")
    row_of = np.empty(len(unique), dtype=np.int64)
    row_of[order] = np.arange(len(unique))
    scores = np.zeros((len(unique), len(models)))
    places = np.full((len(unique), len(models)), -1, dtype=np.int64)
    for m, r in enumerate(ranked):
        rows = row_of[np.searchsorted(unique, r.indices)]
        best = r.scores.max() if len(r.scores) else 0.0
        scores[rows, m] = r.scores / best if best > 0 else 0.0
        places[rows, m] = np.arange(len(rows))
    return Candidates(items, unique[order], scores, ranked, places)


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    return np.asarray([float(weights.get(name, 0.0)) for name in MODELS])


def rank(found: Candidates, weights: np.ndarray, k: int) -> list[Scored]:
    """The top `k` by blended score (ties in candidate order); the reason is that of the model
    contributing most to the item's score."""
    contributions = found.scores * weights
    blended = contributions.sum(axis=1)
    order = np.argsort(-blended, kind="stable")[:k]
    proposed = np.where(found.places >= 0, contributions, -np.inf)  # a model that weighs 0 may still explain
    return [Scored(found.items.ids[int(found.indices[i])], float(blended[i]),
                   partial(found.reason, i, int(np.argmax(proposed[i])))) for i in order.tolist()]


def grid(steps: int, models: int) -> np.ndarray:
    """Every weight vector of multiples of 1/steps summing to 1, as integer counts of 1/steps
    (rows), the corners first."""
    points = [p for p in itertools.product(range(steps + 1), repeat=models) if sum(p) == steps]
    points.sort(key=lambda p: -max(p))
    return np.asarray(points, dtype=np.int64)


@dataclass(frozen=True)
class LearnedWeights:
    weights: dict[str, float]
    ndcg: float                # the blend's mean NDCG@k on the validation users
    single: dict[str, float]   # each model alone (its corner of the grid)
    users: int


@dataclass(frozen=True)
class _Validation:
    """What ranking a user's candidates under many weight vectors needs, computed once."""

    scores: np.ndarray     # candidates x models, minus a sliver per candidate so ties go in candidate order
    relevance: np.ndarray  # candidates: 1.0 where relevant
    ideal: float           # the best DCG@k the user could get


def learn_weights(models: Sequence[Model], users: Sequence[tuple[UserHistory, Collection[str]]],
                  k: int = 10) -> LearnedWeights:
    """The weights (in tenths) with the best mean NDCG@k over the users (history, relevant items):
    every point of the grid in fifths, the single-model corners among them, then steps of a tenth
    from one model to another while one improves. With no users, the default weights."""
    if not users:
        return LearnedWeights(dict(DEFAULT_WEIGHTS), 0.0, {}, 0)
    names = [model.name for model in models]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    prepared = []
    for history, relevant in users:
        found = candidates(models, history)
        if len(found.indices):
            tiebreak = np.arange(len(found.item_ids))[:, None] * 1e-9
            prepared.append(_Validation(found.scores - tiebreak,
                                        np.asarray([float(i in relevant) for i in found.item_ids]),
                                        float(discounts[:min(len(relevant), k)].sum())))

    def mean_ndcg(points: np.ndarray) -> np.ndarray:
        totals = np.zeros(len(points))
        for user in prepared:
            blended = user.scores @ points.T  # candidates x points
            top = min(k, len(blended))
            best = np.argpartition(-blended, top - 1, axis=0)[:top]
            order = np.argsort(-np.take_along_axis(blended, best, axis=0), axis=0)
            gains = user.relevance[np.take_along_axis(best, order, axis=0)]
            totals += discounts[:top] @ gains / user.ideal if user.ideal else 0.0
        return totals / len(users)

    coarse = grid(COARSE_STEPS, len(models)) * (FINE_STEPS // COARSE_STEPS)
    means = mean_ndcg(coarse)
    point, value = coarse[int(np.argmax(means))], float(means.max())
    single = {name: float(means[int(np.flatnonzero(coarse[:, m] == FINE_STEPS)[0])]) for m, name in enumerate(names)}
    while True:  # hill-climb in tenths: move one tenth from a model that has it to another
        moves = np.asarray([point + np.eye(len(names), dtype=np.int64)[j] - np.eye(len(names), dtype=np.int64)[i]
                            for i in range(len(names)) if point[i] > 0 for j in range(len(names)) if j != i])
        values = mean_ndcg(moves)
        if values.max() <= value + 1e-12:
            break
        point, value = moves[int(np.argmax(values))], float(values.max())
    return LearnedWeights({name: float(w) / FINE_STEPS for name, w in zip(names, point, strict=True)},
                          value, single, len(users))
