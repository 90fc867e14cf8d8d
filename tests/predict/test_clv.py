"""BG/NBD and Gamma-Gamma reproduce Fader, Hardie & Lee (2005) on the CDNOW sample: 2,357
customers, 39 weeks of calibration, 39 of holdout (the data ships in the `lifetimes` wheel)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from persona.errors import NotEnoughData
from persona.predict.clv import BGNBD, GammaGamma, lifetime_value
from tests.support.cdnow import Cdnow, cdnow_sample, datasets


@pytest.fixture(scope="module")
def cdnow() -> Cdnow:
    return cdnow_sample()


@pytest.fixture(scope="module")
def bgnbd(cdnow: Cdnow) -> BGNBD:
    return BGNBD.fit(cdnow.x, cdnow.t_x, cdnow.T)


def test_the_calibration_summary_is_the_papers(cdnow: Cdnow) -> None:
    """Our x, t_x, T (weeks) and mean repeat spend equal the summaries shipped with the data."""
    summary = list(csv.DictReader((datasets() / "cdnow_customers_summary.csv").read_text().splitlines()))
    assert len(summary) == len(cdnow.ids) == 2357
    for column, ours in (("frequency", cdnow.x), ("recency", cdnow.t_x), ("T", cdnow.T)):
        assert np.abs(np.asarray([float(r[column]) for r in summary]) - ours).max() < 0.005, column
    with_spend = (datasets() / "cdnow_customers_summary_with_transactions.csv").read_text()
    spend = list(csv.DictReader(with_spend.splitlines()))
    assert np.abs(np.asarray([float(r["zbar"]) for r in spend]) - cdnow.m).max() < 0.0051
    assert cdnow.x.sum() == 2457  # repeat transactions in the calibration period


def test_bgnbd_reproduces_the_published_estimates(bgnbd: BGNBD) -> None:
    # Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert (round(bgnbd.r, 3), round(bgnbd.alpha, 3), round(bgnbd.a, 3), round(bgnbd.b, 3)) == (
        0.243, 4.414, 0.793, 2.426)
    assert round(bgnbd.log_likelihood, 1) == -9582.4 and bgnbd.customers == 2357
    # The paper's worked example: 2 repeat purchases, the last at 30.43 weeks, observed 38.86
    # weeks: 1.226 purchases expected in the next 39 weeks.
    assert round(float(bgnbd.conditional_expected(39, 2, 30.43, 38.86)), 3) == 1.226


def test_the_holdout_totals(cdnow: Cdnow, bgnbd: BGNBD) -> None:
    """Weeks 40-78: 1,882 repeat transactions (4,339 cumulative at week 78). The model's forecast,
    per customer given their history or for the cohort from its parameters alone, is ~1,660:
    like the paper's, it falls short of the holdout by about a tenth."""
    assert cdnow.holdout_x.sum() == 1882 and cdnow.x.sum() + cdnow.holdout_x.sum() == 4339
    conditional = float(bgnbd.conditional_expected(39, cdnow.x, cdnow.t_x, cdnow.T).sum())
    cohort = float((bgnbd.expected(cdnow.T + 39) - bgnbd.expected(cdnow.T)).sum())
    assert round(conditional) == 1653 and round(cohort) == 1667
    assert round(float(bgnbd.expected(cdnow.T).sum())) == 2494  # the calibration period: 2,457 observed
    # Per number of calibration purchases, the forecast follows the holdout's mean (the paper's Figure 4).
    for x in range(0, 7):
        at = cdnow.x == x
        forecast = bgnbd.conditional_expected(39, cdnow.x[at], cdnow.t_x[at], cdnow.T[at]).mean()
        assert abs(forecast - cdnow.holdout_x[at].mean()) < 0.4 + 0.1 * x, x


def test_p_alive_is_a_probability_that_falls_with_silence(bgnbd: BGNBD) -> None:
    assert float(bgnbd.p_alive(0, 0, 30)) == 1.0  # no repeat purchase: no chance to have dropped out yet
    quiet = bgnbd.p_alive(3, 10.0, np.asarray([12.0, 20.0, 40.0, 80.0]))
    assert np.all(np.diff(quiet) < 0) and np.all((quiet > 0) & (quiet < 1))
    # Bought at the very end: only the chance of dropping out right after that purchase is left.
    assert float(bgnbd.p_alive(3, 39.0, 39.0)) == pytest.approx(1 / (1 + bgnbd.a / (bgnbd.b + 2)))


def test_gamma_gamma_reproduces_the_published_estimates(cdnow: Cdnow) -> None:
    # Fader, Hardie & Lee (2005), "RFM and CLV": p = 6.25, q = 3.74, gamma = 15.44 (946 customers)
    spend = GammaGamma.fit(cdnow.x, cdnow.m)
    assert (round(spend.p, 2), round(spend.q, 2), round(spend.gamma, 2), spend.customers) == (6.25, 3.74, 15.44, 946)
    # A customer's expected average spend lies between their own and the population's.
    expected = float(spend.expected_spend(2, 100.0))
    assert spend.mean_spend < expected < 100.0
    assert float(spend.expected_spend(0, 0.0)) == pytest.approx(spend.mean_spend)


def test_lifetime_value_is_purchases_times_spend_discounted(cdnow: Cdnow, bgnbd: BGNBD) -> None:
    spend = GammaGamma.fit(cdnow.x, cdnow.m)
    x, t_x, T, m = 4, 30.0, 38.0, 40.0
    undiscounted = lifetime_value(bgnbd, spend, x, t_x, T, m, horizon=52.0)
    assert float(undiscounted) == pytest.approx(float(bgnbd.conditional_expected(52.0, x, t_x, T)
                                                      * spend.expected_spend(x, m)))
    assert float(lifetime_value(bgnbd, spend, x, t_x, T, m, horizon=52.0, discount_per_period=0.01)) < float(
        undiscounted)


def test_too_little_data_is_refused_with_a_reason() -> None:
    with pytest.raises(NotEnoughData, match="at least 20 customers"):
        BGNBD.fit([1, 0, 2], [3.0, 0.0, 5.0], [10.0, 10.0, 10.0])
    with pytest.raises(NotEnoughData, match="repeat purchases"):
        BGNBD.fit(np.zeros(50), np.zeros(50), np.full(50, 10.0))
    with pytest.raises(NotEnoughData, match="Gamma-Gamma"):
        GammaGamma.fit([1, 2], [10.0, 20.0])
