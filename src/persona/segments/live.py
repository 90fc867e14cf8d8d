"""Definitions compiled for evaluation as events arrive: the plan, and each profile's audience state.

A `Plan` is the current set of segments and computed traits, compiled once:

- every distinct (event, property filters, property) that some aggregate reads is an
  *input*; each profile keeps, per input, the `(timestamp, seq, value)` entries of its
  matching events, pruned to the longest window that reads them (all of them when some
  aggregate has no window). Entries of two profiles union when they merge.
- every definition knows what it depends on (inputs, traits, other definitions), so an
  event that feeds one input re-evaluates only the definitions that read it;
- `evaluate` computes the computed traits, then the segments in dependency order, with
  `evaluate.reduce` (the reference evaluator's own arithmetic), and the next moment at
  which time alone changes something: an entry entering or leaving a window.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from persona.segments.definitions import (
    All,
    AnyOf,
    ComputedCondition,
    ComputedTrait,
    Condition,
    EventAggregate,
    EventCondition,
    Not,
    SegmentCondition,
    SegmentDefinition,
    TraitCondition,
    aggregates_of,
    check_references,
    depends_on,
    traits_used,
)
from persona.segments.evaluate import MICROS, MISSING, compare, lookup, passes, reduce

TRAITS = "traits"         # a reason to re-evaluate: the profile's traits changed
EVERYTHING = "*"          # every definition (a new plan, a merge)

Entry = tuple[int, int, Any]  # (timestamp µs, seq, value of the property read, or None)


class AudienceState(msgspec.Struct):
    """What the audience stage keeps per profile (root id)."""

    inputs: dict[str, list[Entry]] = msgspec.field(default_factory=dict)
    computed: dict[str, Any] = msgspec.field(default_factory=dict)
    transitions: dict[str, int] = msgspec.field(default_factory=dict)  # segment -> count; odd: member
    since: dict[str, int] = msgspec.field(default_factory=dict)        # segment -> when last entered (µs)
    next_check: int | None = None  # when time alone next changes something (µs); None: never

    def member_of(self, segment_id: str) -> bool:
        return self.transitions.get(segment_id, 0) % 2 == 1

    @property
    def segments(self) -> frozenset[str]:
        return frozenset(s for s, n in self.transitions.items() if n % 2)


@dataclass(frozen=True)
class Input:
    key: str
    event: str
    of: EventAggregate  # the first aggregate found reading it: its event, filters and property
    keep: int | None    # seconds of history any window needs; None: all of it
    windows: tuple[int | None, ...]


@dataclass(frozen=True)
class Transition:
    segment: SegmentDefinition
    entered: bool
    number: int  # the profile's nth transition for this segment: odd enters, even exits


@lru_cache(maxsize=4096)  # looked up for every condition of every evaluation
def input_key(of: EventAggregate) -> str:
    where = [(f.property, f.comparison.op, f.comparison.value) for f in of.where]
    raw = msgspec.json.encode([of.event, where, of.property])
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


class Plan:
    def __init__(self, segments: Iterable[SegmentDefinition], computed: Iterable[ComputedTrait]) -> None:
        segments, computed = list(segments), list(computed)
        check_references(segments, computed)
        self.computed = {c.id: c for c in computed}
        self.segments = {s.id: s for s in _dependency_order(segments)}
        aggregates: dict[str, list[EventAggregate]] = {}
        for of in [c.of for c in computed] + [a for s in segments for a in aggregates_of(s.where)]:
            aggregates.setdefault(input_key(of), []).append(of)
        self.inputs = {key: _input(key, ofs) for key, ofs in aggregates.items()}
        self.by_event: dict[str, list[Input]] = {}
        for item in self.inputs.values():
            self.by_event.setdefault(item.event, []).append(item)
        # What each definition reads directly; segments also read the definitions they refer to.
        self._reads: dict[str, set[str]] = {c.id: {input_key(c.of)} for c in computed}
        for s in segments:
            self._reads[s.id] = _reads(s.where)
        self._affected: dict[frozenset[str], tuple[set[str], list[str]]] = {}
        self._timed = frozenset(self.inputs)  # what time can change: any aggregate's window
        self.traits_read = frozenset(t for s in segments for t in traits_used(s.where))
        self.reads_traits = bool(self.traits_read)
        self.fingerprint = hashlib.blake2b(msgspec.json.encode(
            [sorted(map(repr, computed)), sorted(map(repr, segments))]), digest_size=8).hexdigest()

    @property
    def empty(self) -> bool:
        return not self.segments and not self.computed

    def feeds(self, name: str, properties: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """(input key, value) for each input an event named `name` with these properties feeds."""
        out = []
        for item in self.by_event.get(name, ()):
            if passes(item.of, properties):
                value = None if item.of.property is None else lookup(properties, item.of.property)
                out.append((item.key, None if value is MISSING else value))
        return out

    def affected(self, reasons: frozenset[str]) -> tuple[set[str], list[str]]:
        """(computed ids, segment ids in dependency order) that read any of `reasons`."""
        cached = self._affected.get(reasons)
        if cached is not None:
            return cached
        if EVERYTHING in reasons:
            result = (set(self.computed), list(self.segments))
        else:
            computed = {c for c in self.computed if self._reads[c] & reasons}
            hit = set(reasons) | computed
            segments = []
            for s in self.segments:  # dependency order: a segment sees what it refers to first
                if self._reads[s] & hit:
                    segments.append(s)
                    hit.add(s)
            result = (computed, segments)
        if len(self._affected) < 4096:
            self._affected[reasons] = result
        return result

    def needs_traits(self, state: AudienceState, now: int, reasons: frozenset[str]) -> bool:
        """Whether evaluating for `reasons` reads the profile's traits (which cost a read to fetch)."""
        if not self.reads_traits:
            return False
        if state.next_check is not None and state.next_check <= now:
            reasons = reasons | self._timed
        return any(TRAITS in self._reads[s] for s in self.affected(reasons)[1])

    def evaluate(self, state: AudienceState, traits: Mapping[str, Any], now: int,
                 reasons: frozenset[str]) -> list[Transition]:
        """Re-evaluate what `reasons` touch (and what time changed, if the profile was due) at `now`:
        updates the computed traits and `next_check`, and returns the segments entered and left,
        for the caller to count in `transitions`."""
        if state.next_check is not None and state.next_check <= now:
            reasons = reasons | self._timed
        self.prune(state, now)
        computed_ids, segment_ids = self.affected(reasons)
        computed = {c: v for c, v in state.computed.items() if c in self.computed}
        for trait_id in computed_ids:
            of = self.computed[trait_id].of
            value = reduce(of, state.inputs.get(input_key(of), ()), now)
            if value is None:
                computed.pop(trait_id, None)
            else:
                computed[trait_id] = value
        members = set(state.segments)
        transitions = []
        for segment_id in segment_ids:
            segment = self.segments[segment_id]
            now_member = self._matches(segment.where, state, traits, computed, members, now)
            if now_member != (segment_id in members):
                transitions.append(Transition(segment, now_member, state.transitions.get(segment_id, 0) + 1))
                (members.add if now_member else members.discard)(segment_id)
        state.computed = computed
        state.next_check = self.next_check(state, now)
        return transitions

    def _matches(self, condition: Condition, state: AudienceState, traits: Mapping[str, Any],
                 computed: Mapping[str, Any], members: set[str], now: int) -> bool:
        if isinstance(condition, All):
            return all(self._matches(c, state, traits, computed, members, now) for c in condition.conditions)
        if isinstance(condition, AnyOf):
            return any(self._matches(c, state, traits, computed, members, now) for c in condition.conditions)
        if isinstance(condition, Not):
            return not self._matches(condition.condition, state, traits, computed, members, now)
        if isinstance(condition, TraitCondition):
            return compare(condition.comparison, traits.get(condition.trait, MISSING))
        if isinstance(condition, SegmentCondition):
            return condition.segment in members
        if isinstance(condition, ComputedCondition):
            return compare(condition.comparison, computed.get(condition.computed, MISSING))
        assert isinstance(condition, EventCondition)
        entries = state.inputs.get(input_key(condition.of), ())
        return compare(condition.comparison, reduce(condition.of, entries, now))

    def prune(self, state: AudienceState, now: int) -> None:
        """Drop entries too old for any window, and inputs no definition reads any more."""
        for key in [k for k in state.inputs if k not in self.inputs]:
            del state.inputs[key]
        for key, entries in state.inputs.items():
            keep = self.inputs[key].keep
            if keep is not None and entries and entries[0][0] < now - keep * MICROS:
                state.inputs[key] = [e for e in entries if e[0] >= now - keep * MICROS]

    def next_check(self, state: AudienceState, now: int) -> int | None:
        """The first moment after `now` when an entry enters (a future timestamp) or leaves a window.

        Entries are in timestamp order, so per input that is the first entry after `now`, and per
        window the first entry still in it (it leaves at its timestamp + the window + 1 µs)."""
        soonest: int | None = None
        for key, entries in state.inputs.items():
            if not entries:
                continue
            candidates = []
            coming = bisect_right(entries, now, key=_timestamp)
            if coming < len(entries):
                candidates.append(entries[coming][0])
            for within in self.inputs[key].windows:
                if within is not None:
                    inside = bisect_left(entries, now - within * MICROS, key=_timestamp)
                    if inside < len(entries):
                        candidates.append(entries[inside][0] + within * MICROS + 1)
            if candidates and (soonest is None or min(candidates) < soonest):
                soonest = min(candidates)
        return soonest


def _timestamp(entry: Entry) -> int:
    return entry[0]


def add_entry(state: AudienceState, key: str, entry: Entry) -> bool:
    """Add one event's entry to an input, kept in (timestamp, seq) order; False if already there."""
    entries = state.inputs.setdefault(key, [])
    if not entries or entries[-1][:2] < entry[:2]:
        entries.append(entry)
        return True
    position = _bisect(entries, entry[:2])
    if position < len(entries) and entries[position][:2] == entry[:2]:
        return False
    entries.insert(position, entry)
    return True


def absorb(into: AudienceState, other: AudienceState) -> None:
    """A merged profile's entries join the survivor's (a union: commutative, idempotent)."""
    for key, entries in other.inputs.items():
        for entry in entries:
            add_entry(into, key, entry)


def _bisect(entries: list[Entry], at: tuple[int, int]) -> int:
    low, high = 0, len(entries)
    while low < high:
        middle = (low + high) // 2
        if entries[middle][:2] < at:
            low = middle + 1
        else:
            high = middle
    return low


def _input(key: str, aggregates: list[EventAggregate]) -> Input:
    windows = tuple(sorted({a.within for a in aggregates}, key=lambda w: -1 if w is None else w))
    keep = None if None in windows else max(w for w in windows if w is not None)
    return Input(key, aggregates[0].event, aggregates[0], keep, windows)


def _reads(condition: Condition) -> set[str]:
    if isinstance(condition, All | AnyOf):
        return set().union(*(_reads(c) for c in condition.conditions))
    if isinstance(condition, Not):
        return _reads(condition.condition)
    if isinstance(condition, EventCondition):
        return {input_key(condition.of)}
    if isinstance(condition, TraitCondition):
        return {TRAITS}
    if isinstance(condition, SegmentCondition):
        return {condition.segment}
    assert isinstance(condition, ComputedCondition)
    return {condition.computed}


def _dependency_order(segments: list[SegmentDefinition]) -> list[SegmentDefinition]:
    by_id = {s.id: s for s in segments}
    ordered: list[SegmentDefinition] = []
    seen: set[str] = set()

    def visit(segment_id: str) -> None:
        if segment_id in seen:
            return
        seen.add(segment_id)
        for dependency in sorted(depends_on(by_id[segment_id].where)):
            visit(dependency)
        ordered.append(by_id[segment_id])

    for segment_id in sorted(by_id):
        visit(segment_id)
    return ordered
