"""What a journey's `send` step does.

Every step performed is written to the log as a `Message Sent` event from the system source
`persona`, addressed to the profile (so it shows on its timeline, counts in segments and can be
attributed), with the step's idempotency key as message id: a step redone after a crash appends
nothing twice. Deliveries go through the outbox, added in the same transaction as the journey
state that led to them: a webhook step's JSON body, and an email step's rendered message once
the guards (suppression, frequency caps, quiet hours) let it go, now or later.

Templates (an email's subject and bodies, the strings of a webhook's `payload`) render with the
profile, its computed traits, segments and scores, the event that led there, and, when a model
set is trained and a template names them, the profile's `recommendations`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from persona.activation.delivery import EMAIL
from persona.activation.guards import Guards, timezone_of
from persona.activation.known import known
from persona.activation.outbox import NewDelivery, enqueue
from persona.activation.stage import Step
from persona.activation.store import JourneyChanges
from persona.activation.templates import TemplateError, context_for, json_templates, render, render_json
from persona.identity.rules import IdentityRules
from persona.jobs.store import ModelTraitStore
from persona.log.events import Event, iso
from persona.profiles.profile import Profile
from persona.profiles.sql import SQLStateStore
from persona.segments.sql import AudienceStore
from persona.segments.stage import SYSTEM_SOURCE, address
from persona.storage.sql import Connection

MESSAGE_SENT = "Message Sent"
RECOMMENDATIONS = 6  # what a template's `recommendations` holds, at most

Recommend = Callable[[str, int], Sequence[Any]]  # (profile id, k) -> Scored-like items; [] when none


class LoggedActions:
    """Records every step as `Message Sent`; a webhook step also enqueues its delivery, an email
    step (guards permitting) its rendered message."""

    def __init__(self, state: SQLStateStore, rules: IdentityRules, guards: Guards | None = None, *,
                 audiences: AudienceStore | None = None, model_traits: ModelTraitStore | None = None,
                 mail: bool = False, recommend: Recommend | None = None) -> None:
        self.state = state
        self.rules = rules
        self.guards = guards
        self.audiences, self.model_traits = audiences, model_traits  # what templates see besides the profile
        self.mail = mail  # an SMTP server is configured
        self.recommend = recommend

    def perform(self, step: Step, changes: JourneyChanges) -> None:
        instance = step.instance
        profile = self.state.combined([instance.profile_id]).get(instance.profile_id)
        body: dict[str, Any] = {
            "type": "track", "event": MESSAGE_SENT, "messageId": step.idempotency_key, "timestamp": iso(step.at),
            "properties": {"journey_id": step.journey.id, "journey_name": step.journey.name,
                           "step": step.journey.labels[step.node], "channel": step.send.channel,
                           "target": step.send.target, "profile_id": instance.profile_id,
                           "instance": instance.number, "arm": instance.arm},
            "context": {"library": {"name": "persona", "version": "journeys"}},
        }
        if profile is not None:
            address(body, profile.identifiers, self.rules)
        if step.send.channel == "webhook":
            try:
                data = render_json(step.send.options.get("payload", {}), lambda: self._context(step, profile),
                                   f"{step.journey.labels[step.node]}.payload")
            except TemplateError as exc:
                body["properties"] |= {"status": "failed", "reason": exc.message}
            else:
                delivery = NewDelivery.json(step.send.target, step.idempotency_key, webhook_body(step, profile, data))
                changes.also.append(lambda conn: enqueue(conn, [delivery]))
        elif step.send.channel == "email":
            body["properties"] |= self._email(step, profile, changes)
        changes.events.append(Event(source_id=SYSTEM_SOURCE, message_id=step.idempotency_key, type="track",
                                    name=MESSAGE_SENT, user_id=body.get("userId"),
                                    anonymous_id=body.get("anonymousId"), timestamp=step.at, received_at=step.at,
                                    body=body))

    def _email(self, step: Step, profile: Profile | None, changes: JourneyChanges) -> dict[str, Any]:
        """Render and enqueue the email if the guards let it go (now, or later: quiet hours); what
        happened, for the `Message Sent` event."""
        options, instance = step.send.options, step.instance
        channel = options["channel"]
        if not self.mail:
            return {"status": "refused", "reason": "no SMTP server configured (smtp_host)"}
        context = self._context(step, profile)
        try:
            rendered = {key: render(f"{step.journey.labels[step.node]}.email.{key}", options[key], context,
                                    html=key == "html") for key in ("subject", "text", "html", "to") if key in options}
        except TemplateError as exc:
            return {"status": "failed", "reason": exc.message}
        to = rendered.get("to", "").strip() or _email_of(profile)
        if not to:
            return {"status": "refused", "reason": "the profile has no email address"}
        at = datetime.fromtimestamp(step.at / 1_000_000, UTC)
        decision = None
        if self.guards is not None:
            sent_with = step.event.body.get("context") if step.event is not None else None
            zone = timezone_of(profile.traits if profile else {}, sent_with if isinstance(sent_with, dict) else None)
            decision = self.guards.check(instance.profile_id, profile.identifiers if profile else {}, channel, at,
                                         zone, changes.sends.get((instance.profile_id, channel), []))
        if decision is not None and decision.outcome == "refused":
            return {"status": "refused", "reason": decision.reason}
        send_at = step.at if decision is None or decision.deferred_until is None \
            else int(decision.deferred_until.timestamp() * 1_000_000)
        message = {"to": to, "subject": rendered["subject"].strip(), "text": rendered.get("text", ""),
                   "html": rendered.get("html"), "headers": {"X-Persona-Step": step.idempotency_key}}
        delivery = NewDelivery.json(EMAIL, step.idempotency_key, message)
        guards = self.guards

        def write(conn: Connection) -> None:
            enqueue(conn, [delivery], now=send_at)
            if guards is not None:
                guards.sends.record_in(conn, step.idempotency_key, instance.profile_id, channel, at)

        changes.also.append(write)
        changes.sends.setdefault((instance.profile_id, channel), []).append(at)
        out: dict[str, Any] = {"status": "queued", "to": to}
        if send_at != step.at:
            out |= {"status": "deferred", "reason": decision.reason if decision else None, "send_at": iso(send_at)}
        return out


    def _context(self, step: Step, profile: Profile | None) -> dict[str, Any]:
        """What the step's templates render with; recommendations only if one of them names them."""
        instance = step.instance
        who = known(instance.profile_id, self.state, self.audiences, self.model_traits, profile)
        event = step.event.body if step.event is not None else {"properties": instance.entry, "event": None}
        sources = [source for _, source in json_templates(step.send.options, "")]
        recommended = self.recommend(instance.profile_id, RECOMMENDATIONS) \
            if self.recommend is not None and any("recommendations" in source for source in sources) else ()
        return context_for(profile if profile is not None else {"id": instance.profile_id}, who.facts.computed,
                           who.facts.segments, who.scores, event, recommended)


def webhook_body(step: Step, profile: Profile | None, data: Any) -> dict[str, Any]:
    """What a webhook step POSTs: the journey and step, the profile, the entry event's properties
    (the cart), the event that led here (null after a wait), and the step's `payload`, rendered."""
    instance, event = step.instance, step.event
    return {
        "type": "journey.step", "id": step.idempotency_key, "at": iso(step.at),
        "journey": {"id": step.journey.id, "name": step.journey.name, "step": step.journey.labels[step.node],
                    "instance": instance.number, "arm": instance.arm},
        "profile": {"id": instance.profile_id, "identifiers": profile.identifiers if profile else {},
                    "traits": profile.traits if profile else {}},
        "entry": {"timestamp": iso(instance.entered_at), "properties": instance.entry},
        "event": None if event is None else {"name": event.name or event.type, "timestamp": iso(event.timestamp),
                                             "properties": event.body.get("properties") or {}},
        "data": data,
    }


def _email_of(profile: Profile | None) -> str:
    if profile is None:
        return ""
    emails = profile.identifiers.get("email") or []
    trait = profile.traits.get("email")
    return emails[0] if emails else trait if isinstance(trait, str) else ""
