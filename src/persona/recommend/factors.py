"""Matrix factorization for implicit feedback: ALS or BPR, fitted with the `implicit` library.

The user-item matrix of decayed weights becomes confidences `1 + alpha * weight` (a poor
rating, a negative weight, counts as no interaction). `implicit` learns a vector per user and
per item; only the item vectors are kept. A user's vector is solved at request time from their
history, the way ALS solves it in training ("folding in"):

    (YᵀY + Yᵤᵀ(Cᵤ - I)Yᵤ + λI) x = YᵤᵀCᵤ1

so a user's list follows what they did since training too (the session re-ranker hands the
model a history with the new items), and a set stores a vector per item, none per user.
For BPR, whose item vectors end in a bias, the same solve gives the user part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from persona.recommend.interactions import Interactions
from persona.recommend.models import HISTORY_ITEMS, NOTHING, ItemIndex, Ranked, UserHistory, _Recommends, top_n

PARALLEL_FROM = 200_000  # interactions: below, starting threads costs more than they save (5x on a busy machine)


@dataclass(frozen=True)
class FactorParams:
    algorithm: str = "als"         # "als" or "bpr"
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0            # confidence per unit of decayed weight
    iterations: int = 15           # ALS sweeps; BPR runs 10x as many epochs (each is cheaper)
    learning_rate: float = 0.05    # BPR only

    def __post_init__(self) -> None:
        if self.algorithm not in ("als", "bpr"):
            raise ValueError("algorithm must be 'als' or 'bpr'")
        if self.factors < 1 or self.iterations < 1 or self.regularization < 0 or self.alpha <= 0:
            raise ValueError("factors and iterations must be positive, regularization >= 0, alpha > 0")


class Factors(_Recommends):
    """Latent factors: items liked by the same people end up close ("matches your interest in X")."""

    name = "factors"

    def __init__(self, params: FactorParams | None = None, threads: int = 0, seed: int = 0) -> None:
        self.params = params or FactorParams()
        self.threads, self.seed = threads, seed  # threads: 0 = every core

    def fit(self, interactions: Interactions, items: ItemIndex) -> None:
        self.items = items
        confidence = interactions.matrix().tocsr()
        confidence.data = 1.0 + self.params.alpha * np.maximum(confidence.data, 0.0)
        confidence.eliminate_zeros()
        confidence = confidence.astype(np.float32)
        if confidence.nnz == 0:
            self._set(np.zeros((len(items), 0), np.float32))
            return
        self._set(_fit(confidence, self.params, self.threads, self.seed))

    def _set(self, item_factors: np.ndarray) -> None:
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        y = self.item_factors.astype(np.float64)
        self._gram = y.T @ y + self.params.regularization * np.eye(y.shape[1])

    def user_vector(self, history: UserHistory) -> np.ndarray | None:
        """The user's factors solved from their most recent items; None with nothing to go on."""
        rows = [(self.items.position.get(i), w) for i, w in zip(history.items, history.weights, strict=True)]
        known = [(index, weight) for index, weight in rows[:HISTORY_ITEMS * 5] if index is not None and weight > 0]
        if not known or self.item_factors.shape[1] == 0:
            return None
        indices = np.fromiter((i for i, _ in known), np.int64, len(known))
        confidence = 1.0 + self.params.alpha * np.fromiter((w for _, w in known), np.float64, len(known))
        y = self.item_factors[indices].astype(np.float64)
        a = self._gram + (y.T * (confidence - 1.0)) @ y
        return np.linalg.solve(a, y.T @ confidence)

    def rank(self, history: UserHistory, n: int, skip: np.ndarray) -> Ranked:
        vector = self.user_vector(history)
        if vector is None or n <= 0:
            return NOTHING
        scores = self.item_factors @ vector.astype(np.float32)
        scores[skip] = -np.inf
        everything = np.arange(len(scores))
        best = top_n(everything, scores, n)
        best = best[scores[best] > 0]  # -inf (skipped) and items the user's taste points away from
        recent = self.items.positions(history.items[:HISTORY_ITEMS])
        return Ranked(best, scores[best].astype(np.float64), lambda j: self._reason(int(best[j]), recent))

    def _reason(self, index: int, recent: np.ndarray) -> str:
        """The recent item nearest the recommended one in factor space (not the item itself)."""
        recent = recent[recent != index]
        if not len(recent):
            return "picked for you"
        nearest = recent[int(np.argmax(self.item_factors[recent] @ self.item_factors[index]))]
        return f"matches your interest in {self.items.label(int(nearest))}"

    def arrays(self) -> dict[str, np.ndarray]:
        p = self.params
        return {"item_factors": self.item_factors, "algorithm": np.asarray(p.algorithm),
                "numbers": np.asarray([p.factors, p.regularization, p.alpha, p.iterations, p.learning_rate])}

    def load(self, arrays: Mapping[str, np.ndarray], items: ItemIndex) -> None:
        self.items = items
        factors, regularization, alpha, iterations, learning_rate = arrays["numbers"].tolist()
        self.params = FactorParams(str(arrays["algorithm"]), int(factors), regularization, alpha, int(iterations),
                                   learning_rate)
        self._set(arrays["item_factors"])

    def describe(self) -> dict[str, object]:
        return asdict(self.params)


def _fit(confidence: sp.csr_matrix, params: FactorParams, threads: int, seed: int) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares  # imported when fitting: serving does not need it
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    if confidence.nnz < PARALLEL_FROM:
        threads = 1
    with threadpool_limits(1, "blas"):  # implicit parallelizes itself; BLAS threads inside it only contend
        if params.algorithm == "als":
            model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                            iterations=params.iterations, num_threads=threads, random_state=seed)
        else:
            model = BayesianPersonalizedRanking(factors=params.factors, regularization=params.regularization,
                                                learning_rate=params.learning_rate,
                                                iterations=params.iterations * 10, num_threads=1,
                                                random_state=seed)  # threads race on the factors: not repeatable
        model.fit(confidence, show_progress=False)
    return np.asarray(model.item_factors, dtype=np.float32)
