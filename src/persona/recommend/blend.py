"""The hybrid blend behind a user's list: every base model's top candidates for the user, each
model's scores divided by its best score for that user (so each lies in 0..1), summed with one
weight per model. The weights are learned, not hand-set: `learn_weights` tries every point of a
simplex grid (weights in tenths summing to 1, the single-model corners included) on users of a
validation period and keeps the one with the best mean NDCG, so on validation the blend is never
worse than the best single model.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from persona.recommend.metrics import ndcg
from persona.recommend.models import Model, Scored, UserHistory

MODELS = ("popularity", "trending", "also_viewed", "bought_together", "content")
CANDIDATES = 50  # asked of each model per user
GRID_STEPS = 10  # the grid's weights are multiples of 1 / GRID_STEPS
# For a set saved before weights were learned, or trained with no validation users.
DEFAULT_WEIGHTS = {"popularity": 0.1, "trending": 0.1, "also_viewed": 0.4, "bought_together": 0.2, "content": 0.2}


@dataclass(frozen=True)
class Candidates:
    """A user's candidates: the union of each model's top, in the order first seen."""

    item_ids: list[str]
    scores: np.ndarray         # candidates x models: the model's score over its best, 0 where not its candidate
    reasons: list[list[str]]   # per candidate, per model ("" where not its candidate)


def candidates(models: Sequence[Model], history: UserHistory, n: int = CANDIDATES,
               exclude: Collection[str] = ()) -> Candidates:
    position: dict[str, int] = {}
    columns: list[dict[int, tuple[float, str]]] = []
    for model in models:
        found = model.recommend(history, n, exclude)
        best = max((s.score for s in found), default=0.0)
        column = {}
        for s in found:
            row = position.setdefault(s.item_id, len(position))
            column[row] = (s.score / best if best > 0 else 0.0, s.reason)
        columns.append(column)
    scores = np.zeros((len(position), len(models)))
    reasons = [[""] * len(models) for _ in position]
    for m, column in enumerate(columns):
        for row, (score, reason) in column.items():
            scores[row, m], reasons[row][m] = score, reason
    return Candidates(list(position), scores, reasons)


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    return np.asarray([float(weights.get(name, 0.0)) for name in MODELS])


def rank(found: Candidates, weights: np.ndarray, k: int) -> list[Scored]:
    """The top `k` by blended score (ties in candidate order); the reason is that of the model
    contributing most to the item's score."""
    contributions = found.scores * weights
    blended = contributions.sum(axis=1)
    order = np.argsort(-blended, kind="stable")[:k]
    return [Scored(found.item_ids[i], float(blended[i]), found.reasons[i][int(np.argmax(contributions[i]))])
            for i in order.tolist()]


def grid(steps: int = GRID_STEPS, models: int = len(MODELS)) -> np.ndarray:
    """Every weight vector of multiples of 1/steps summing to 1 (rows), the corners first."""
    points = [p for p in itertools.product(range(steps + 1), repeat=models) if sum(p) == steps]
    points.sort(key=lambda p: -max(p))
    return np.asarray(points, dtype=np.float64) / steps


@dataclass(frozen=True)
class LearnedWeights:
    weights: dict[str, float]
    ndcg: float                # the blend's mean NDCG@k on the validation users
    single: dict[str, float]   # each model alone (its corner of the grid)
    users: int


def learn_weights(models: Sequence[Model], users: Sequence[tuple[UserHistory, Collection[str]]],
                  k: int = 10) -> LearnedWeights:
    """The grid point with the best mean NDCG@k over the users (history, relevant items); ties go
    to the earlier point. With no users, the default weights."""
    if not users:
        return LearnedWeights(dict(DEFAULT_WEIGHTS), 0.0, {}, 0)
    points = grid()
    totals = np.zeros(len(points))
    for history, relevant in users:
        found = candidates(models, history)
        if not found.item_ids:
            continue
        order = np.argsort(-(found.scores @ points.T), axis=0, kind="stable")[:k]  # k x grid points
        lists, which = np.unique(order.T, axis=0, return_inverse=True)  # many points rank alike
        values = np.asarray([ndcg([found.item_ids[i] for i in row], relevant, k) for row in lists.tolist()])
        totals += values[which.ravel()]
    means = totals / len(users)
    best = int(np.argmax(means))
    corners = {name: float(means[int(np.flatnonzero(points[:, m] == 1.0)[0])]) for m, name in enumerate(MODELS)}
    return LearnedWeights({name: float(w) for name, w in zip(MODELS, points[best], strict=True)},
                          float(means[best]), corners, len(users))
