"""Hyperparameters chosen on a validation split carved from the training period.

Each candidate setting of a tunable model is fitted on the interactions before the validation
cut and scored alone (mean NDCG@10) on the validation users; the best is kept. The test period
of an offline evaluation lies after the whole training period, so it never takes part. What
is tuned:

    factors    ALS: factors x regularization x confidence alpha; and BPR
    next_item  how much the next item's popularity is damped

The fitted winners are returned too, so that learning the blend's weights on the same split
does not fit them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona.recommend.factors import FactorParams, Factors
from persona.recommend.interactions import Interactions
from persona.recommend.metrics import ndcg
from persona.recommend.models import ItemIndex, Model, NextItem, UserHistory

FACTOR_GRID = (*(FactorParams("als", factors, regularization, alpha)
                 for factors in (16, 32, 64) for regularization in (0.01, 0.1) for alpha in (2.0, 10.0)),
               FactorParams("bpr", 32, 0.01))
DAMPING_GRID = (0.0, 0.25, 0.5)
K = 10


@dataclass(frozen=True)
class Hyperparameters:
    factors: FactorParams = field(default_factory=FactorParams)
    next_item_damping: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"factors": self.factors.__dict__.copy(), "next_item_damping": self.next_item_damping}


@dataclass(frozen=True)
class Trial:
    model: str
    setting: dict[str, Any]
    ndcg: float
    seconds: float


def tune(past: Interactions, items: ItemIndex, users: Sequence[tuple[UserHistory, Collection[str]]],
         factor_grid: Sequence[FactorParams] = FACTOR_GRID, damping_grid: Sequence[float] = DAMPING_GRID,
         threads: int = 0) -> tuple[Hyperparameters, dict[str, Model], list[Trial]]:
    """The best setting of each tunable model on the validation `users` (history before the cut,
    items touched after it), the winners fitted on `past`, and every trial."""
    trials: list[Trial] = []

    def best(name: str, settings: Sequence[Any], make: Callable[[Any], Model]) -> tuple[Any, Model]:
        scored = []
        for setting in settings:
            started = time.perf_counter()
            model = make(setting)
            model.fit(past, items)
            score = mean_ndcg(model, users)
            shown = setting.__dict__.copy() if isinstance(setting, FactorParams) else {"popularity_damping": setting}
            trials.append(Trial(name, shown, score, round(time.perf_counter() - started, 3)))
            scored.append((score, -len(scored), setting, model))  # ties: the earlier setting
        _, _, setting, model = max(scored, key=lambda s: s[:2])
        return setting, model

    factor_params, factors = best("factors", factor_grid, lambda p: Factors(p, threads))
    damping, next_item = best("next_item", damping_grid, NextItem)
    return Hyperparameters(factor_params, damping), {"factors": factors, "next_item": next_item}, trials


def mean_ndcg(model: Model, users: Sequence[tuple[UserHistory, Collection[str]]], k: int = K) -> float:
    if not users:
        return 0.0
    return float(np.mean([ndcg([s.item_id for s in model.recommend(history, k)], relevant, k)
                          for history, relevant in users]))
