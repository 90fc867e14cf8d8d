"""Live audiences: what keeping segments and computed traits current costs, and how late time-based
exits are announced.

    python benchmarks/audiences.py cost --customers 20000 --definitions 50 [--verify]
    python benchmarks/audiences.py expiry --profiles 100000 --check-every 5
    python benchmarks/audiences.py expiry --profiles 100000 --check-every 60 --window 150
    python benchmarks/audiences.py scores --profiles 100000

`cost` fills a fresh embedded store with the seeded synthetic shop, then processes it from
nothing (identity, folds and the audience stage, in-process) twice: with no definitions,
and with `--definitions` random segments and computed traits over the shop's events
(`persona.synth.definitions`, every kind of condition). It reports events/s of each and
the drop; with `--verify`, then how long the batch evaluator takes to load that store's log
and evaluate, and whether it agrees with the live state.

`expiry` gives `--profiles` profiles one `Product Viewed` each, with timestamps spread over
a minute, and one segment `viewed in the last --window seconds` (30; longer than the check
interval, or profiles enter and leave between two checks unseen); it runs the audience stage on the
real clock until every profile has left, and reports the delay between each window's end
and its `Segment Exited` (p50, p99, max) against the check interval.

`scores` gives `--profiles` profiles one identify each and a segment on a model trait
(`churn_probability >= 0.7`), then writes that trait for every profile as a scoring job does
(`ModelTraitStore.replace`, which queues what changed) and times the write and how long the
audience stage takes to bring the segment up to date; then a second scoring that moves a
tenth of the customers, and a third that changes only a trait no segment reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.processing import fill
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, iso
from persona.segments.stage import SEGMENT_EXITED, SYSTEM_SOURCE, now_micros
from persona.segments.verify import verify
from persona.synth.definitions import random_definitions

SHOP_EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Checkout Started", "Products Searched"]
SHOP_CATEGORIES = ["Backpacks", "Tents", "Hiking Boots", "Helmets"]


def process(customers: int, seed: int, definitions: int, check: bool = False) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-audiences-"))
    try:
        with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
            events = fill(engine, customers, seed)
            if definitions:
                engine.definitions.apply(random_definitions(
                    random.Random(seed), segments=definitions * 7 // 10, computed=definitions - definitions * 7 // 10,
                    events=SHOP_EVENTS, categories=SHOP_CATEGORIES))
            started = time.perf_counter()
            engine.processor.run_until_caught_up()
            elapsed = time.perf_counter() - started
            sizes = engine.audiences.sizes()
            announced = engine.log.count() - events
            checked = {}
            if check:  # the batch evaluator over the same store: how long, and does it agree
                report = verify(engine.log, engine.state, engine.audiences, engine.definitions, engine.model_traits,
                                now_micros())
                checked = {"verify": {"profiles": report.profiles, "load_s": round(report.load_seconds, 1),
                                      "evaluate_s": round(report.evaluate_seconds, 2), "agrees": report.agrees,
                                      "left_out": report.left_out}}
        return {"definitions": definitions, "events": events, "seconds": round(elapsed, 2),
                "events_per_s": round(events / elapsed), "announced": announced,
                "non_empty_segments": sum(1 for n in sizes.values() if n), **checked}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def cost(args: argparse.Namespace) -> dict:
    base = process(args.customers, args.seed, 0)
    live = process(args.customers, args.seed, args.definitions, check=args.verify)
    return {"without": base, "with": live,
            "drop_percent": round(100 * (1 - live["events_per_s"] / base["events_per_s"]), 1)}


def expiry(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-expiry-"))
    window = args.window
    try:
        config = load_config(env={}, data_dir=data_dir, segment_time_check=args.check_every)
        with Engine.open(config) as engine:
            engine.definitions.apply({"segment": [{"id": "viewing", "where": {
                "event": "Product Viewed", "within": f"{window}s"}}]})
            start = time.time() + 20  # views from 20 s from now (after the fill), over a minute
            defaults = BatchDefaults(received_at=datetime.now(UTC))
            spread = 60.0 / args.profiles
            for first in range(0, args.profiles, 5000):
                batch = [normalize({"type": "track", "event": "Product Viewed", "userId": f"u{i}",
                                    "messageId": f"view-{i}", "timestamp": iso(int((start + i * spread) * 1e6)),
                                    "properties": {"category": "Tents"}}, index=0, source_id="bench",
                                   defaults=defaults)
                         for i in range(first, min(first + 5000, args.profiles))]
                engine.log.append([e for e in batch if isinstance(e, Event)])
            engine.processor.run_until_caught_up()
            fill_done = time.time()
            deadline = start + 60 + window + 3 * args.check_every + 60
            while time.time() < deadline:
                engine.processor.run_until_caught_up()
                if engine.audiences.sizes().get("viewing", 0) == 0 and time.time() > start + 60 + window:
                    break
                time.sleep(0.05)
            delays = []
            for event in engine.log.read(0, 10 * args.profiles):
                if event.source_id == SYSTEM_SOURCE and event.name == SEGMENT_EXITED:
                    i = int(event.body["userId"][1:])
                    expired = start + i * spread + window
                    delays.append(event.timestamp / 1e6 - expired)
        delays.sort()
        return {"profiles": args.profiles, "check_every_s": args.check_every,
                "fill_seconds_left": round(start - fill_done, 1),
                "exits": len(delays), "delay_p50_s": round(delays[len(delays) // 2], 2),
                "delay_p99_s": round(delays[int(len(delays) * 0.99)], 2), "delay_max_s": round(delays[-1], 2)}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def scores(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-scores-"))
    rng = random.Random(args.seed)
    try:
        with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
            engine.definitions.apply({"segment": [{"id": "at_risk", "where": {"trait": "churn_probability",
                                                                              "gte": 0.7}}]})
            defaults = BatchDefaults(received_at=datetime.now(UTC))
            for first in range(0, args.profiles, 5000):
                batch = [normalize({"type": "identify", "userId": f"u{i}", "messageId": f"identify-{i}",
                                    "traits": {"plan": "pro"}}, index=0, source_id="bench", defaults=defaults)
                         for i in range(first, min(first + 5000, args.profiles))]
                engine.log.append([e for e in batch if isinstance(e, Event)])
            engine.processor.run_until_caught_up()
            ids = [p.id for p in engine.state.all_profiles()]
            churn = {pid: round(rng.random(), 4) for pid in ids}
            rounds = []
            for name, job, trait, moved in (("every customer scored", "churn", "churn_probability", len(ids)),
                                            ("a tenth rescored", "churn", "churn_probability", len(ids) // 10),
                                            ("a trait no segment reads", "clv", "p_alive", len(ids))):
                if trait == "churn_probability":
                    for pid in rng.sample(ids, moved):
                        churn[pid] = round(rng.random(), 4)
                    values = {pid: {trait: v} for pid, v in churn.items()}
                else:
                    values = {pid: {trait: round(rng.random(), 4)} for pid in ids}
                announced = engine.log.count()
                started = time.perf_counter()
                engine.model_traits.replace(job, values)
                written = time.perf_counter() - started
                started = time.perf_counter()
                engine.processor.run_until_caught_up()
                followed = time.perf_counter() - started
                size = engine.audiences.sizes().get("at_risk", 0)
                assert size == sum(1 for v in churn.values() if v >= 0.7)
                rounds.append({"round": name, "write_s": round(written, 2), "segment_updated_s": round(followed, 2),
                               "announced": engine.log.count() - announced, "members": size})
        return {"profiles": args.profiles, "rounds": rounds}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    measure_cost = commands.add_parser("cost", help="processing events/s with and without live definitions")
    measure_cost.add_argument("--customers", type=int, default=20_000)
    measure_cost.add_argument("--definitions", type=int, default=50)
    measure_cost.add_argument("--seed", type=int, default=42)
    measure_cost.add_argument("--verify", action="store_true", help="then time `persona segments verify` on the store")
    measure_expiry = commands.add_parser("expiry", help="delay of time-based exits")
    measure_expiry.add_argument("--profiles", type=int, default=100_000)
    measure_expiry.add_argument("--check-every", type=float, default=60.0)
    measure_expiry.add_argument("--window", type=int, default=30, help="seconds a view keeps a profile in the segment")
    measure_scores = commands.add_parser("scores", help="a segment on a model trait following a scoring")
    measure_scores.add_argument("--profiles", type=int, default=100_000)
    measure_scores.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    result = {"cost": cost, "expiry": expiry, "scores": scores}[args.command](args)
    result["machine"] = f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
