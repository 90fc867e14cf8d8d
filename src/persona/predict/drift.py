"""Drift: how far the customers a model scores now have moved from those it was trained on.

When a version is trained, the distribution of each feature and of its scores on the training
customers is kept as the **reference**: the shares of customers in ten bins cut at the deciles
(missing values in a bin of their own). Each scoring compares the customers scored with it by
the population stability index, PSI = sum((now - then) x ln(now / then)) over the bins:
under 0.1 nothing to see, 0.1 to 0.25 a shift worth a look, above `RETRAIN_PSI` (0.25) the
model is flagged for retraining, which the scheduled refresh then does (unless a rollback pins
the version).
"""

from __future__ import annotations

from typing import Any

import numpy as np

RETRAIN_PSI = 0.25
WATCH_PSI = 0.1
BINS = 10
FLOOR = 1e-4  # an empty bin's share, so the logarithm stays finite


def reference(matrix: np.ndarray, names: list[str], scores: np.ndarray) -> dict[str, Any]:
    """The bins and shares of every column and of the scores, as JSON-friendly lists."""
    columns = {name: _bins(matrix[:, j]) for j, name in enumerate(names)}
    return {"features": columns, "score": _bins(scores), "customers": len(scores)}


def _bins(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])) if len(present) else np.zeros(0)
    return {"edges": [float(e) for e in edges], "shares": _shares(values, edges).tolist()}


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, missing.sum()).astype(np.float64)
    return counts / max(len(values), 1)


def psi(then: list[float], now: np.ndarray) -> float:
    a, b = np.maximum(np.asarray(then), FLOOR), np.maximum(now, FLOOR)
    return float(np.sum((b - a) * np.log(b / a)))


def measure(ref: dict[str, Any], matrix: np.ndarray, names: list[str], scores: np.ndarray) -> dict[str, Any]:
    """PSI of every feature and of the scores against the reference; `flagged` past `RETRAIN_PSI`."""
    features = {}
    for j, name in enumerate(names):
        kept = ref["features"].get(name)
        if kept is not None:
            features[name] = round(psi(kept["shares"], _shares(matrix[:, j], np.asarray(kept["edges"]))), 4)
    score = round(psi(ref["score"]["shares"], _shares(scores, np.asarray(ref["score"]["edges"]))), 4)
    drifted = sorted((name for name, value in features.items() if value > RETRAIN_PSI),
                     key=lambda name: -features[name])
    return {"score_psi": score, "features": features, "drifted_features": drifted,
            "flagged": score > RETRAIN_PSI or bool(drifted), "customers": len(scores),
            "reference_customers": ref["customers"]}

def words(report: dict[str, Any] | None) -> str:
    """`; score PSI 0.031`, and whether it drifted, for a scoring's log line."""
    if report is None:
        return ""
    said = f"; score PSI {report['score_psi']:.3f}"
    if report["flagged"]:
        said += " (drifted" + (f": {', '.join(report['drifted_features'][:3])}" if report["drifted_features"]
                               else "") + "; flagged for retraining)"
    return said

