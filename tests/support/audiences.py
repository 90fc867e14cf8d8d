"""Seeded shop traffic and random definitions for the audience tests, and the reference answer."""

from __future__ import annotations

import random
from typing import Any

from persona.engine import Engine
from persona.log.events import Event
from persona.segments.definitions import parse_computed_trait, parse_segment
from persona.segments.evaluate import EventFact, ProfileFacts, aggregate, matches
from persona.segments.live import Plan
from persona.synth.definitions import CATEGORIES, EVENTS
from tests.support.events import event

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
