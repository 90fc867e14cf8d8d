"""Customer lifetime value on CDNOW: BG/NBD + Gamma-Gamma against naive baselines, per customer.

    python benchmarks/clv_cdnow.py

The CDNOW sample of Fader, Hardie & Lee (2005) (2,357 customers, in the `lifetimes` wheel):
fitted on the 39-week calibration period, scored on the 39-week holdout. Per customer:

- holdout transactions: the mean absolute error of BG/NBD's E[Y(39) | x, t_x, T] against the
  naive forecast "the calibration rate x the holdout length" (x / T x 39);
- holdout spend: E[Y(39)] x Gamma-Gamma's E[M | x, m] against the calibration spend rate x 39;
- "any purchase in the holdout": ROC-AUC of P(alive), of E[Y(39)], of recency alone (the
  sooner the last purchase, the likelier) and of frequency alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.cdnow import cdnow_sample

from persona.predict.clv import BGNBD, GammaGamma

HOLDOUT = 39.0  # weeks


def main() -> None:
    data = cdnow_sample()
    started = time.perf_counter()
    bgnbd = BGNBD.fit(data.x, data.t_x, data.T)
    spend = GammaGamma.fit(data.x, data.m)
    fitted = time.perf_counter() - started

    purchases = bgnbd.conditional_expected(HOLDOUT, data.x, data.t_x, data.T)
    naive_purchases = data.x / data.T * HOLDOUT
    value = purchases * spend.expected_spend(data.x, data.m)
    calibration_spend = data.x * data.m  # the repeat purchases' dollars (the first purchase is not repeat)
    naive_value = calibration_spend / data.T * HOLDOUT
    bought = data.holdout_x > 0

    print(f"## CLV on CDNOW ({len(data.ids):,} customers; fitted in {fitted * 1000:.0f} ms)\n")
    print(f"BG/NBD r={bgnbd.r:.3f} alpha={bgnbd.alpha:.3f} a={bgnbd.a:.3f} b={bgnbd.b:.3f} "
          f"(LL {bgnbd.log_likelihood:.1f}); Gamma-Gamma p={spend.p:.2f} q={spend.q:.2f} gamma={spend.gamma:.2f} "
          f"({spend.customers} customers with repeat purchases)\n")
    print("| per customer, holdout (39 weeks) | BG/NBD (+ Gamma-Gamma) | naive: calibration rate x 39 weeks |")
    print("|---|---:|---:|")
    print(f"| MAE of transactions | {np.abs(purchases - data.holdout_x).mean():.3f} | "
          f"{np.abs(naive_purchases - data.holdout_x).mean():.3f} |")
    print(f"| MAE of spend ($) | {np.abs(value - data.holdout_spend).mean():.2f} | "
          f"{np.abs(naive_value - data.holdout_spend).mean():.2f} |")
    print(f"| total transactions (actual {data.holdout_x.sum():,.0f}) | {purchases.sum():,.0f} | "
          f"{naive_purchases.sum():,.0f} |")
    print(f"| total spend (actual ${data.holdout_spend.sum():,.0f}) | ${value.sum():,.0f} | "
          f"${naive_value.sum():,.0f} |")
    print(f"\nAny purchase in the holdout ({bought.mean():.1%} of customers): ROC-AUC\n")
    print("| score | ROC-AUC |\n|---|---:|")
    for name, score in (("BG/NBD P(alive)", bgnbd.p_alive(data.x, data.t_x, data.T)),
                        ("BG/NBD expected purchases", purchases),
                        ("recency alone (weeks since the last purchase, negated)", -(data.T - data.t_x)),
                        ("frequency alone (repeat purchases)", data.x)):
        print(f"| {name} | {roc_auc_score(bought, score):.3f} |")


if __name__ == "__main__":
    main()
