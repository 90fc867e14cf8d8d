"""The batch evaluator: 20 definitions over every profile at once.

    python benchmarks/audiences_batch.py --profiles 1000000 --events 50000000

Generates `--events` shop events (views, carts, checkouts, orders, refunds, searches) for
`--profiles` profiles over 180 days with numpy (seeded), as the typed columns the batch
evaluator reads, loads them into its DuckDB database, and times `evaluate` for the 20
definitions below (segments of every kind from the issue's examples, and computed traits).
Also run at a tenth of the size to see how the cost grows. Generation and loading are
reported apart: the target (under 5 s for all 20) is for the evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from persona.segments.batch import BatchEvaluator
from persona.segments.definitions import parse_computed_trait, parse_segment

EVENTS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Order Refunded",
          "Products Searched"]
EVENT_WEIGHTS = [0.55, 0.15, 0.06, 0.05, 0.01, 0.18]
CATEGORIES = ["Backpacks", "Tents", "Hiking Boots", "Helmets", "Jackets", "Socks", "Stoves", "Maps"]
DAY = 86_400_000_000
NOW = 1_800_000_000_000_000

SEGMENTS = [
    {"id": "big_spenders", "where": {"all": [
        {"event": "Order Completed", "within": "30d", "sum": "revenue", "gt": 500},
        {"event": "Product Viewed", "within": "30d", "count": True, "gte": 3}]}},
    {"id": "no_purchase_90d", "where": {"not": {"event": "Order Completed", "within": "90d"}}},
    {"id": "cart_abandoners", "where": {"all": [{"event": "Product Added", "within": "1h"},
                                                {"not": {"event": "Order Completed", "within": "1h"}}]}},
    {"id": "window_shoppers", "where": {"all": [{"event": "Product Viewed", "within": "7d", "count": True, "gte": 10},
                                                {"segment": "no_purchase_90d"}]}},
    {"id": "tent_fans", "where": {"event": "Product Viewed", "within": "30d",
                                  "where": [{"property": "category", "eq": "Tents"}], "count": True, "gte": 2}},
    {"id": "premium_browsers", "where": {"event": "Product Viewed", "within": "30d", "max": "price", "gte": 300}},
    {"id": "bargain_buyers", "where": {"event": "Order Completed", "within": "90d", "avg": "revenue", "lt": 60}},
    {"id": "explorers", "where": {"event": "Product Viewed", "within": "30d", "distinct": "category", "gte": 4}},
    {"id": "boots_lovers", "where": {"computed": "favorite_category", "eq": "Hiking Boots"}},
    {"id": "repeat_buyers", "where": {"computed": "orders_90d", "gte": 2}},
    {"id": "refunders", "where": {"event": "Order Refunded", "within": "90d"}},
    {"id": "pro_dach", "where": {"all": [{"trait": "plan", "eq": "pro"},
                                         {"trait": "country", "in": ["DE", "AT", "CH"]}]}},
    {"id": "young_searchers", "where": {"all": [
        {"trait": "age", "between": [25, 34]},
        {"event": "Products Searched", "within": "7d", "count": True, "gte": 2}]}},
    {"id": "lapsing_vips", "where": {"all": [{"segment": "repeat_buyers"},
                                             {"not": {"event": "Product Viewed", "within": "14d"}}]}},
    {"id": "first_was_cheap", "where": {"event": "Order Completed", "first": "revenue", "lt": 40}},
]
COMPUTED = [
    {"id": "orders_90d", "event": "Order Completed", "within": "90d", "count": True},
    {"id": "favorite_category", "event": "Product Viewed", "within": "30d", "most_frequent": "category"},
    {"id": "avg_order_value", "event": "Order Completed", "avg": "revenue"},
    {"id": "last_category", "event": "Product Viewed", "last": "category"},
    {"id": "revenue_30d", "event": "Order Completed", "within": "30d", "sum": "revenue"},
]


def generate(evaluator: BatchEvaluator, profiles: int, events: int, seed: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    # a few heavy users, many light ones: profile ids drawn from a skewed distribution
    who = (rng.pareto(1.2, events) * profiles / 20).astype(np.int64) % profiles
    ts = np.sort(NOW - (rng.random(events) * 180 * DAY).astype(np.int64))  # a log is appended in time order
    kind = rng.choice(len(EVENTS), size=events, p=EVENT_WEIGHTS).astype(np.int8)
    category = rng.integers(0, len(CATEGORIES), events).astype(np.int8)
    price = np.round(rng.lognormal(4, 0.8, events), 2)
    revenue = np.where(kind == EVENTS.index("Order Completed"), np.round(price * rng.integers(1, 4, events), 2), np.nan)
    has_category = kind != EVENTS.index("Products Searched")
    columns: dict[str, pa.Array] = {
        "profile": pa.array(who.astype(np.int32)), "ts": pa.array(ts), "seq": pa.array(np.arange(1, events + 1)),
        "name": pa.DictionaryArray.from_arrays(pa.array(kind), pa.array(EVENTS)),
    }
    values = {"category": (None, pa.DictionaryArray.from_arrays(
                  pa.array(category, mask=~has_category), pa.array(CATEGORIES))),
              "price": (pa.array(price, mask=~has_category), None),
              "revenue": (pa.array(revenue, mask=np.isnan(revenue)), None)}
    for path, prefix in evaluator.properties.items():
        number, text = values[path]
        columns[f"{prefix}_n"] = number if number is not None else pa.nulls(events, pa.float64())
        columns[f"{prefix}_t"] = text if text is not None else pa.nulls(events, pa.string())
        columns[f"{prefix}_o"] = pa.nulls(events, pa.string())
        columns[f"{prefix}_l"] = pa.nulls(events, pa.list_(pa.string()))
    people: dict[str, pa.Array] = {"profile": pa.array(np.arange(profiles, dtype=np.int32))}
    traits = {"plan": ["free", "pro", "team"], "country": ["DE", "AT", "CH", "FR", "US", "GB"]}
    for trait, prefix in evaluator.traits.items():
        if trait == "age":
            people[f"{prefix}_n"] = pa.array(rng.integers(18, 80, profiles).astype(np.float64))
            people[f"{prefix}_t"] = pa.nulls(profiles, pa.string())
        else:
            options = traits[trait]
            people[f"{prefix}_n"] = pa.nulls(profiles, pa.float64())
            people[f"{prefix}_t"] = pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, len(options), profiles).astype(np.int8)), pa.array(options))
        people[f"{prefix}_o"] = pa.nulls(profiles, pa.string())
        people[f"{prefix}_l"] = pa.nulls(profiles, pa.list_(pa.string()))
    return pa.table(columns), pa.table(people)


def run(profiles: int, events: int, seed: int, repeats: int) -> dict:
    evaluator = BatchEvaluator([parse_segment(s) for s in SEGMENTS], [parse_computed_trait(c) for c in COMPUTED])
    started = time.perf_counter()
    event_table, profile_table = generate(evaluator, profiles, events, seed)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    evaluator.load(event_table, profile_table)
    del event_table, profile_table
    loaded = time.perf_counter() - started
    timings = []
    for _ in range(repeats):
        result = evaluator.evaluate(NOW)
        timings.append(result.seconds)
    sizes = result.sizes()
    return {"profiles": profiles, "events": events, "definitions": len(SEGMENTS) + len(COMPUTED),
            "generate_s": round(generated, 1), "load_s": round(loaded, 1),
            "evaluate_s": [round(t, 2) for t in timings], "best_s": round(min(timings), 2), "sizes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tenth", action="store_true", help="skip the run at a tenth of the size")
    args = parser.parse_args()
    runs = [] if args.no_tenth else [run(args.profiles // 10, args.events // 10, args.seed, args.repeats)]
    runs.append(run(args.profiles, args.events, args.seed, args.repeats))
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "date": datetime.now(UTC).date().isoformat(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
