"""Offline evaluation: train on the past of the log, score the models on its future.

A global temporal split: the cut is `test_days` before the newest interaction in the log. The
models are trained by the same `train` as `persona recs train`, with `now` at the cut and only
the events before it, so nothing of the test period leaks into training. A test user is one
with at least one interaction (of any kind) in the test period and some history before the
cut; what they interacted with in the test period and had not bought before is what a good
list should hold (their relevant set). Users with no history before the cut ("cold") are
counted and skipped: every model would give them the same popular list.

Metrics, averaged over test users (each in [0, 1]):

    HR@k       the list holds at least one relevant item
    Recall@k   relevant items in the list / relevant items
    NDCG@k     hits discounted by log2(rank + 1), over the best possible for that user
    MAP@k      precision at each hit's rank, summed, over min(relevant items, k)
    coverage   distinct items recommended to anyone / items in the catalog and the log
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona.catalog.store import CatalogStore
from persona.log.store import EventLog
from persona.profiles.sql import SQLStateStore
from persona.recommend.interactions import MICROS_PER_DAY, collect_interactions
from persona.recommend.metrics import average_precision, hit_rate, ndcg, recall, relevant_items
from persona.recommend.metrics import hits_at as hits_at  # the metrics used to live here
from persona.recommend.models import Model, Scored, UserHistory
from persona.recommend.modelset import ModelSet, train
from persona.recommend.settings import TrainingSettings


# -- the evaluation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelScores:
    model: str
    ndcg: float
    recall: float
    hit_rate: float
    map: float
    coverage: float


@dataclass(frozen=True)
class Evaluation:
    rows: list[ModelScores]  # best NDCG first
    k: int
    cut: int                 # microseconds: training is before it, the test period from it on
    test_users: int          # evaluated: a test interaction and history before the cut
    cold_users: int          # test interactions but no history before the cut: skipped
    latest_trained: int | None  # the newest interaction the models were trained on (< cut)
    training: dict[str, Any] = field(default_factory=dict)  # the trained set's summary: blend, tuning, seconds


Recommender = Callable[[str, UserHistory, int], list[Scored]]


def recommenders(models: ModelSet) -> dict[str, Recommender]:
    """Each base model on its own, and the set's learned blend (what `GET /v1/recommendations/{user}`
    serves; its weights were tuned on a validation period before the cut, never on the test period)."""
    blend: dict[str, Recommender] = {"blend (for_user)": lambda root, history, k: models.for_user(root, k)}
    return blend | {name: _alone(model) for name, model in models.models.items()}


def _alone(model: Model) -> Recommender:
    return lambda root, history, k: model.recommend(history, k)


def evaluate(log: EventLog, state: SQLStateStore, catalog: CatalogStore, *, test_days: float = 7, k: int = 10,
             settings: TrainingSettings | None = None, progress: Callable[[int], object] | None = None) -> Evaluation:
    """Train on the log before the cut and score every model on the `test_days` after it.
    `progress(events read)` as the log is read (twice: whole, then up to the cut)."""
    if test_days <= 0 or k <= 0:
        raise ValueError("test_days and k must be positive")
    whole = collect_interactions(log, state, 0, progress=progress)
    if not len(whole):
        raise ValueError("no interactions in the log to evaluate on")
    cut = int(whole.timestamps.max()) - int(test_days * MICROS_PER_DAY) + 1
    models = train(log, state, catalog, settings=settings, now=cut, before=cut, progress=progress)
    relevant = relevant_items(whole, cut)
    users = [(root, history, items) for root, items in relevant.items()
             if (history := models.history(root)) is not None]
    rows = [_score(name, recommend, users, k, len(models.items)) for name, recommend in recommenders(models).items()]
    rows.sort(key=lambda row: (-row.ndcg, -row.recall, row.model))
    return Evaluation(rows, k, cut, len(users), len(relevant) - len(users), models.summary["latest_interaction"],
                      models.summary)


def _score(name: str, recommend: Recommender, users: list[tuple[str, UserHistory, set[str]]], k: int,
           catalog_size: int) -> ModelScores:
    totals = np.zeros(4)
    recommended: set[str] = set()
    for root, history, relevant in users:
        ranked = [s.item_id for s in recommend(root, history, k)][:k]
        recommended.update(ranked)
        totals += (ndcg(ranked, relevant, k), recall(ranked, relevant, k), hit_rate(ranked, relevant, k),
                   average_precision(ranked, relevant, k))
    means = totals / max(1, len(users))
    return ModelScores(name, *means.tolist(), coverage=len(recommended) / max(1, catalog_size))
