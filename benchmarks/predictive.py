"""Churn and purchase propensity: ROC-AUC on the synthetic shop and on CDNOW, against recency
alone and (on CDNOW) BG/NBD on the same split; and what scoring costs as the store grows.

    python benchmarks/predictive.py                       # synthetic 3,000 customers, CDNOW, scoring 10k/100k
    python benchmarks/predictive.py --customers 1500 --scoring 2000   # quick

1. **Synthetic shop** (`persona.synth.Workload`, `--customers` over 150 days), through the
   library: appended and folded, then `lifecycle.train` for `propensity` (order in the next 30
   days) and `churn` (no order in the next 30 days, customers with an order): fitted as of
   now - 60 days, validated as of now - 30 days. Their figures, recency's on the same customers.
2. **CDNOW** (the 2,357 customers of Fader, Hardie & Lee): every transaction sent as an
   `Order Completed` event and folded. Label: any purchase in the 39-week holdout (from
   1997-10-01). The classifier is fitted as of 1997-07-01 on "a purchase in the 13 weeks to
   1997-09-30" (the only earlier window with an outcome; the ranking is what carries over),
   then scores every customer as of 1997-10-01. Compared, on the same customers: BG/NBD fitted
   on the calibration period (its P(alive) and its expected purchases), recency, frequency.
3. **Scoring cost**: `lifecycle.score` for `propensity` and `clv` on shops of `--scoring`
   customers (comma-separated; each 10x the last shows how the cost grows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.recommend.shop import end_of, fill_shop
from tests.support.cdnow import CALIBRATION_END, HOLDOUT_END, cdnow_events, cdnow_sample

from persona.config import load_config
from persona.engine import Engine
from persona.log.events import to_micros
from persona.predict import lifecycle
from persona.predict.classifiers import DAY_US, TARGETS, dataset, fit
from persona.predict.clv import BGNBD
from persona.predict.features import read_events


def engine_in(directory: str, **settings: object) -> Engine:
    return Engine.open(replace(load_config(env={}, data_dir=Path(directory), recs_retrain=0), **settings))


def synthetic(customers: int) -> None:
    with tempfile.TemporaryDirectory() as directory, engine_in(directory, churn_days=30) as engine:
        started = time.perf_counter()
        workload = fill_shop(engine, customers=customers, days=150)
        filled = time.perf_counter() - started
        now = end_of(workload)
        print(f"## Synthetic shop: {customers:,} customers over 150 days ({engine.log.count():,} events, "
              f"filled in {filled:.0f} s)\n")
        print("| model | validation customers | base rate | ROC-AUC | recency ROC-AUC | PR-AUC | Brier "
              "| top-decile lift | train s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in ("propensity", "churn"):
            started = time.perf_counter()
            version = lifecycle.train(engine, kind, now)
            m = version.metrics
            print(f"| {kind} | {m['customers']:,} | {m['base_rate']:.3f} | **{m['roc_auc']:.3f}** | "
                  f"{m['recency_roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['brier']:.3f} | {m['lift'][0]['lift']:.2f} | "
                  f"{time.perf_counter() - started:.1f} |")
        print()


def cdnow_orders(engine: Engine) -> None:
    events = cdnow_events()
    for start in range(0, len(events), 5000):
        engine.log.append(events[start:start + 5000])
    engine.processor.run_until_caught_up()


def cdnow() -> None:
    data = cdnow_sample()
    calibration_end = to_micros(datetime.combine(CALIBRATION_END, clock(), UTC)) + DAY_US  # 1997-10-01
    holdout_end = to_micros(datetime.combine(HOLDOUT_END, clock(), UTC)) + DAY_US
    earlier = to_micros(datetime(1997, 7, 1, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as directory, engine_in(directory) as engine:
        cdnow_orders(engine)
        events = read_events(engine.log, engine.state, holdout_end)
        target = TARGETS["propensity"]
        train = dataset(events, target, earlier, (calibration_end - earlier) // DAY_US)
        model = fit(train)
        scored = dataset(events, target, calibration_end, (holdout_end - calibration_end) // DAY_US,
                         [c for c in _columns(events, earlier)])
        by_id = {pid: i for i, pid in enumerate(scored.customers)}
        profiles = engine.state.combined(scored.customers)
        # BG/NBD on the same customers, in the paper's calibration summary (x, t_x, T in weeks)
        number = {int(profiles[pid].identifiers["user_id"][0][1:]): pid for pid in scored.customers}
        order = np.asarray([by_id[number[int(i)]] for i in data.ids])
        y = scored.y[order]
        gbm = model.predict_proba(scored.X)[:, 1][order]
        bgnbd = BGNBD.fit(data.x, data.t_x, data.T)
    assert np.array_equal(y, data.holdout_x > 0)
    print(f"## CDNOW: any purchase in the 39-week holdout ({len(y):,} customers, {y.mean():.1%} bought)\n")
    print(f"Classifier fitted as of 1997-07-01 on {len(train.y):,} customers (label: a purchase by 1997-09-30, "
          f"{train.y.mean():.1%}); every score as of 1997-10-01.\n")
    print("| score | ROC-AUC |\n|---|---:|")
    for name, score in (("gradient-boosted trees (persona's propensity features), calibrated", gbm),
                        ("BG/NBD expected purchases in the holdout", bgnbd.conditional_expected(39, data.x, data.t_x,
                                                                                               data.T)),
                        ("BG/NBD P(alive)", bgnbd.p_alive(data.x, data.t_x, data.T)),
                        ("recency alone", -(data.T - data.t_x)),
                        ("frequency alone", data.x)):
        print(f"| {name} | {roc_auc_score(y, score):.3f} |")
    print()


def _columns(events: object, cutoff: int) -> list[str]:
    from persona.predict.features import features_as_of

    return [c.name for c in features_as_of(events, cutoff).columns]  # type: ignore[arg-type]


def scoring(sizes: list[int]) -> None:
    print("## Scoring cost (propensity: one pass over the log + features + trees; clv: profiles only)\n")
    print("| customers | events | propensity: score s | customers/s | clv: score s | customers/s |\n"
          "|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        with tempfile.TemporaryDirectory() as directory, engine_in(directory, churn_days=30) as engine:
            workload = fill_shop(engine, customers=size, days=150)
            now = end_of(workload)
            propensity = lifecycle.train(engine, "propensity", now)
            clv = lifecycle.train(engine, "clv", now)
            timings = []
            for version in (propensity, clv):
                started = time.perf_counter()
                lifecycle.score(engine, version, now)
                timings.append(time.perf_counter() - started)
            print(f"| {size:,} | {engine.log.count():,} | {timings[0]:.1f} | {size / timings[0]:,.0f} | "
                  f"{timings[1]:.1f} | {size / timings[1]:,.0f} |", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000, help="the synthetic shop's customers")
    parser.add_argument("--scoring", default="10000,100000", help="shop sizes to time scoring on, comma-separated")
    args = parser.parse_args()
    synthetic(args.customers)
    cdnow()
    scoring([int(s) for s in args.scoring.split(",") if s.strip()])


if __name__ == "__main__":
    main()
