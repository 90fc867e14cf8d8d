"""Seeded shop traffic and random definitions for the audience tests, and the reference answer."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from persona.engine import Engine
from persona.log.events import Event
from persona.segments.evaluate import EventFact, ProfileFacts, aggregate, event_name, matches
from persona.segments.live import Plan
from persona.segments.stage import SEGMENT_ENTERED, SEGMENT_EXITED, SYSTEM_SOURCE
from persona.segments.verify import verify
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
    """Every profile's segments and computed traits by the reference evaluator, from the log itself
    (and the model traits)."""
    plan = Plan(*engine.definitions.parsed())
    members: dict[str, set[str]] = {}
    computed: dict[str, dict[str, Any]] = {}
    profiles = engine.state.all_profiles()
    scores = engine.model_traits.of_profiles(p.id for p in profiles)
    for profile in profiles:
        seqs = [seq for _, seq in engine.state.timeline(profile.id, None, 1_000_000)]
        events = [EventFact(e.timestamp, e.seq, event_name(e), e.body.get("properties") or {})
                  for e in engine.log.get(seqs)]
        traits = {**scores.get(profile.id, {}), **profile.traits}  # model traits beneath the profile's own
        members[profile.id], computed[profile.id] = expected(plan, traits, events, now)
    return members, computed


def expected(plan: Plan, traits: dict[str, Any], events: list[EventFact], now: int) -> tuple[set[str], dict[str, Any]]:
    """One profile's segments and computed traits (those with a value) by the reference evaluator."""
    values = {c.id: v for c in plan.computed.values() if (v := aggregate(c.of, events, now)) is not None}
    facts = ProfileFacts(traits=traits, events=events, computed=values, segments=frozenset())
    inside: set[str] = set()
    for segment in plan.segments.values():  # dependency order
        facts.segments = frozenset(inside)
        if matches(segment.where, facts, now):
            inside.add(segment.id)
    return inside, values


def announcements(engine: Engine) -> list[tuple[str, str, int, str]]:
    events = [e for e in engine.log.read(0, 1_000_000) if e.source_id == SYSTEM_SOURCE]
    return [(e.body["properties"]["segment_id"], e.body["properties"]["profile_id"],
             e.body["properties"]["transition"], e.name or "") for e in events]


def check_batch(engine: Engine, now: int) -> None:
    """Incremental equals batch: the batch evaluator over the whole log agrees with the live state."""
    report = verify(engine.log, engine.state, engine.audiences, engine.definitions, engine.model_traits, now)
    assert report.profiles == len(engine.state.all_profiles())
    assert report.left_out == 0
    assert report.segments == [] and report.computed == []
    assert {s: live for s, (live, _) in report.sizes.items()} == engine.audiences.sizes() | {
        s: 0 for s in report.sizes if s not in engine.audiences.sizes()}


def check_announcements(engine: Engine, members: dict[str, set[str]]) -> None:
    """Numbered 1, 2, 3... per (segment, profile), entering on odd numbers, and the last one agrees."""
    by_pair: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for segment, pid, number, name in announcements(engine):
        by_pair[(segment, pid)].append((number, name))
    for (segment, pid), seen in by_pair.items():
        numbers = sorted(n for n, _ in seen)
        assert numbers == list(range(1, len(numbers) + 1)), (segment, pid, seen)
        assert all(name == (SEGMENT_ENTERED if n % 2 else SEGMENT_EXITED) for n, name in seen)
        if pid in members:  # still a profile of its own (not merged away)
            assert (len(numbers) % 2 == 1) == (segment in members[pid]), (segment, pid)
    for pid, segments in members.items():
        for segment in segments:
            assert (segment, pid) in by_pair, f"{pid} is in {segment} unannounced"
