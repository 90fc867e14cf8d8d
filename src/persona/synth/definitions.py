"""Random audience definitions, valid by construction: for property tests and benchmarks.

They compose every kind of condition the language has (traits, event aggregates of every
kind with and without windows and filters, segment and computed-trait references, all /
any / not) over the events and categories given.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Order Refunded"]
CATEGORIES = ["shoes", "bags", "tents", "socks"]
WINDOWS = [None, "1h", "2d", "7d", "30d", "90d"]


@dataclass(frozen=True)
class _Vocabulary:
    events: list[str]
    categories: list[str]


def random_definitions(rng: random.Random, segments: int = 8, computed: int = 4, *,
                       events: Sequence[str] = EVENTS, categories: Sequence[str] = CATEGORIES
                       ) -> dict[str, list[dict[str, Any]]]:
    """Valid definitions of every kind the language has, composed at random."""
    vocabulary = _Vocabulary(list(events), list(categories))
    traits = [_aggregate(rng, vocabulary, {"id": f"c{i}"}) for i in range(computed)]
    for trait in traits:  # every computed trait aggregates something
        if not any(k in trait for k in ("count", "sum", "avg", "min", "max", "distinct", "first", "last",
                                        "most_frequent")):
            trait["count"] = True
    defined: list[dict[str, Any]] = []
    for i in range(segments):
        defined.append({"id": f"s{i}", "where": _condition(rng, vocabulary, 2, [d["id"] for d in defined],
                                                           [t["id"] for t in traits])})
    return {"segment": defined, "computed_trait": traits}


def _condition(rng: random.Random, vocabulary: _Vocabulary, depth: int, segments: list[str],
               computed: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if depth and roll < 0.3:
        kind = rng.choice(["all", "any"])
        return {kind: [_condition(rng, vocabulary, depth - 1, segments, computed) for _ in range(rng.randint(1, 3))]}
    if depth and roll < 0.4:
        return {"not": _condition(rng, vocabulary, depth - 1, segments, computed)}
    if roll < 0.55:
        return rng.choice([
            {"trait": "plan", "eq": "pro"}, {"trait": "age", "between": [25, 34]},
            {"trait": "country", "in": ["DE", "FR"]}, {"trait": "country", "exists": False},
            {"trait": "plan", "regex": "^t"}, {"trait": "plan", "ne": "free"}, {"trait": "age", "gte": 40},
        ])
    if roll < 0.62 and segments:
        return {"segment": rng.choice(segments)}
    if roll < 0.7 and computed:
        return {"computed": rng.choice(computed), **rng.choice([{"exists": True}, {"gte": 2}, {"lt": 100}])}
    condition = _aggregate(rng, vocabulary, {})
    aggregate = next((k for k in ("count", "sum", "avg", "min", "max", "distinct", "first", "last",
                                  "most_frequent") if k in condition), None)
    if aggregate is None:
        return condition  # did it at least once (or, under not, never)
    if aggregate in ("first", "last", "most_frequent"):
        if condition[aggregate] == "category":
            condition["eq"] = rng.choice(vocabulary.categories)
        else:
            condition["gt"] = rng.choice([10, 40])
    else:
        condition[rng.choice(["gte", "lt", "eq"])] = rng.choice([0, 1, 2, 3, 50, 120.5])
    return condition


def _aggregate(rng: random.Random, vocabulary: _Vocabulary, base: dict[str, Any]) -> dict[str, Any]:
    out = {**base, "event": rng.choice(vocabulary.events)}
    window = rng.choice(WINDOWS)
    if window:
        out["within"] = window
    if rng.random() < 0.3:
        out["where"] = [rng.choice([{"property": "category", "in": vocabulary.categories[:2]},
                                    {"property": "price", "gte": 20}, {"property": "category", "exists": True}])]
    choice = rng.choice(["none", "count", "count_p", "sum", "avg", "min", "max", "distinct", "first", "last",
                         "most_frequent"])
    if choice == "count":
        out["count"] = True
    elif choice == "count_p":
        out["count"] = "category"
    elif choice in ("distinct", "most_frequent"):
        out[choice] = "category"
    elif choice in ("first", "last"):
        out[choice] = rng.choice(["category", "price"])
    elif choice != "none":
        out[choice] = rng.choice(["price", "revenue"])
    return out
