"""Drift by the population stability index: nothing for the same population, a flag for a moved one."""

from __future__ import annotations

import numpy as np

from persona.predict.drift import RETRAIN_PSI, measure, reference


def test_the_same_population_does_not_drift_and_a_moved_one_is_flagged_by_name() -> None:
    rng = np.random.default_rng(3)
    names = ["recency_days", "orders", "days_between_orders"]

    def population(n: int, recency_scale: float) -> tuple[np.ndarray, np.ndarray]:
        gaps = rng.exponential(20, n)
        gaps[rng.random(n) < 0.4] = np.nan  # one-order customers: missing
        matrix = np.column_stack([rng.exponential(recency_scale, n), rng.poisson(2, n).astype(float), gaps])
        return matrix, 1 / (1 + matrix[:, 0] / 30)

    matrix, scores = population(5000, 30.0)
    trained = reference(matrix, names, scores)
    again, again_scores = population(4000, 30.0)
    same = measure(trained, again, names, again_scores)
    assert not same["flagged"] and same["score_psi"] < 0.05 and max(same["features"].values()) < 0.05
    moved, moved_scores = population(4000, 90.0)  # customers come back three times less often
    report = measure(trained, moved, names, moved_scores)
    assert report["flagged"] and report["drifted_features"] == ["recency_days"]
    assert report["features"]["recency_days"] > RETRAIN_PSI and report["score_psi"] > RETRAIN_PSI
    assert report["features"]["orders"] < 0.05 and report["customers"] == 4000
