"""Seeded shop traffic and random definitions for the audience tests, and the reference answer."""

from __future__ import annotations

import random
from typing import Any

from persona.engine import Engine
from persona.log.events import Event
from persona.segments.definitions import parse_computed_trait, parse_segment
from persona.segments.evaluate import EventFact, ProfileFacts, aggregate, matches
from persona.segments.live import Plan
from tests.support.events import event

CATEGORIES = ["shoes", "bags", "tents", "socks"]
EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Order Refunded"]
WINDOWS = [None, "1h", "2d", "7d", "30d", "90d"]
DAY_MINUTES = 24 * 60


def shop_stream(rng: random.Random, n: int, *, users: int = 150, devices: int = 300, days: float = 120) -> list[Event]:
    """Identified and anonymous shoppers over `days`: views, carts, orders, refunds, identifies, aliases."""
    events = []
    for _ in range(n):
        user = f"u{rng.randrange(users)}" if rng.random() < 0.5 else None
        anon = f"a{rng.randrange(devices)}" if user is None or rng.random() < 0.5 else None
        minutes = rng.uniform(0, days * DAY_MINUTES)
        roll = rng.random()
        if roll < 0.03 and user:
            events.append(event("alias", user=user, previousId=f"u{rng.randrange(users)}", minutes=minutes))
        elif roll < 0.2:
            traits: dict[str, Any] = {"plan": rng.choice(["free", "pro", "team"]), "age": rng.randrange(18, 70)}
            if rng.random() < 0.5:
                traits["country"] = rng.choice(["DE", "FR", "US"])
            events.append(event("identify", user=user, anon=anon, minutes=minutes, traits=traits))
        else:
            name = rng.choices(EVENTS, weights=[6, 3, 2, 0.5])[0]
            properties: dict[str, Any] = {"category": rng.choice(CATEGORIES), "price": rng.choice([5, 20, 49.5, 120])}
            if name == "Order Completed":
                properties["revenue"] = rng.choice([10, 80.25, 300, 900])
            if rng.random() < 0.1:
                del properties["category"]
            events.append(event("track", user=user, anon=anon, minutes=minutes, event=name, properties=properties))
    return events


def random_definitions(rng: random.Random, segments: int = 8, computed: int = 4) -> dict[str, list[dict[str, Any]]]:
    """Valid definitions of every kind the language has, composed at random."""
    traits = [_aggregate(rng, {"id": f"c{i}"}) for i in range(computed)]
    for trait in traits:  # every computed trait aggregates something
        if not any(k in trait for k in ("count", "sum", "avg", "min", "max", "distinct", "first", "last",
                                        "most_frequent")):
            trait["count"] = True
    defined: list[dict[str, Any]] = []
    for i in range(segments):
        defined.append({"id": f"s{i}", "where": _condition(rng, 2, [d["id"] for d in defined],
                                                           [t["id"] for t in traits])})
    return {"segment": defined, "computed_trait": traits}


def _condition(rng: random.Random, depth: int, segments: list[str], computed: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if depth and roll < 0.3:
        kind = rng.choice(["all", "any"])
        return {kind: [_condition(rng, depth - 1, segments, computed) for _ in range(rng.randint(1, 3))]}
    if depth and roll < 0.4:
        return {"not": _condition(rng, depth - 1, segments, computed)}
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
    condition = _aggregate(rng, {})
    aggregate = next((k for k in ("count", "sum", "avg", "min", "max", "distinct", "first", "last",
                                  "most_frequent") if k in condition), None)
    if aggregate is None:
        return condition  # did it at least once (or, under not, never)
    if aggregate in ("first", "last", "most_frequent"):
        if condition[aggregate] == "category":
            condition["eq"] = rng.choice(CATEGORIES)
        else:
            condition["gt"] = rng.choice([10, 40])
    else:
        condition[rng.choice(["gte", "lt", "eq"])] = rng.choice([0, 1, 2, 3, 50, 120.5])
    return condition


def _aggregate(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    out = {**base, "event": rng.choice(EVENTS)}
    window = rng.choice(WINDOWS)
    if window:
        out["within"] = window
    if rng.random() < 0.3:
        out["where"] = [rng.choice([{"property": "category", "in": ["shoes", "bags"]},
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


def reference(engine: Engine, now: int) -> tuple[dict[str, set[str]], dict[str, dict[str, Any]]]:
    """Every profile's segments and computed traits by the reference evaluator, from the log itself."""
    stored_segments = [parse_segment(d.body) for d in engine.definitions.list("segment")]
    stored_traits = [parse_computed_trait(d.body) for d in engine.definitions.list("computed_trait")]
    plan = Plan(stored_segments, stored_traits)
    members: dict[str, set[str]] = {}
    computed: dict[str, dict[str, Any]] = {}
    for profile in engine.state.all_profiles():
        seqs = [seq for _, seq in engine.state.timeline(profile.id, None, 1_000_000)]
        events = [EventFact(e.timestamp, e.seq, (e.name or "") if e.type == "track" else e.type,
                            e.body.get("properties") or {}) for e in engine.log.get(seqs)]
        values = {c.id: v for c in plan.computed.values() if (v := aggregate(c.of, events, now)) is not None}
        facts = ProfileFacts(traits=profile.traits, events=events, computed=values, segments=frozenset())
        inside: set[str] = set()
        for segment in plan.segments.values():  # dependency order
            facts.segments = frozenset(inside)
            if matches(segment.where, facts, now):
                inside.add(segment.id)
        members[profile.id] = inside
        computed[profile.id] = values
    return members, computed
