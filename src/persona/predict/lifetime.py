"""Lifetime value over the store: BG/NBD and Gamma-Gamma trained on every customer's orders,
registered as a `clv` model version, and scored as model traits.

What a customer's orders need to be summarized — the first and last order, how many, how much
— every profile already keeps (`Profile.orders`, over merged profiles), so training and scoring
read profiles a page at a time and never the log. Time is in weeks from each customer's first
order: `x` repeat orders, the last at `t_x`, observed for `T` until now. A customer's average
order value stands for the average of their repeat orders (the profile does not keep the first
order's value apart).

Scores (model traits, job `clv`, on every customer with an order):
`p_alive`, `expected_orders_90d`, `predicted_clv_12m` (expected orders in the next 52 weeks x
expected order value, undiscounted) and its percentile among the customers scored
(`predicted_clv_12m_percentile`, 1-100), `clv_model` (the version that made them, `clv@3`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona.jobs.store import ModelTraitStore
from persona.log.events import iso, now_micros
from persona.predict import drift
from persona.predict.clv import BGNBD, GammaGamma, lifetime_value
from persona.predict.ranking import percentiles
from persona.predict.registry import ModelRegistry, ModelVersion
from persona.profiles.sql import SQLStateStore

CLV = "clv"
PAGE = 2000
WEEK_US = 7 * 86_400 * 1_000_000
YEAR_WEEKS = 365.25 / 7
FEATURES = ["orders.count", "orders.revenue", "orders.first_at", "orders.last_at"]


@dataclass(frozen=True)
class Customers:
    """Every customer with an order, summarized as of a time."""

    ids: list[str]
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray
    as_of: int  # µs


def customers(state: SQLStateStore, as_of: int | None = None,
              progress: Callable[[int], object] | None = None) -> Customers:
    """Summaries of every profile with an order, as of `as_of` (now; or the newest order, if later)."""
    rows = list(_orders(state, progress))
    at = max([now_micros() if as_of is None else as_of, *(last for _, _, last, _, _ in rows)])
    first = np.asarray([r[1] for r in rows], dtype=np.float64)
    last = np.asarray([r[2] for r in rows], dtype=np.float64)
    count = np.asarray([r[3] for r in rows], dtype=np.float64)
    revenue = np.asarray([r[4] for r in rows], dtype=np.float64)
    return Customers([r[0] for r in rows], np.maximum(count - 1, 0), (last - first) / WEEK_US,
                     (at - first) / WEEK_US, np.where(count > 0, revenue / np.maximum(count, 1), 0.0), at)


def _orders(state: SQLStateStore, progress: Callable[[int], object] | None) -> Iterator[tuple[str, int, int, int,
                                                                                               float]]:
    after, read = None, 0
    while page := state.list_profiles(after, PAGE):
        for profile in page:
            orders = profile.orders
            if orders.count > 0 and orders.first_at is not None and orders.last_at is not None:
                yield profile.id, orders.first_at, max(orders.last_at, orders.first_at), orders.count, orders.revenue
        after, read = page[-1].id, read + len(page)
        if progress is not None:
            progress(read)


def train_clv(state: SQLStateStore, registry: ModelRegistry, as_of: int | None = None) -> ModelVersion:
    """Fit both models on every customer's orders and register (and activate) the version.
    NotEnoughData, with the reason, when there are too few customers or no repeat buyers."""
    data = customers(state, as_of)
    bgnbd = BGNBD.fit(data.x, data.t_x, data.T)
    spend = GammaGamma.fit(data.x, data.m)
    expected = bgnbd.conditional_expected(YEAR_WEEKS, data.x, data.t_x, data.T)
    metrics = {
        "customers": len(data.ids), "repeat_customers": int((data.x > 0).sum()),
        "bgnbd_log_likelihood_per_customer": round(bgnbd.log_likelihood / len(data.ids), 6),
        "gamma_gamma_log_likelihood_per_customer": round(spend.log_likelihood / max(spend.customers, 1), 6),
        "expected_orders_next_year": round(float(expected.sum()), 1),
        "mean_p_alive": round(float(bgnbd.p_alive(data.x, data.t_x, data.T).mean()), 4),
        "mean_order_value": round(spend.mean_spend, 2),
    }
    value = lifetime_value(bgnbd, spend, data.x, data.t_x, data.T, data.m, horizon=YEAR_WEEKS)
    params = {"bgnbd": {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b},
              "gamma_gamma": {"p": spend.p, "q": spend.q, "gamma": spend.gamma}, "time_unit": "week",
              "reference": drift.reference(_matrix(data), SUMMARY, value)}
    return registry.register(CLV, params, metrics, FEATURES, {"as_of": iso(data.as_of), "customers": len(data.ids)})


@dataclass(frozen=True)
class Scored:
    version: ModelVersion
    customers: int
    total_clv_12m: float
    drift: dict[str, Any] | None = None

    def summary(self) -> str:
        return (f"{self.customers:,} customers scored by {self.version.label}; predicted 12-month value "
                f"{self.total_clv_12m:,.0f} in all" + drift.words(self.drift))


def score_clv(state: SQLStateStore, traits: ModelTraitStore, version: ModelVersion, as_of: int | None = None,
              progress: Callable[[int], object] | None = None, registry: ModelRegistry | None = None) -> Scored:
    """Write every customer's scores from `version`, replacing what the `clv` job wrote before."""
    bgnbd, spend = models_of(version)
    data = customers(state, as_of, progress)
    alive = bgnbd.p_alive(data.x, data.t_x, data.T)
    soon = bgnbd.conditional_expected(90 / 7, data.x, data.t_x, data.T)
    value = lifetime_value(bgnbd, spend, data.x, data.t_x, data.T, data.m, horizon=YEAR_WEEKS)
    scores: dict[str, dict[str, Any]] = {
        pid: {"p_alive": round(float(a), 4), "expected_orders_90d": round(float(e), 4),
              "predicted_clv_12m": round(float(v), 2), "predicted_clv_12m_percentile": int(rank),
              "clv_model": version.label}
        for pid, a, e, v, rank in zip(data.ids, alive, soon, value, percentiles(value), strict=True)}
    traits.replace(CLV, scores)
    report = None
    if registry is not None and len(scores) and "reference" in version.params:
        report = drift.measure(version.params["reference"], _matrix(data), SUMMARY, value)
        registry.record_drift(version.id, report)
    return Scored(version, len(scores), float(value.sum()), report)


SUMMARY = ["repeat_orders", "weeks_to_last_order", "weeks_since_first_order", "average_order_value"]


def _matrix(data: Customers) -> np.ndarray:
    return np.column_stack([data.x, data.t_x, data.T, data.m]) if len(data.ids) else np.zeros((0, 4))


def models_of(version: ModelVersion) -> tuple[BGNBD, GammaGamma]:
    b, g = version.params["bgnbd"], version.params["gamma_gamma"]
    return BGNBD(b["r"], b["alpha"], b["a"], b["b"]), GammaGamma(g["p"], g["q"], g["gamma"])

