"""The offline evaluation table of the recommenders on the seeded synthetic shop.

    python benchmarks/recommend_eval.py --customers 2000 --days 30 --test-days 7 --k 10

Fills a fresh embedded store with the workload's catalog and events (straight through the
library), folds them, and runs what `persona recs evaluate` runs: train before the cut, score
every model on the last `--test-days`. Prints the table as Markdown and the seconds it took.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event
from persona.recommend.evaluation import Evaluation, evaluate
from persona.synth import Workload
from persona.synth.catalog import catalog_items


def fill(engine: Engine, customers: int, days: int, seed: int) -> int:
    workload = Workload(seed=seed, customers=customers, days=days)
    engine.catalog.upsert(catalog_items(workload.catalog))
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    total = 0
    for batch in workload.batches(size=2000):
        events = [e for i, m in enumerate(batch)
                  if isinstance(e := normalize(m, index=i, source_id="bench", defaults=defaults), Event)]
        total += engine.log.append(events).accepted
    engine.processor.run_until_caught_up()
    return total


def markdown(result: Evaluation) -> str:
    k = result.k
    lines = [f"| model | NDCG@{k} | Recall@{k} | HR@{k} | MAP@{k} | coverage |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.model} | {r.ndcg:.4f} | {r.recall:.4f} | {r.hit_rate:.4f} | {r.map:.4f} | {r.coverage:.1%} |"
              for r in result.rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-days", type=float, default=7)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="persona-recs-eval-"))
    try:
        with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
            started = time.perf_counter()
            events = fill(engine, args.customers, args.days, args.seed)
            filled = time.perf_counter()
            result = evaluate(engine.log, engine.state, engine.catalog, test_days=args.test_days, k=args.k)
            done = time.perf_counter()
        print(f"{events:,} events, {args.customers:,} customers, {args.days} days, seed {args.seed}; "
              f"filled in {filled - started:.1f} s, evaluated in {done - filled:.1f} s")
        print(f"{result.test_users:,} test users, {result.cold_users:,} cold (no history before the cut) skipped\n")
        print(markdown(result))
        blend = result.training["blend"]
        weights = ", ".join(f"{name} {w:.1f}" for name, w in blend["weights"].items())
        single = ", ".join(f"{name} {v:.4f}" for name, v in blend["single"].items())
        print(f"\nlearned blend weights: {weights}; validation ({blend['users']} users, last "
              f"{blend['validation_days']:g} days before the cut): NDCG@10 blend {blend['ndcg']:.4f}, {single}")
        print("\nhyperparameters tried on the validation split (NDCG@10 of the model alone):\n")
        print("| model | setting | NDCG@10 | seconds |\n|---|---|---|---|")
        for trial in result.training["tuning"]:
            setting = ", ".join(f"{k}={v}" for k, v in trial["setting"].items())
            print(f"| {trial['model']} | {setting} | {trial['ndcg']:.4f} | {trial['seconds']:.2f} |")
        print(f"\nchosen: {result.training['hyperparameters']}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
