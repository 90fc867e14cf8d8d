"""Churn and purchase propensity: gradient-boosted trees on features as of a cut-off, calibrated.

| kind | label, for each customer at a cut-off | who | trait |
|---|---|---|---|
| `propensity` | orders in the `horizon` days after | every customer seen before it | `purchase_propensity_30d` |
| `churn` | no order in the `horizon` days after | customers with an order before it | `churn_probability` |

Training needs two cut-offs in the past (`predict/features.py`): the model is fitted on the
customers as of `now - 2 x horizon`, labelled by the horizon after, and validated on those as
of `now - horizon`, labelled by what happened since. The training rows are stacked from up to
three cut-offs a horizon apart (`now - 2, 3, 4 x horizon`, those the log reaches back to): the
same customers at other ages, since tenure and recency move from one cut-off to the next and
trees do not extrapolate (+0.015 ROC-AUC on the synthetic shop; see benchmarks/RESULTS.md for
CDNOW, where it helps a month apart and hurts a quarter apart). The
validation's figures are the version's metrics: ROC-AUC and PR-AUC, the Brier score,
calibration by decile of the score, lift and cumulative gain by decile, and the ROC-AUC of
recency alone on the same customers (the baseline to beat). The version kept is then refitted
on the cut-offs one horizon later, the most recent data with a known outcome, and scores every
customer as of now.

The trees are scikit-learn's HistGradientBoostingClassifier (missing values are native: days
between orders of a one-order customer), calibrated by isotonic regression (sigmoid below 1,000
customers) in 3-fold cross-validation, so a score of 0.3 means about 30% of such customers.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona.errors import NotEnoughData
from persona.jobs.store import ModelTraitStore
from persona.log.events import iso, now_micros
from persona.log.store import EventLog
from persona.predict import drift
from persona.predict.features import Events, aligned, features_as_of, labels, read_events
from persona.predict.ranking import percentiles
from persona.predict.registry import ModelRegistry, ModelVersion
from persona.profiles.sql import SQLStateStore

DAY_US = 86_400 * 1_000_000
MIN_CUSTOMERS = 200   # per cut-off
MIN_PER_CLASS = 20    # customers of each outcome, per cut-off
STACKED_CUTOFFS = 3   # training cut-offs, a horizon apart


@dataclass(frozen=True)
class Target:
    kind: str
    trait: str
    says: str  # what the label is, in words
    churn_on: str = "order"  # churn: no `order`, or no `activity` at all

    def label(self, ordered: np.ndarray, active: np.ndarray) -> np.ndarray:
        if self.kind == "propensity":
            return ordered
        return ~(active if self.churn_on == "activity" else ordered)

    def who(self, orders: np.ndarray) -> np.ndarray:
        """Which customers the model is for, by their orders before the cut-off."""
        return np.ones(len(orders), dtype=bool) if self.kind == "propensity" else orders > 0


TARGETS = {
    "propensity": Target("propensity", "purchase_propensity_30d", "orders in the next {} days"),
    "churn": Target("churn", "churn_probability", "no order in the next {} days (customers with an order)"),
}


@dataclass(frozen=True)
class Dataset:
    customers: list[str]
    X: np.ndarray
    y: np.ndarray
    recency_days: np.ndarray


def dataset(events: Events, target: Target, cutoff: int, horizon_days: int, columns: list[str] | None = None
            ) -> Dataset:
    """The customers the target is for as of `cutoff`, their features, and their labels from the
    horizon after (what happened before `events.until`)."""
    features = features_as_of(events, cutoff)
    names = columns or [c.name for c in features.columns]
    matrix = aligned(features, names)
    orders = features.column("orders")
    ordered, active = labels(events, features.customers, cutoff, cutoff + horizon_days * DAY_US)
    keep = target.who(orders)
    return Dataset([pid for pid, k in zip(features.customers, keep, strict=True) if k], matrix[keep],
                   target.label(ordered, active)[keep], features.column("recency_days")[keep])


def stacked(events: Events, target: Target, cutoffs: list[int], horizon_days: int, columns: list[str]) -> Dataset:
    """The datasets at several cut-offs as one."""
    parts = [dataset(events, target, c, horizon_days, columns) for c in cutoffs]
    return Dataset([pid for part in parts for pid in part.customers], np.vstack([part.X for part in parts]),
                   np.concatenate([part.y for part in parts]), np.concatenate([part.recency_days for part in parts]))


def fit(data: Dataset, seed: int = 0) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    trees = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                           l2_regularization=1.0, random_state=seed)
    method = "isotonic" if len(data.y) >= 1000 else "sigmoid"
    return CalibratedClassifierCV(trees, method=method, cv=3).fit(data.X, data.y)


def evaluate(model: Any, data: Dataset, target: Target) -> dict[str, Any]:
    """Figures on held-out customers: discrimination, calibration, lift, and the recency baseline."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    score = model.predict_proba(data.X)[:, 1]
    y = data.y.astype(bool)
    base = float(y.mean())
    recency = -data.recency_days if target.kind == "propensity" else data.recency_days
    order = np.argsort(-score, kind="stable")
    deciles = np.array_split(order, 10)
    calibration = [{"decile": i + 1, "mean_score": round(float(score[d].mean()), 4),
                    "observed": round(float(y[d].mean()), 4), "customers": len(d)} for i, d in enumerate(deciles)]
    gained, lift = 0, []
    for i, d in enumerate(deciles):
        gained += int(y[d].sum())
        lift.append({"decile": i + 1, "lift": round(float(y[d].mean()) / base, 3) if base else 0.0,
                     "cumulative_gain": round(gained / max(int(y.sum()), 1), 4)})
    return {
        "roc_auc": round(float(roc_auc_score(y, score)), 4),
        "pr_auc": round(float(average_precision_score(y, score)), 4),
        "brier": round(float(brier_score_loss(y, score)), 4),
        "base_rate": round(base, 4),
        "recency_roc_auc": round(float(roc_auc_score(y, recency)), 4),
        "customers": len(y),
        "calibration": calibration,
        "lift": lift,
    }


def _check(data: Dataset, when: str) -> None:
    positives, customers = int(data.y.sum()), len(set(data.customers))  # stacked cut-offs repeat customers
    if customers < MIN_CUSTOMERS:
        raise NotEnoughData(f"only {customers:,} customers as of the {when} cut-off; at least {MIN_CUSTOMERS} "
                            "are needed")
    if min(positives, len(data.y) - positives) < MIN_PER_CLASS:
        raise NotEnoughData(f"the label has {positives:,} positive and {len(data.y) - positives:,} negative "
                            f"rows as of the {when} cut-off; each needs at least {MIN_PER_CLASS}")


def train_classifier(log: EventLog, state: SQLStateStore, registry: ModelRegistry, kind: str,
                     horizon_days: int = 30, now: int | None = None, seed: int = 0, churn_on: str = "order",
                     progress: Callable[[int], object] | None = None, events: Events | None = None) -> ModelVersion:
    """Backtest on two past cut-offs, refit on the later one, register (and activate) the version.
    `events`: the log already read up to `now` (one read serves every model of a refresh)."""
    target = TARGETS[kind]
    if kind == "churn" and churn_on == "activity":
        target = Target("churn", target.trait, "no activity in the next {} days (customers with an order)",
                        "activity")
    at = now_micros() if now is None else now
    events = events if events is not None and events.until == at else read_events(log, state, at, progress)
    horizon = horizon_days * DAY_US
    early, late = at - 2 * horizon, at - horizon
    columns = [c.name for c in features_as_of(events, early).columns]
    timestamps = np.frombuffer(events.arrays.timestamp, dtype=np.int64)
    first = int(timestamps.min()) if len(timestamps) else at
    cutoffs = [c for c in (early - i * horizon for i in range(STACKED_CUTOFFS)) if c > first] or [early]
    train = stacked(events, target, cutoffs, horizon_days, columns)
    _check(train, "training")
    validation = dataset(events, target, late, horizon_days, columns)
    _check(validation, "validation")
    metrics = evaluate(fit(train, seed), validation, target)
    final = fit(stacked(events, target, [c + horizon for c in cutoffs], horizon_days, columns), seed)
    kept = drift.reference(validation.X, columns, final.predict_proba(validation.X)[:, 1])
    params = {"horizon_days": horizon_days, "label": target.says.format(horizon_days), "trait": target.trait,
              "churn_on": target.churn_on,
              "columns": columns, "algorithm": "HistGradientBoostingClassifier + CalibratedClassifierCV",
              "reference": kept}
    trained_on = {"training_cutoffs": [iso(c) for c in cutoffs], "validation_cutoff": iso(late), "as_of": iso(at),
                  "customers": len(validation.y), "training_rows": len(train.y)}
    return registry.register(kind, params, metrics, columns, trained_on, blob=pickle.dumps(final))


@dataclass(frozen=True)
class Scores:
    version: ModelVersion
    customers: int
    mean: float
    drift: dict[str, Any] | None

    def summary(self) -> str:
        return (f"{self.customers:,} customers scored by {self.version.label}; mean "
                f"{self.version.params['trait']} {self.mean:.3f}" + drift.words(self.drift))


def score_classifier(log: EventLog, state: SQLStateStore, traits: ModelTraitStore, registry: ModelRegistry,
                     version: ModelVersion, now: int | None = None,
                     progress: Callable[[int], object] | None = None, events: Events | None = None) -> Scores:
    """Score every customer the model is for as of now; replaces what this kind's job wrote before."""
    target = TARGETS[version.kind]
    blob = registry.blob(version.id)
    if blob is None:
        raise NotEnoughData(f"{version.label} keeps no fitted model")
    model = pickle.loads(blob)  # our own store's bytes, written by train_classifier
    at = now_micros() if now is None else now
    events = events if events is not None and events.until == at else read_events(log, state, at, progress)
    features = features_as_of(events, at)
    keep = target.who(features.column("orders"))
    matrix = aligned(features, version.params["columns"])[keep]
    customers = [pid for pid, k in zip(features.customers, keep, strict=True) if k]
    score = model.predict_proba(matrix)[:, 1] if len(customers) else np.zeros(0)
    traits.replace(version.kind, {pid: {target.trait: round(float(p), 4), f"{target.trait}_percentile": int(rank),
                                        f"{version.kind}_model": version.label}
                                  for pid, p, rank in zip(customers, score, percentiles(score), strict=True)})
    report = None
    if len(customers) and "reference" in version.params:
        report = drift.measure(version.params["reference"], matrix, version.params["columns"], score)
        registry.record_drift(version.id, report)
    return Scores(version, len(customers), float(score.mean()) if len(score) else 0.0, report)
