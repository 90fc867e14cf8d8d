"""Churn and purchase propensity: ROC-AUC on the synthetic shop and on CDNOW, against recency
alone and (on CDNOW) BG/NBD on the same split; and what scoring costs as the store grows.

    python benchmarks/predictive.py                       # synthetic 3,000 customers, CDNOW, scoring 10k/100k
    python benchmarks/predictive.py --customers 1500 --scoring 2000   # quick
    python benchmarks/predictive.py --scoring-only --scoring 10000,100000,1000000 --scoring-days 10 \
        --shops /tmp/shops                                # scoring cost up to a million customers

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
   customers over `--scoring-days` (comma-separated; each 10x the last shows how the cost grows),
   in a fresh process whose peak resident memory is reported. Both models are trained once, on a
   reference shop (10,000 customers over 65 days: training needs 61 days or more), and registered
   in every shop, so the shops can be short. Building a shop is not timed; `--shops DIR` keeps
   each one there and reuses it (a million customers take half an hour or more to build).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.recommend.shop import end_of, fill_shop
from tests.support.cdnow import CALIBRATION_END, HOLDOUT_END, cdnow_events, cdnow_sample

from persona.config import load_config
from persona.engine import Engine
from persona.log.events import to_micros
from persona.predict import lifecycle
from persona.predict.classifiers import DAY_US, TARGETS, dataset, fit, stacked
from persona.predict.clv import BGNBD
from persona.predict.features import read_events

REFERENCE = (10_000, 65)  # customers and days of the shop the scored models are trained on


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
        horizon = (calibration_end - earlier) // DAY_US
        columns = _columns(events, earlier)
        scored = dataset(events, target, calibration_end, (holdout_end - calibration_end) // DAY_US, columns)
        by_id = {pid: i for i, pid in enumerate(scored.customers)}
        profiles = engine.state.combined(scored.customers)
        # BG/NBD on the same customers, in the paper's calibration summary (x, t_x, T in weeks)
        number = {int(profiles[pid].identifiers["user_id"][0][1:]): pid for pid in scored.customers}
        order = np.asarray([by_id[number[int(i)]] for i in data.ids])
        y = scored.y[order]
        trees, month = {}, 30 * DAY_US
        for name, cutoffs in (("one cut-off, 1997-07-01", [earlier]),
                              ("three a month apart (07-01, 06-01, 05-02)", [earlier - i * month for i in range(3)]),
                              ("two a quarter apart (07-01, 04-01)", [earlier, earlier - horizon * DAY_US])):
            model = fit(stacked(events, target, cutoffs, horizon, columns))
            trees[f"gradient-boosted trees, calibrated, trained on {name}"] = model.predict_proba(scored.X)[:, 1][order]
        bgnbd = BGNBD.fit(data.x, data.t_x, data.T)
    assert np.array_equal(y, data.holdout_x > 0)
    print(f"## CDNOW: any purchase in the 39-week holdout ({len(y):,} customers, {y.mean():.1%} bought)\n")
    print("Classifiers labelled by a purchase in the 92 days after each cut-off (the last ends 1997-09-30); "
          "every score as of 1997-10-01.\n")
    print("| score | ROC-AUC |\n|---|---:|")
    for name, score in (*trees.items(),
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


def scoring(sizes: list[int], days: int, shops: Path | None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = shops or Path(scratch)
        models = trained_models(folder / f"{REFERENCE[0]}-{REFERENCE[1]}d")
        print(f"## Scoring cost over {days} days (propensity: one pass over the log + features + trees; "
              f"clv: profiles only; both trained on {REFERENCE[0]:,} customers over {REFERENCE[1]} days)\n")
        print("| customers | events | propensity: score s | customers/s | peak MiB | clv: score s | customers/s "
              "| peak MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            directory = folder / f"{size}-{days}d"
            now, events = built_shop(directory, size, days)
            with engine_in(str(directory), churn_days=30) as engine:
                versions = [engine.models.register(**model).id for model in models]
            (propensity, propensity_peak), (clv, clv_peak) = (timed_score(directory, v, now) for v in versions)
            print(f"| {size:,} | {events:,} | {propensity:.1f} | {size / propensity:,.0f} | {propensity_peak:,.0f} "
                  f"| {clv:.1f} | {size / clv:,.0f} | {clv_peak:,.0f} |", flush=True)
            if shops is None:
                shutil.rmtree(directory)  # a million customers' log is tens of GB
    print()


def trained_models(directory: Path) -> list[dict[str, Any]]:
    """Propensity and clv trained on the reference shop, as `ModelRegistry.register` takes them: every
    scoring shop scores with these (what a model costs to apply does not depend on where it was fitted,
    and training needs 61 days or more of history)."""
    now, _ = built_shop(directory, *REFERENCE)
    with engine_in(str(directory), churn_days=30) as engine:
        models = []
        for kind in ("propensity", "clv"):
            v = lifecycle.train(engine, kind, now)
            models.append({"kind": kind, "params": v.params, "metrics": v.metrics, "features": v.features,
                           "trained_on": v.trained_on, "blob": engine.models.blob(v.id)})
        return models


def built_shop(directory: Path, size: int, days: int) -> tuple[int, int]:
    """The shop's `now` and events, filled into `directory` unless a finished one is there."""
    done = directory / "shop.json"
    if not done.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with engine_in(str(directory), churn_days=30) as engine:
            now = end_of(fill_shop(engine, customers=size, days=days))
            done.write_text(json.dumps({"now": now, "events": engine.log.count()}))
    shop = json.loads(done.read_text())
    return shop["now"], shop["events"]


def timed_score(directory: Path, version: int, now: int) -> tuple[float, float]:
    """Seconds `lifecycle.score` takes in a fresh process, and that process's peak resident MiB."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_score_in_child, (str(directory), version, now))


def _score_in_child(directory: str, version: int, now: int) -> tuple[float, float]:
    with engine_in(directory, churn_days=30) as engine:
        model = engine.models.get(version)
        started = time.perf_counter()
        lifecycle.score(engine, model, now)
        seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries the parent's resident size at the spawn into the latter
    peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return seconds, int(peak.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000, help="the synthetic shop's customers")
    parser.add_argument("--scoring", default="10000,100000", help="shop sizes to time scoring on, comma-separated")
    parser.add_argument("--scoring-days", type=int, default=150,
                        help="days of the scoring shops (the models are trained on a shop of their own)")
    parser.add_argument("--scoring-only", action="store_true", help="skip the synthetic shop and CDNOW")
    parser.add_argument("--shops", type=Path, help="keep the scoring shops in this folder and reuse them")
    args = parser.parse_args()
    if not args.scoring_only:
        synthetic(args.customers)
        cdnow()
    scoring([int(s) for s in args.scoring.split(",") if s.strip()], args.scoring_days, args.shops)


if __name__ == "__main__":
    main()
