"""The decision API's service: for a profile and some placements, the content each should show.

A placement (the `placements` file, `recommend/placements.py`) may carry `variants`: content
chosen by ordered rules, the first whose `when` holds winning; a variant without `when` is the
fallback. `when` is the audience language's trait, segment and computed-trait conditions
(`trait:` reads model traits such as `rfm_segment` too) and `context:`, filters on what the
caller sends (`{property: device.type, eq: mobile}`). Content is any JSON; its strings are
Jinja2 templates (checked when the file is read) rendered with the profile, its segments and
scores, and the request's context. With `recommendations: K` the placement also gets K
recommendations, its business rules applied.

Only indexed reads: the profile by identifier, its audience state and model traits, and the
trained model set in memory. Nothing scans the log. A profile nobody knows (or no identifier)
gets the first variant whose `when` needs no profile (context only, or none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from persona.activation.known import UNKNOWN, Known, known
from persona.activation.templates import TemplateError, check_json, context_for, render_json
from persona.errors import NotFound, RequestError
from persona.log.events import Event
from persona.segments.definitions import (
    Condition,
    DefinitionError,
    PropertyFilter,
    aggregates_of,
    parse_condition,
    parse_property_filters,
)
from persona.segments.evaluate import matches, passes_filters


@dataclass(frozen=True)
class Variant:
    id: str
    when: Condition | None            # about the profile; None: anyone
    context: tuple[PropertyFilter, ...]  # about the request
    content: Any                      # JSON whose strings are templates

    @property
    def needs_profile(self) -> bool:
        return self.when is not None


def parse_variants(raw: Any, path: str) -> tuple[Variant, ...]:
    """A placement's `variants:` list, each checked with the path of a mistake."""
    if not isinstance(raw, list) or not raw:
        raise DefinitionError("variants is a list of {id, when, context, content}", field=path)
    variants = []
    for i, item in enumerate(raw):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError("a variant is an object", field=here)
        for key in item:
            if key not in ("id", "when", "context", "content"):
                raise DefinitionError(f"unknown key {key!r}; expected id, when, context, content",
                                      field=f"{here}.{key}")
        variant_id = item.get("id")
        if not isinstance(variant_id, str) or not variant_id:
            raise DefinitionError("a variant needs an id", field=f"{here}.id")
        when = parse_condition(item["when"], f"{here}.when") if "when" in item else None
        if when is not None and aggregates_of(when):
            raise DefinitionError("a variant reads traits, segments and computed traits, not events: define a "
                                  "segment for history", field=f"{here}.when")
        if "content" not in item:
            raise DefinitionError("a variant needs content", field=f"{here}.content")
        try:
            check_json(item["content"], f"{here}.content")
        except TemplateError as exc:
            raise DefinitionError(exc.message, field=exc.template) from None
        variants.append(Variant(variant_id, when, parse_property_filters(item.get("context", []),
                                                                         f"{here}.context"), item["content"]))
    return tuple(variants)


def choose(variants: Sequence[Variant], who: Known, context: Mapping[str, Any], now: int
           ) -> tuple[Variant | None, str]:
    """The first variant whose rules hold, and why."""
    for variant in variants:
        if variant.context and not passes_filters(variant.context, context):
            continue
        if variant.when is None:
            return variant, "fallback" if who.profile is not None else "fallback: unknown profile"
        if who.profile is not None and matches(variant.when, who.facts, now):
            return variant, f"matched {_describe(variant)}"
    return None, "no variant applies"


class ContentRenderer:
    """What one request's contents render with, made once and only if a string is a template."""

    def __init__(self, who: Known, request_context: Mapping[str, Any]) -> None:
        self.who, self.request_context = who, request_context
        self._context: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        if self._context is None:
            who = self.who
            self._context = context_for(who.profile if who.profile is not None else {}, who.facts.computed,
                                        who.facts.segments, who.scores) | {"context": dict(self.request_context)}
        return self._context

    def render(self, content: Any, path: str) -> Any:
        return render_json(content, self.context, path)


def _describe(variant: Variant) -> str:
    return f"variant {variant.id!r}"


def check_request(placements: Sequence[str], known: Mapping[str, Any]) -> None:
    if not placements:
        raise RequestError("name at least one placement", field="placements")
    for i, name in enumerate(placements):
        if name not in known:
            raise NotFound(f"no placement {name!r} (known: {', '.join(sorted(known)) or 'none configured'})",
                           field=f"placements[{i}]")


EXPOSURE = "Content Shown"  # what each decision appends, for experiments and attribution


class Decider:
    """`POST /v1/decide`: the stores it reads are given by name, so it needs no engine."""

    def __init__(self, *, find: Any, state: Any, audiences: Any, model_traits: Any, recommender: Any,
                 catalog: Any, placements: Any) -> None:
        self.find, self.state, self.audiences = find, state, audiences
        self.model_traits, self.recommender, self.catalog = model_traits, recommender, catalog
        self.placements = placements  # () -> the placements in force (they reload on SIGHUP)

    def decide(self, identifier: str | None, names: Sequence[str], context: Mapping[str, Any], now: int,
               log_exposure: bool = True) -> tuple[dict[str, Any], list[Event]]:
        """The answer, and the `Content Shown` events to append for it (the caller appends them, so
        an async server can wait for their commit without holding a thread)."""
        from persona.recommend.placements import placed_for_user

        placements = self.placements()
        check_request(names, placements)
        who = self._profiled(identifier)
        rendering = ContentRenderer(who, context)
        decisions = []
        for name in names:
            placement = placements[name]
            variant, reason = choose(placement.variants, who, context, now)
            decision: dict[str, Any] = {"placement": name, "variant": variant.id if variant else None,
                                        "reason": reason,
                                        "content": rendering.render(variant.content, name) if variant else None}
            if placement.recommendations:
                decision["recommendations"] = placed_for_user(
                    self.recommender.current(), self.catalog, placement,
                    who.profile.id if who.profile is not None else None, placement.recommendations, now)
            decisions.append(decision)
        exposures = self._exposures(identifier, who, decisions, now) \
            if log_exposure and identifier is not None and who.profile is not None else []
        return {"profile_id": who.profile.id if who.profile is not None else None, "decisions": decisions}, exposures

    def _profiled(self, identifier: str | None) -> Known:
        if identifier is None:
            return UNKNOWN
        try:
            profile = self.find(identifier)
        except NotFound:
            return UNKNOWN
        return known(profile.id, self.state, self.audiences, self.model_traits, profile)

    def _exposures(self, identifier: str, who: Known, decisions: list[dict[str, Any]], now: int) -> list[Event]:
        """One `Content Shown` event per decision made, addressed like the request."""
        from persona.log.events import iso
        from persona.segments.stage import SYSTEM_SOURCE

        assert who.profile is not None

        kind, _, value = identifier.partition(":")
        events = []
        for decision in decisions:
            if decision["variant"] is None:
                continue
            message_id = f"decide:{who.profile.id}:{decision['placement']}:{now}"
            body: dict[str, Any] = {"type": "track", "event": EXPOSURE, "messageId": message_id,
                                    "timestamp": iso(now), "properties": {
                                        "placement": decision["placement"], "variant": decision["variant"],
                                        "reason": decision["reason"], "profile_id": who.profile.id}}
            key = {"user_id": "userId", "anonymous_id": "anonymousId"}.get(kind)
            if key and value:
                body[key] = value
            events.append(Event(source_id=SYSTEM_SOURCE, message_id=message_id, type="track", name=EXPOSURE,
                                user_id=body.get("userId"), anonymous_id=body.get("anonymousId"), timestamp=now,
                                received_at=now, body=body))
        return events
