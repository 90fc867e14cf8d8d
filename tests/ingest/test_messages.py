"""Normalization of single Segment messages: UTC, clock skew, types, limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from persona.ingest.messages import MAX_DEPTH, MAX_MESSAGE_BYTES, BatchDefaults, Rejection, normalize
from persona.log.events import Event

RECEIVED = datetime(2026, 9, 1, 12, 0, 0, tzinfo=UTC)


def run(msg: dict[str, Any], **defaults: Any) -> Event | Rejection:
    return normalize(msg, index=3, source_id="web", defaults=BatchDefaults(received_at=RECEIVED, **defaults))


def accepted(msg: dict[str, Any], **defaults: Any) -> Event:
    outcome = run(msg, **defaults)
    assert isinstance(outcome, Event), outcome
    return outcome


def rejected(msg: dict[str, Any]) -> Rejection:
    outcome = run(msg)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.index == 3
    return outcome


def test_timestamp_with_offset_is_stored_in_utc() -> None:
    e = accepted({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-09-01T14:30:00+02:00"})
    assert e.body["timestamp"] == "2026-09-01T12:30:00.000Z"
    assert e.when == datetime(2026, 9, 1, 12, 30, tzinfo=UTC)
    assert e.body["receivedAt"] == "2026-09-01T12:00:00.000Z"


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The client clock is 1 hour fast: it says it sent at 13:00 what happened at 12:59:50.
    e = accepted({"type": "track", "userId": "u", "event": "E", "originalTimestamp": "2026-09-01T12:59:50Z",
                  "sentAt": "2026-09-01T13:00:00Z"})
    assert e.body["timestamp"] == "2026-09-01T11:59:50.000Z"
    assert e.body["originalTimestamp"] == "2026-09-01T12:59:50.000Z"


def test_batch_sent_at_applies_to_its_messages_and_explicit_timestamp_wins() -> None:
    sent = datetime(2026, 9, 1, 12, 0, 10, tzinfo=UTC)
    skewed = accepted({"type": "track", "userId": "u", "event": "E", "originalTimestamp": "2026-09-01T12:00:05Z"},
                      sent_at=sent)
    assert skewed.body["timestamp"] == "2026-09-01T11:59:55.000Z"
    explicit = accepted({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-08-01T00:00:00Z",
                         "originalTimestamp": "2026-09-01T12:00:05Z"}, sent_at=sent)
    assert explicit.body["timestamp"] == "2026-08-01T00:00:00.000Z"


def test_no_timestamp_means_received_at_and_naive_means_utc() -> None:
    assert accepted({"type": "page", "anonymousId": "a"}).timestamp == accepted(
        {"type": "page", "anonymousId": "a", "timestamp": "2026-09-01T12:00:00"}).timestamp


def test_numeric_ids_become_strings_and_write_key_is_not_stored() -> None:
    e = accepted({"type": "identify", "userId": 42, "writeKey": "secret", "traits": {"a": 1}})
    assert e.user_id == "42" and e.body["userId"] == "42"
    assert "writeKey" not in e.body


def test_batch_context_is_merged_with_message_keys_winning() -> None:
    e = accepted({"type": "track", "userId": "u", "event": "E", "context": {"ip": "1.1.1.1"}},
                 context={"ip": "9.9.9.9", "library": {"name": "x"}}, integrations={"All": False})
    assert e.body["context"] == {"ip": "1.1.1.1", "library": {"name": "x"}}
    assert e.body["integrations"] == {"All": False}


def test_missing_message_id_is_generated() -> None:
    assert accepted({"type": "track", "userId": "u", "event": "E"}).message_id.startswith("persona-")


@pytest.mark.parametrize(("msg", "field", "words"), [
    ({"type": "track", "event": "E"}, "userId", "userId or anonymousId"),
    ({"type": "track", "userId": "u"}, "event", "event name"),
    ({"type": "track", "userId": "u", "event": 5}, "event", "must be a string"),
    ({"type": "nope", "userId": "u"}, "type", "type must be one of"),
    ({"userId": "u"}, "type", "type must be one of"),
    ({"type": "track", "userId": True, "event": "E"}, "userId", "must be a string"),
    ({"type": "track", "userId": ["u"], "event": "E"}, "userId", "must be a string"),
    ({"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}, "timestamp", "ISO 8601"),
    ({"type": "track", "userId": "u", "event": "E", "timestamp": 1700000000}, "timestamp", "ISO 8601"),
    ({"type": "track", "userId": "u", "event": "E", "properties": [1]}, "properties", "must be an object"),
    ({"type": "alias", "userId": "u"}, "previousId", "previousId and userId"),
    ({"type": "group", "userId": "u"}, "groupId", "groupId"),
    ({"type": "track", "userId": "x" * 600, "event": "E"}, "userId", "longer than"),
])
def test_invalid_messages_are_rejected_with_field_and_reason(msg: dict[str, Any], field: str, words: str) -> None:
    rejection = rejected(msg)
    assert rejection.field == field
    assert words in rejection.reason


def test_message_over_32_kb_is_rejected_naming_the_limit() -> None:
    rejection = rejected({"type": "track", "userId": "u", "event": "E", "properties": {"x": "y" * MAX_MESSAGE_BYTES}})
    assert "32 KB" in rejection.reason


def test_non_object_message_is_rejected() -> None:
    assert "JSON object" in rejected([1, 2]).reason  # type: ignore[arg-type]


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_nesting_is_limited_to_max_depth_levels_whoever_sends_it() -> None:
    # The message is level 1 and `properties` level 2: `levels` more objects end at level levels + 1.
    fits = accepted({"type": "track", "userId": "u", "event": "E", "properties": nested(MAX_DEPTH - 1)})
    assert fits.name == "E"
    too_deep = rejected({"type": "track", "userId": "u", "event": "E", "properties": nested(MAX_DEPTH)})
    assert too_deep.field == "properties"
    assert f"deeper than {MAX_DEPTH} levels" in too_deep.reason
    assert isinstance(too_deep.message, str) and too_deep.message.startswith("{")  # quarantined as text
