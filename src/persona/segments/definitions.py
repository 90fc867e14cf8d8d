"""The audience language: segment and computed-trait definitions, parsed and checked on save.

Definitions are plain data (YAML files, or JSON through the API), so a marketer can write

    id: big_spenders
    where:
      all:
        - {event: Order Completed, within: 30d, sum: revenue, gt: 500}
        - {event: Product Viewed, within: 30d, count: true, gte: 3}
        - not: {event: Order Refunded, within: 30d}
        - {trait: country, in: [DE, AT, CH]}

A condition is one of:

- `all: [...]`, `any: [...]`, `not: {...}`: composition, nested freely;
- `trait: NAME` with one comparison: a profile trait;
- `event: NAME` with an optional `within: 30d` window, `where: [{property: P, <op>: V}]`
  filters on the event's properties, an aggregate (`count: true`, or `sum` / `avg` / `min` /
  `max` / `distinct` / `first` / `last` / `most_frequent`: PROPERTY) and one comparison on
  it; with neither aggregate nor comparison it means "did it at least once in the window",
  and under `not` "did not";
- `segment: ID`: membership of another segment;
- `computed: ID` with one comparison: a computed trait.

Comparisons: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `between: [low, high]`, `in: [...]`,
`not_in: [...]`, `exists: true|false`, `contains`, `regex`. Everything is checked when a
definition is parsed: an unknown key, operator or aggregate, a value of the wrong type, a
window that is not a duration, a regex that does not compile are `DefinitionError`s (HTTP
400) naming the path of the offending field, e.g. `where.all[1].sum`. References between
definitions (unknown ids, cycles) and event names (against the ones the log has seen) are
checked for a whole set by `check_references`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from persona.errors import RequestError


class DefinitionError(RequestError):
    code = "invalid_definition"


# -- the parsed form ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    op: str
    value: Any


@dataclass(frozen=True)
class TraitCondition:
    trait: str
    comparison: Comparison


@dataclass(frozen=True)
class PropertyFilter:
    property: str
    comparison: Comparison


@dataclass(frozen=True)
class EventAggregate:
    """An aggregate of one event's occurrences (optionally filtered, optionally in a window)."""

    event: str
    within: int | None                  # seconds; None: all time
    where: tuple[PropertyFilter, ...]
    aggregate: str                      # count, sum, avg, min, max, distinct, first, last, most_frequent
    property: str | None                # what the aggregate reads (None for count)


@dataclass(frozen=True)
class EventCondition:
    of: EventAggregate
    comparison: Comparison


@dataclass(frozen=True)
class SegmentCondition:
    segment: str


@dataclass(frozen=True)
class ComputedCondition:
    computed: str
    comparison: Comparison


@dataclass(frozen=True)
class All:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


Condition = TraitCondition | EventCondition | SegmentCondition | ComputedCondition | All | AnyOf | Not


@dataclass(frozen=True)
class SegmentDefinition:
    id: str
    name: str
    where: Condition
    description: str = ""


@dataclass(frozen=True)
class ComputedTrait:
    id: str
    name: str
    of: EventAggregate
    description: str = ""


# -- the vocabulary -------------------------------------------------------------------------------
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
OPERATORS = frozenset({"eq", "ne", "in", "not_in", "exists", "contains", "regex", *NUMERIC_OPS})
NUMERIC_AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "distinct"})
AGGREGATES = frozenset({*NUMERIC_AGGREGATES, "first", "last", "most_frequent"})
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SCALAR = (str, int, float, bool, type(None))


def parse_duration(raw: Any, path: str) -> int:
    """`90s`, `15m`, `1h`, `30d`, `2w` in seconds."""
    match = _DURATION.match(raw.strip()) if isinstance(raw, str) else None
    if match is None or int(match.group(1)) == 0:
        raise DefinitionError(f"{raw!r} is not a duration like 15m, 1h, 30d or 2w", field=path)
    return int(match.group(1)) * _UNIT[match.group(2)]


# -- parsing -------------------------------------------------------------------------------------
def parse_segment(raw: Any, path: str = "") -> SegmentDefinition:
    body = _mapping(raw, path or "segment")
    _only(body, {"id", "name", "description", "where"}, path)
    segment_id = _id(body, path)
    if "where" not in body:
        raise DefinitionError("a segment needs `where`: the condition its members meet", field=_at(path, "where"))
    return SegmentDefinition(id=segment_id, name=_text(body, "name", path) or segment_id,
                             description=_text(body, "description", path),
                             where=parse_condition(body["where"], _at(path, "where")))


def parse_computed_trait(raw: Any, path: str = "") -> ComputedTrait:
    body = _mapping(raw, path or "computed trait")
    _only(body, {"id", "name", "description", "event", "within", "where", *AGGREGATES}, path)
    trait_id = _id(body, path)
    if "event" not in body:
        raise DefinitionError("a computed trait aggregates an event: give `event`", field=_at(path, "event"))
    of = _aggregate(body, path, default_count=False)
    return ComputedTrait(id=trait_id, name=_text(body, "name", path) or trait_id,
                         description=_text(body, "description", path), of=of)


def parse_condition(raw: Any, path: str) -> Condition:
    body = _mapping(raw, path)
    kinds = [k for k in ("all", "any", "not", "trait", "event", "segment", "computed") if k in body]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else f"found {', '.join(map(str, body)) or 'nothing'}"
        raise DefinitionError("a condition is exactly one of all, any, not, trait, event, segment, computed; "
                              + found, field=path)
    kind = kinds[0]
    if kind in ("all", "any"):
        _only(body, {kind}, path)
        items = body[kind]
        if not isinstance(items, list) or not items:
            raise DefinitionError(f"`{kind}` takes a non-empty list of conditions", field=_at(path, kind))
        parsed = tuple(parse_condition(item, f"{_at(path, kind)}[{i}]") for i, item in enumerate(items))
        return All(parsed) if kind == "all" else AnyOf(parsed)
    if kind == "not":
        _only(body, {"not"}, path)
        return Not(parse_condition(body["not"], _at(path, "not")))
    if kind == "segment":
        _only(body, {"segment"}, path)
        return SegmentCondition(_name(body["segment"], _at(path, "segment"), identifier=True))
    if kind == "trait":
        _only(body, {"trait", *OPERATORS}, path)
        return TraitCondition(_name(body["trait"], _at(path, "trait")), _comparison(body, path, numeric=False))
    if kind == "computed":
        _only(body, {"computed", *OPERATORS}, path)
        return ComputedCondition(_name(body["computed"], _at(path, "computed"), identifier=True),
                                 _comparison(body, path, numeric=False))
    _only(body, {"event", "within", "where", *AGGREGATES, *OPERATORS}, path)
    of = _aggregate(body, path, default_count=True)
    if not any(op in body for op in OPERATORS):
        if of.aggregate != "count":
            raise DefinitionError(f"compare the {of.aggregate} with one of {_list(OPERATORS)}", field=path)
        return EventCondition(of, Comparison("gte", 1))  # did it at least once
    return EventCondition(of, _comparison(body, path, numeric=of.aggregate in NUMERIC_AGGREGATES))


def _aggregate(body: Mapping[str, Any], path: str, *, default_count: bool) -> EventAggregate:
    event = _name(body["event"], _at(path, "event"))
    within = parse_duration(body["within"], _at(path, "within")) if "within" in body else None
    where = parse_property_filters(body.get("where", []), _at(path, "where"))
    chosen = [a for a in sorted(AGGREGATES) if a in body]
    if len(chosen) > 1:
        raise DefinitionError(f"one aggregate per condition; found {', '.join(chosen)}", field=path)
    if not chosen:
        if not default_count:
            raise DefinitionError(f"choose an aggregate: {_list(AGGREGATES)}", field=path)
        return EventAggregate(event, within, where, "count", None)
    aggregate = chosen[0]
    target = body[aggregate]
    if aggregate == "count":
        if target is True:
            return EventAggregate(event, within, where, "count", None)
        return EventAggregate(event, within, where, "count", _name(target, _at(path, "count")))
    if not isinstance(target, str) or not target:
        raise DefinitionError(f"`{aggregate}` names the property it reads, e.g. {aggregate}: revenue",
                              field=_at(path, aggregate))
    return EventAggregate(event, within, where, aggregate, target)


def parse_property_filters(raw: Any, path: str) -> tuple[PropertyFilter, ...]:
    """A `where:` list of filters on an event's properties (also what journeys match events with)."""
    if not isinstance(raw, list):
        raise DefinitionError("`where` takes a list of property filters", field=path)
    return tuple(_property_filter(item, f"{path}[{i}]") for i, item in enumerate(raw))


def _property_filter(raw: Any, path: str) -> PropertyFilter:
    body = _mapping(raw, path)
    _only(body, {"property", *OPERATORS}, path)
    if "property" not in body:
        raise DefinitionError("a filter names the event `property` it tests", field=_at(path, "property"))
    return PropertyFilter(_name(body["property"], _at(path, "property")), _comparison(body, path, numeric=False))


def _comparison(body: Mapping[str, Any], path: str, *, numeric: bool) -> Comparison:
    ops = [op for op in sorted(OPERATORS) if op in body]
    if len(ops) != 1:
        found = f"; found {', '.join(ops)}" if ops else ""
        raise DefinitionError(f"give exactly one comparison: {_list(OPERATORS)}{found}", field=path)
    op = ops[0]
    value = body[op]
    at = _at(path, op)
    if op in NUMERIC_OPS or (numeric and op in ("eq", "ne")):
        if op == "between":
            if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
                raise DefinitionError("`between` takes two numbers: [low, high]", field=at)
            if value[0] > value[1]:
                raise DefinitionError(f"`between` needs low <= high; got {value}", field=at)
            return Comparison(op, (value[0], value[1]))
        if not _is_number(value):
            raise DefinitionError(f"`{op}` compares with a number here; got {value!r}", field=at)
        return Comparison(op, value)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or not all(isinstance(v, _SCALAR) for v in value):
            raise DefinitionError(f"`{op}` takes a non-empty list of plain values", field=at)
        if numeric and not all(_is_number(v) for v in value):
            raise DefinitionError(f"`{op}` compares with numbers here; got {value!r}", field=at)
        return Comparison(op, tuple(value))
    if op == "exists":
        if not isinstance(value, bool):
            raise DefinitionError("`exists` is true or false", field=at)
        return Comparison(op, value)
    if numeric and op in ("contains", "regex"):
        raise DefinitionError(f"`{op}` tests text, and this aggregate is a number", field=at)
    if op == "regex":
        if not isinstance(value, str):
            raise DefinitionError("`regex` takes a pattern", field=at)
        try:
            re.compile(value)
        except re.error as exc:
            raise DefinitionError(f"not a valid regular expression: {exc}", field=at) from None
        return Comparison(op, value)
    if op == "contains":
        if not isinstance(value, _SCALAR) or value is None:
            raise DefinitionError("`contains` takes a plain value", field=at)
        return Comparison(op, value)
    if not isinstance(value, _SCALAR):  # eq, ne on text or any value
        raise DefinitionError(f"`{op}` compares with a plain value, not {type(value).__name__}", field=at)
    return Comparison(op, value)


# -- checks across definitions -------------------------------------------------------------------
def check_references(segments: Iterable[SegmentDefinition], computed: Iterable[ComputedTrait],
                     known_events: set[str] | None = None) -> None:
    """Every referenced segment and computed trait exists, segments do not depend on themselves,
    and (when the log's event names are given) every event has been seen."""
    by_id = {s.id: s for s in segments}
    traits = {c.id: c for c in computed}
    for clash in sorted(by_id.keys() & traits.keys()):
        raise DefinitionError(f"{clash!r} names both a segment and a computed trait", field="id")
    for segment in by_id.values():
        for ref, path in _references(segment.where, "where"):
            if isinstance(ref, SegmentCondition) and ref.segment not in by_id:
                raise DefinitionError(f"segment {segment.id!r} refers to unknown segment {ref.segment!r}",
                                      field=f"{segment.id}.{path}")
            if isinstance(ref, ComputedCondition) and ref.computed not in traits:
                raise DefinitionError(f"segment {segment.id!r} refers to unknown computed trait {ref.computed!r}",
                                      field=f"{segment.id}.{path}")
            if isinstance(ref, EventCondition) and known_events is not None and ref.of.event not in known_events:
                raise DefinitionError(f"no event named {ref.of.event!r} has been seen; known: "
                                      f"{', '.join(sorted(known_events)[:20]) or 'none yet'}",
                                      field=f"{segment.id}.{path}.event")
    for trait in traits.values():
        if known_events is not None and trait.of.event not in known_events:
            raise DefinitionError(f"no event named {trait.of.event!r} has been seen", field=f"{trait.id}.event")
    for segment in by_id.values():
        _no_cycle(segment.id, by_id, [])


def aggregates_of(condition: Condition) -> list[EventAggregate]:
    """The event aggregates a condition reads, directly."""
    return [ref.of for ref, _ in _references(condition, "") if isinstance(ref, EventCondition)]


def depends_on(condition: Condition) -> set[str]:
    """The segments a condition refers to, directly."""
    return {ref.segment for ref, _ in _references(condition, "") if isinstance(ref, SegmentCondition)}


def traits_used(condition: Condition) -> set[str]:
    """The profile traits a condition compares."""
    return {ref.trait for ref, _ in _references(condition, "") if isinstance(ref, TraitCondition)}


def computed_used(condition: Condition) -> set[str]:
    """The computed traits a condition compares."""
    return {ref.computed for ref, _ in _references(condition, "") if isinstance(ref, ComputedCondition)}


def _no_cycle(segment_id: str, by_id: Mapping[str, SegmentDefinition], trail: list[str]) -> None:
    if segment_id in trail:
        loop = " -> ".join([*trail[trail.index(segment_id):], segment_id])
        raise DefinitionError(f"segments refer to each other in a loop: {loop}", field=f"{segment_id}.where")
    for dependency in sorted(depends_on(by_id[segment_id].where)):
        _no_cycle(dependency, by_id, [*trail, segment_id])


def _references(condition: Condition, path: str) -> Iterable[tuple[Condition, str]]:
    if isinstance(condition, All | AnyOf):
        key = "all" if isinstance(condition, All) else "any"
        for i, item in enumerate(condition.conditions):
            yield from _references(item, f"{_at(path, key)}[{i}]")
    elif isinstance(condition, Not):
        yield from _references(condition.condition, _at(path, "not"))
    else:
        yield condition, path


# -- small helpers -------------------------------------------------------------------------------
def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DefinitionError(f"expected an object, got {type(raw).__name__}", field=path)
    return raw


def _only(body: Mapping[str, Any], allowed: set[str] | frozenset[str], path: str) -> None:
    for key in body:
        if key not in allowed:
            hint = f"; operators are {_list(OPERATORS)}" if key not in AGGREGATES else ""
            raise DefinitionError(f"unknown field {key!r} here{hint}", field=_at(path, str(key)))


def _id(body: Mapping[str, Any], path: str) -> str:
    if "id" not in body:
        raise DefinitionError("give an `id`: lowercase letters, digits and '_'", field=_at(path, "id"))
    return _name(body["id"], _at(path, "id"), identifier=True)


def _name(raw: Any, path: str, *, identifier: bool = False) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise DefinitionError("expected a name", field=path)
    if identifier and not _ID.match(raw):
        raise DefinitionError(f"{raw!r} is not an id: lowercase letters, digits and '_', starting with a letter",
                              field=path)
    return raw


def _text(body: Mapping[str, Any], key: str, path: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise DefinitionError(f"`{key}` is text", field=_at(path, key))
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))
