"""The journey language: event-driven triggers and multi-step journeys, parsed and checked on save.

A journey is plain data (YAML or JSON), e.g. the abandoned cart:

    id: cart_abandoned
    entry: {event: Product Added, where: [{property: price, gt: 20}]}
    reentry: {every: 1d}                 # once (default), always, or {every: DURATION}
    goal: {event: Order Completed}       # whenever it happens: the journey ends, converted
    steps:
      - wait_for: {event: Order Completed, match: [cart_id], within: 15m}
        # it happened: `then` (default: end the journey); the 15 minutes passed: the next step
      - branch:
          - if: {segment: high_value}
            then: [{send: {webhook: crm, template: vip_cart}}]
          - else: [{send: {email: {subject: "Your cart", text: "Hi {{ traits.first_name }}, ..."}}}]
      - split:                           # random, stable per entry; what is left is a holdout
          - {name: discount, percent: 45, then: [{send: {webhook: coupons}}]}
          - {name: no_discount, percent: 45}
      - wait: 2d
      - exit: true

An entry is an event with property filters (`{event: NAME, where: [...]}`), a segment entered or
left (`{segment_entered: ID}`, `{segment_exited: ID}`: the audience stage's announcements) or a
trait set by an `identify` (`{trait_changed: NAME}`). `match` correlates a later event with the
entry event by properties (the same `cart_id`), not just by person. Branch conditions are the
audience language's trait, segment and computed-trait conditions (`segments/definitions.py`;
`trait:` also reads model traits such as `rfm_segment`); event conditions are refused there
(a segment is how a journey reads history).

The steps compile to a flat program (`Journey.nodes`): an instance of a journey is a position in
it, which is what the journey stage stores. Every mistake is a `DefinitionError` naming the path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.segments.definitions import (
    Condition,
    DefinitionError,
    PropertyFilter,
    aggregates_of,
    parse_condition,
    parse_duration,
    parse_property_filters,
)

EXIT = -1  # the node after the last: the journey is over
SEGMENT_ENTERED, SEGMENT_EXITED = "Segment Entered", "Segment Exited"


@dataclass(frozen=True)
class EventMatch:
    """An event of this name whose properties pass `where`; `match` names properties that must equal
    the entry event's."""

    event: str
    where: tuple[PropertyFilter, ...] = ()
    match: tuple[str, ...] = ()
    trait: str | None = None  # an `identify` that sets this trait (entry only)


@dataclass(frozen=True)
class Wait:
    seconds: int
    next: int


@dataclass(frozen=True)
class WaitFor:
    on: EventMatch
    within: int    # seconds
    matched: int   # where to go when the event comes in time
    next: int      # where to go when it does not


@dataclass(frozen=True)
class Branch:
    cases: tuple[tuple[Condition, int], ...]  # the first condition that holds says where to go
    otherwise: int


@dataclass(frozen=True)
class Split:
    arms: tuple[tuple[str, int, int], ...]  # (name, cumulative percent, where to go); beyond the last: holdout


@dataclass(frozen=True)
class Send:
    channel: str              # webhook, email or event
    target: str               # the webhook destination, "email", or the event's name
    options: dict[str, Any]   # the webhook's payload; the email's subject, text, html, to, channel
    next: int


@dataclass(frozen=True)
class Exit:
    pass


Node = Wait | WaitFor | Branch | Split | Send | Exit


@dataclass(frozen=True)
class Journey:
    id: str
    name: str
    entry: EventMatch
    reentry: str | int        # "once", "always", or seconds between entries
    goal: EventMatch | None
    nodes: tuple[Node, ...]
    start: int                # the node an instance begins at
    labels: tuple[str, ...]   # per node, the path it was written at (steps[1].branch[0].then[0])
    fingerprint: str          # of the definition: instances of another version are ended


def parse_journey(raw: Any, path: str = "") -> Journey:
    body = _mapping(raw, path)
    _only(body, {"id", "name", "entry", "reentry", "goal", "steps"}, path)
    journey_id = body.get("id")
    if not isinstance(journey_id, str) or not journey_id or not journey_id.replace("_", "").replace("-", "").isalnum():
        raise DefinitionError("id must be letters, digits, _ or -", field=_at(path, "id"))
    name = body.get("name", journey_id)
    if not isinstance(name, str):
        raise DefinitionError("name must be text", field=_at(path, "name"))
    entry = _entry(body.get("entry"), _at(path, "entry"))
    goal = _event_match(body["goal"], _at(path, "goal"), correlate=True) if "goal" in body else None
    steps = body.get("steps", [])
    program = _Program()
    start = program.compile(steps, _at(path, "steps"), EXIT)
    if not program.nodes:
        raise DefinitionError("a journey needs at least one step", field=_at(path, "steps"))
    fingerprint = hashlib.sha256(msgspec.json.encode(raw, order="sorted")).hexdigest()[:16]
    return Journey(journey_id, name, entry, _reentry(body.get("reentry", "once"), _at(path, "reentry")), goal,
                   tuple(program.nodes), start, tuple(program.labels), fingerprint)


class _Program:
    """Steps compiled back to front, so each node knows where it goes next."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.labels: list[str] = []

    def compile(self, raw: Any, path: str, after: int) -> int:
        """Compile a list of steps that continues at `after`; returns the index of its first node."""
        if not isinstance(raw, list):
            raise DefinitionError("steps must be a list", field=path)
        start = after
        for i in reversed(range(len(raw))):
            start = self._step(raw[i], f"{path}[{i}]", start)
        return start

    def _add(self, node: Node, path: str) -> int:
        self.nodes.append(node)
        self.labels.append(path)
        return len(self.nodes) - 1

    def _step(self, raw: Any, path: str, after: int) -> int:
        step = _mapping(raw, path)
        kinds = [k for k in ("wait", "wait_for", "branch", "split", "send", "exit") if k in step]
        if len(kinds) != 1:
            raise DefinitionError("a step is one of wait, wait_for, branch, split, send, exit", field=path)
        kind = kinds[0]
        if kind == "wait":
            _only(step, {"wait"}, path)
            return self._add(Wait(_positive_duration(step["wait"], _at(path, "wait")), after), path)
        if kind == "wait_for":
            _only(step, {"wait_for", "then"}, path)
            spec = _mapping(step["wait_for"], _at(path, "wait_for"))
            if "within" not in spec:
                raise DefinitionError("wait_for needs `within`: how long to wait", field=_at(path, "wait_for.within"))
            within = _positive_duration(spec["within"], _at(path, "wait_for.within"))
            on = _event_match({k: v for k, v in spec.items() if k != "within"}, _at(path, "wait_for"),
                              correlate=True)
            matched = self.compile(step["then"], _at(path, "then"), after) if "then" in step else EXIT
            return self._add(WaitFor(on, within, matched, after), path)
        if kind == "branch":
            _only(step, {"branch"}, path)
            return self._branch(step["branch"], _at(path, "branch"), after)
        if kind == "split":
            _only(step, {"split"}, path)
            return self._split(step["split"], _at(path, "split"), after)
        if kind == "send":
            _only(step, {"send"}, path)
            return self._add(_send(step["send"], _at(path, "send"), after), path)
        _only(step, {"exit"}, path)
        if step["exit"] is not True:
            raise DefinitionError("exit: true ends the journey", field=_at(path, "exit"))
        return self._add(Exit(), path)

    def _branch(self, raw: Any, path: str, after: int) -> int:
        if not isinstance(raw, list) or not raw:
            raise DefinitionError("branch is a list of {if: CONDITION, then: STEPS} and an optional {else: STEPS}",
                                  field=path)
        cases: list[tuple[Condition, int]] = []
        otherwise = after
        for i, case in enumerate(raw):
            here = f"{path}[{i}]"
            body = _mapping(case, here)
            if "else" in body:
                _only(body, {"else"}, here)
                if i != len(raw) - 1:
                    raise DefinitionError("else comes last", field=here)
                otherwise = self.compile(body["else"], _at(here, "else"), after)
                continue
            _only(body, {"if", "then"}, here)
            if "if" not in body:
                raise DefinitionError("a case needs `if`", field=_at(here, "if"))
            condition = parse_condition(body["if"], _at(here, "if"))
            if aggregates_of(condition):
                raise DefinitionError("a branch reads traits, segments and computed traits, not events: "
                                      "define a segment for history", field=_at(here, "if"))
            cases.append((condition, self.compile(body.get("then", []), _at(here, "then"), after)))
        return self._add(Branch(tuple(cases), otherwise), path)

    def _split(self, raw: Any, path: str, after: int) -> int:
        if not isinstance(raw, list) or not raw:
            raise DefinitionError("split is a list of {name, percent, then}", field=path)
        arms: list[tuple[str, int, int]] = []
        total = 0
        for i, arm in enumerate(raw):
            here = f"{path}[{i}]"
            body = _mapping(arm, here)
            _only(body, {"name", "percent", "then"}, here)
            name, percent = body.get("name"), body.get("percent")
            if not isinstance(name, str) or not name or name == "holdout":
                raise DefinitionError("each arm needs a name (holdout is what is left)", field=_at(here, "name"))
            if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent <= 100:
                raise DefinitionError("percent is a whole number from 1 to 100", field=_at(here, "percent"))
            total += percent
            if total > 100:
                raise DefinitionError(f"the arms add up to {total}%, more than 100", field=_at(here, "percent"))
            if name in {a[0] for a in arms}:
                raise DefinitionError(f"arm {name!r} appears twice", field=_at(here, "name"))
            arms.append((name, total, self.compile(body.get("then", []), _at(here, "then"), after)))
        return self._add(Split(tuple(arms)), path)


def _send(raw: Any, path: str, after: int) -> Send:
    body = _mapping(raw, path)
    channels = [c for c in ("webhook", "email", "event") if c in body]
    if len(channels) != 1:
        raise DefinitionError("send one of webhook: DESTINATION, email: {...}, event: NAME", field=path)
    channel = channels[0]
    if channel == "email":
        _only(body, {"email", "channel"}, path)
        spec = _mapping(body["email"], _at(path, "email"))
        _only(spec, {"subject", "text", "html", "to"}, _at(path, "email"))
        if "subject" not in spec or not ("text" in spec or "html" in spec):
            raise DefinitionError("an email needs a subject and a text or html body (Jinja2 templates)",
                                  field=_at(path, "email"))
        for key in ("subject", "text", "html", "to"):
            if key in spec:
                _template(spec[key], _at(path, f"email.{key}"), html=key == "html")
        channel_name = body.get("channel", "marketing")
        if not isinstance(channel_name, str) or not channel_name:
            raise DefinitionError("channel names what frequency caps count (marketing, transactional, ...)",
                                  field=_at(path, "channel"))
        return Send("email", "email", dict(spec) | {"channel": channel_name}, after)
    _only(body, {channel, "payload"}, path)
    target = body[channel]
    if not isinstance(target, str) or not target:
        raise DefinitionError(f"{channel} names a {'destination' if channel == 'webhook' else 'event'}",
                              field=_at(path, channel))
    if "payload" in body and not isinstance(body["payload"], dict):
        raise DefinitionError("payload is an object", field=_at(path, "payload"))
    if "payload" in body:  # its strings are templates, like a decision's content
        from persona.activation.templates import TemplateError, check_json

        try:
            check_json(body["payload"], _at(path, "payload"))
        except TemplateError as exc:
            raise DefinitionError(exc.message, field=exc.template) from None
    return Send(channel, target, {k: v for k, v in body.items() if k != channel}, after)


def _template(source: Any, path: str, *, html: bool) -> None:
    """Checked on save: it parses, it is not too long, it includes no other file."""
    from persona.activation.templates import TemplateError, check

    if not isinstance(source, str):
        raise DefinitionError("a template is text", field=path)
    try:
        check(path, source, html=html)
    except TemplateError as exc:
        raise DefinitionError(exc.message, field=path) from None


def _entry(raw: Any, path: str) -> EventMatch:
    body = _mapping(raw, path)
    if "segment_entered" in body or "segment_exited" in body:
        _only(body, {"segment_entered", "segment_exited"}, path)
        key = "segment_entered" if "segment_entered" in body else "segment_exited"
        segment = body[key]
        if not isinstance(segment, str) or not segment or len(body) != 1:
            raise DefinitionError(f"{key} names one segment", field=_at(path, key))
        event = SEGMENT_ENTERED if key == "segment_entered" else SEGMENT_EXITED
        return EventMatch(event, parse_property_filters([{"property": "segment_id", "eq": segment}], path))
    if "trait_changed" in body:
        _only(body, {"trait_changed"}, path)
        trait = body["trait_changed"]
        if not isinstance(trait, str) or not trait:
            raise DefinitionError("trait_changed names a trait", field=_at(path, "trait_changed"))
        return EventMatch("identify", trait=trait)
    return _event_match(body, path, correlate=False)


def _event_match(raw: Any, path: str, *, correlate: bool) -> EventMatch:
    body = _mapping(raw, path)
    _only(body, {"event", "where", "match"} if correlate else {"event", "where"}, path)
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise DefinitionError("event names a track event (or a message type)", field=_at(path, "event"))
    where = parse_property_filters(body.get("where", []), _at(path, "where"))
    match = body.get("match", [])
    if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
        raise DefinitionError("match is a list of property names", field=_at(path, "match"))
    return EventMatch(event, where, tuple(match))


def _reentry(raw: Any, path: str) -> str | int:
    if raw in ("once", "always"):
        return raw  # type: ignore[return-value]
    if isinstance(raw, dict) and set(raw) == {"every"}:
        return _positive_duration(raw["every"], _at(path, "every"))
    raise DefinitionError("reentry is once, always or {every: DURATION}", field=path)


def _positive_duration(raw: Any, path: str) -> int:
    seconds = parse_duration(raw, path)
    if seconds <= 0:
        raise DefinitionError("a duration must be more than 0", field=path)
    return seconds


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DefinitionError("expected an object", field=path or None)
    return raw


def _only(body: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in body:
        if key not in allowed:
            raise DefinitionError(f"unknown key {key!r}; expected {', '.join(sorted(allowed))}", field=_at(path, key))


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
