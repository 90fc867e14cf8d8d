"""What a definition means for one profile at one moment: the reference evaluator.

This is the plain reading of the language, written for clarity rather than speed: the
real-time and batch evaluators must agree with it, and the tests use it as their oracle.

- A window `within: 30d` at time `now` holds the events with `now - 30d <= timestamp <= now`.
- Aggregates over no events: `count` and `distinct` are 0 and `sum` is 0.0; `avg`, `min`,
  `max`, `first`, `last` and `most_frequent` have no value. Numeric aggregates skip values
  that are not numbers; `count` of a property counts the events that have it.
- `first` / `last` go by (timestamp, seq); `most_frequent` breaks ties by the latest
  occurrence.
- A comparison with no value is false, except `exists: false`. `eq`/`ne`/`in` compare
  values as they are (the number 5 is not the text "5"); `gt`... and `between` (inclusive)
  hold for numbers only; `contains` tests a substring of a text or an element of a list;
  `regex` searches a text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from persona.log.events import Event
from persona.segments.definitions import (
    All,
    AnyOf,
    Comparison,
    ComputedCondition,
    Condition,
    EventAggregate,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
    TraitCondition,
)

MICROS = 1_000_000
MISSING = object()


@dataclass(frozen=True)
class EventFact:
    timestamp: int  # µs since the epoch, UTC
    seq: int
    name: str       # the event name of a track, else the type (`identify`, `page`, ...)
    properties: Mapping[str, Any]


@dataclass
class ProfileFacts:
    """What the evaluator may look at for one profile."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[EventFact] = ()
    computed: Mapping[str, Any] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()


def event_name(event: Event) -> str:
    """What definitions call an event: a track's name, else the message type."""
    return (event.name or "") if event.type == "track" else event.type


def matches(condition: Condition, facts: ProfileFacts, now_us: int) -> bool:
    if isinstance(condition, All):
        return all(matches(c, facts, now_us) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(matches(c, facts, now_us) for c in condition.conditions)
    if isinstance(condition, Not):
        return not matches(condition.condition, facts, now_us)
    if isinstance(condition, TraitCondition):
        return compare(condition.comparison, facts.traits.get(condition.trait, MISSING))
    if isinstance(condition, SegmentCondition):
        return condition.segment in facts.segments
    if isinstance(condition, ComputedCondition):
        return compare(condition.comparison, facts.computed.get(condition.computed, MISSING))
    assert isinstance(condition, EventCondition)
    return compare(condition.comparison, aggregate(condition.of, facts.events, now_us))


def aggregate(of: EventAggregate, events: Sequence[EventFact], now_us: int) -> Any:
    """The aggregate's value over the profile's events, or None when it has none."""
    entries = [(e.timestamp, e.seq, None if of.property is None else lookup(e.properties, of.property))
               for e in events if e.name == of.event and passes(of, e.properties)]
    return reduce(of, sorted(entries, key=lambda entry: entry[:2]), now_us)


def passes(of: EventAggregate, properties: Mapping[str, Any]) -> bool:
    """The event's properties pass the aggregate's `where` filters."""
    return passes_filters(of.where, properties)


def passes_filters(where: Sequence[PropertyFilter], properties: Mapping[str, Any]) -> bool:
    return all(compare(f.comparison, lookup(properties, f.property)) for f in where)


def reduce(of: EventAggregate, entries: Sequence[tuple[int, int, Any]], now_us: int) -> Any:
    """The aggregate over (timestamp, seq, value) entries of matching events, in (timestamp, seq)
    order, keeping those in the window at `now_us`; a value that is `MISSING` or None is absent."""
    start = now_us - of.within * MICROS if of.within is not None else None
    chosen = [entry for entry in entries if entry[0] <= now_us and (start is None or entry[0] >= start)]
    if of.aggregate == "count":
        if of.property is None:
            return len(chosen)
        return sum(1 for entry in chosen if entry[2] not in (MISSING, None))
    values = [v for _, _, v in chosen if v is not MISSING and v is not None]
    if of.aggregate in ("first", "last"):
        return (values[0] if of.aggregate == "first" else values[-1]) if values else None
    if of.aggregate == "distinct":
        return len({_key(v) for v in values})
    if of.aggregate == "most_frequent":
        return _most_frequent(values)
    numbers = [float(v) for v in values if _is_number(v)]
    if of.aggregate == "sum":
        return round(sum(numbers), 6)
    if not numbers:
        return None
    if of.aggregate == "avg":
        return round(sum(numbers) / len(numbers), 6)
    return min(numbers) if of.aggregate == "min" else max(numbers)


def compare(comparison: Comparison, value: Any) -> bool:
    op, expected = comparison.op, comparison.value
    if op == "exists":
        return (value is not MISSING and value is not None) == expected
    if value is MISSING or value is None:
        return False
    if op == "eq":
        return _same(value, expected)
    if op == "ne":
        return not _same(value, expected)
    if op == "in":
        return any(_same(value, e) for e in expected)
    if op == "not_in":
        return not any(_same(value, e) for e in expected)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(expected, str) and expected in value
        return isinstance(value, list) and any(_same(v, expected) for v in value)
    if op == "regex":
        return isinstance(value, str) and _pattern(expected).search(value) is not None
    if not _is_number(value):
        return False
    if op == "between":
        low, high = expected
        return low <= value <= high
    return {"gt": value > expected, "gte": value >= expected, "lt": value < expected,
            "lte": value <= expected}[op]


def lookup(properties: Mapping[str, Any], path: str) -> Any:
    """A dotted path into an event's properties (`product.category`), or MISSING."""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: True is not 1, 5 is not "5", but 5 is 5.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any) -> str:
    return repr(value) if not _is_number(value) else repr(float(value))


def _most_frequent(values: list[Any]) -> Any:
    if not values:
        return None
    counts: dict[str, list[Any]] = {}  # key -> [count, last position, value]
    for position, v in enumerate(values):
        entry = counts.setdefault(_key(v), [0, 0, v])
        entry[0] += 1
        entry[1] = position
    return max(counts.values(), key=lambda entry: (entry[0], entry[1]))[2]


@lru_cache(maxsize=256)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)
