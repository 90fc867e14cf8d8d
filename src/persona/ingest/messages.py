"""Validate and normalize Segment messages, one at a time.

A message that breaks a rule becomes a `Rejection` naming the field and the rule; it
never raises. Normalization makes the stored form predictable for everything downstream:
timestamps in UTC (`Z`), clock skew corrected from `sentAt` the way Segment does,
batch-level `context`/`integrations` merged in, ids as strings, `writeKey` dropped.

A message may arrive as a dict or, from the HTTP API, as raw JSON (`msgspec.Raw`). Raw
messages are decoded one level deep: the object fields (`context`, `properties`, ...)
stay raw JSON, checked to be objects and copied into the stored body verbatim, because
turning them into Python dicts only to encode them again was the largest cost of ingest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import msgspec

from persona.log.events import MESSAGE_TYPES, Event, is_canonical_iso, iso, to_micros

MAX_MESSAGE_BYTES = 32 * 1024
MAX_ID_LENGTH = 512
# Objects and arrays nest at most this deep in a message (the message itself is level 1).
# Without a fixed limit the limit is Python's recursion limit minus the depth of the stack
# that decodes, so an event accepted by a shallow thread could fail to decode in a deeper one.
MAX_DEPTH = 64
_BRACE = ord("{")
_DICT_FIELDS = ("context", "integrations", "properties", "traits")
_STRING_FIELDS = ("event", "name", "category")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str | None
    reason: str
    message: Any  # the raw message, kept for the quarantine

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class InvalidField(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason


class NestedTooDeep(InvalidField):
    """Quarantined as text rather than JSON: no reader should have to decode it."""

    def __init__(self, field: str, reason: str, text: str) -> None:
        super().__init__(field, reason)
        self.text = text


@dataclass(frozen=True)
class BatchDefaults:
    """What a batch request says for all its messages."""

    received_at: datetime
    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None

    @cached_property
    def received_us(self) -> int:
        return to_micros(self.received_at)

    @cached_property
    def received_iso(self) -> str:
        return iso(self.received_us)

    @cached_property
    def sent_at_iso(self) -> str | None:
        return iso(to_micros(self.sent_at)) if self.sent_at is not None else None


def parse_timestamp(value: Any, field: str) -> datetime | None:
    """ISO 8601 string to an aware UTC datetime; a string without offset is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(field, f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, f"{field} is not a valid ISO 8601 timestamp: {value[:40]!r}") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise InvalidField(field, f"{field} is out of range: {value[:40]!r}") from None


def _identifier(msg: dict[str, Any], field: str) -> str | None:
    value = msg.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidField(field, f"{field} must be a string, got {type(value).__name__}")
    text = value if isinstance(value, str) else format(value, "")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidField(field, f"{field} is longer than {MAX_ID_LENGTH} characters")
    return text or None


def _event_time(msg: dict[str, Any], defaults: BatchDefaults) -> datetime:
    """Segment's rule: an explicit timestamp wins; otherwise correct the client clock by sentAt."""
    timestamp = parse_timestamp(msg.get("timestamp"), "timestamp")
    original = parse_timestamp(msg.get("originalTimestamp"), "originalTimestamp")
    sent_at = parse_timestamp(msg.get("sentAt"), "sentAt") or defaults.sent_at
    if timestamp is not None:
        return timestamp
    if original is not None and sent_at is not None:
        return defaults.received_at - (sent_at - original)
    return original or defaults.received_at


def normalize(
    raw: Any, *, index: int, source_id: str, defaults: BatchDefaults, forced_type: str | None = None
) -> Event | Rejection:
    """One raw message to an `Event` ready for the log, or a `Rejection` saying why not."""
    try:
        return _normalize(raw, source_id, defaults, forced_type)
    except InvalidField as bad:
        kept = bad.text if isinstance(bad, NestedTooDeep) else raw
        return Rejection(index=index, field=bad.field, reason=bad.reason, message=kept)
    except OverflowError:
        return Rejection(index=index, field="timestamp", reason="a timestamp is out of range", message=raw)
    except RecursionError:
        return Rejection(index=index, field=None, reason="the message is nested too deeply", message=raw)


def message_fields(raw: Any) -> dict[str, Any]:
    """A message's top-level fields, decoded except the objects in `_DICT_FIELDS` (left raw)."""
    if isinstance(raw, msgspec.Raw):
        try:
            raw = _decode_fields(raw)
        except msgspec.ValidationError:
            raise InvalidField(None, f"a message must be a JSON object, got {json_type(_decode(raw))}") from None
    if not isinstance(raw, dict):
        raise InvalidField(None, f"a message must be a JSON object, got {json_type(raw)}")
    return {k: _decode(v) if type(v) is msgspec.Raw and not (k in _DICT_FIELDS and memoryview(v)[0] == _BRACE)
            else v for k, v in raw.items()}


def _as_dict(value: Any) -> dict[str, Any]:
    return _decode(value) if type(value) is msgspec.Raw else value


def _normalize(raw: Any, source_id: str, defaults: BatchDefaults, forced_type: str | None) -> Event:
    msg = message_fields(raw)
    msg.pop("writeKey", None)
    msg.pop("receivedAt", None)
    kind = forced_type or msg.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:  # a list or object is not hashable
        shown = repr(kind)[:40]
        raise InvalidField("type", f"type must be one of {sorted(MESSAGE_TYPES)}, got {shown}")
    msg["type"] = kind
    for field in _DICT_FIELDS:
        value = msg.get(field)
        if value is not None and not isinstance(value, dict | msgspec.Raw):  # a Raw one is an object
            raise InvalidField(field, f"{field} must be an object, got {json_type(value)}")
    for field in _STRING_FIELDS:
        value = msg.get(field)
        if value is not None and not isinstance(value, str):
            raise InvalidField(field, f"{field} must be a string, got {json_type(value)}")
    if defaults.context:
        msg["context"] = {**defaults.context, **_as_dict(msg.get("context") or {})}
    if defaults.integrations:
        msg["integrations"] = {**defaults.integrations, **_as_dict(msg.get("integrations") or {})}

    user_id = _identifier(msg, "userId")
    anonymous_id = _identifier(msg, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidField("userId", "either userId or anonymousId is required")
    _set_or_drop(msg, "userId", user_id)
    _set_or_drop(msg, "anonymousId", anonymous_id)
    name: str | None = msg.get("name")
    if kind == "track":
        name = msg.get("event")
        if not name:
            raise InvalidField("event", "a track message needs a non-empty event name")
    elif kind == "alias":
        previous = _identifier(msg, "previousId")
        if previous is None or user_id is None:
            raise InvalidField("previousId", "an alias message needs both previousId and userId")
        msg["previousId"] = previous
    elif kind == "group":
        group_id = _identifier(msg, "groupId")
        if group_id is None:
            raise InvalidField("groupId", "a group message needs a groupId")
        msg["groupId"] = group_id

    message_id = _identifier(msg, "messageId") or f"persona-{uuid.uuid4()}"
    msg["messageId"] = message_id
    timestamp_us = to_micros(_event_time(msg, defaults))
    msg["timestamp"] = _canonical(msg.get("timestamp"), timestamp_us)
    msg["receivedAt"] = defaults.received_iso
    for field in ("originalTimestamp", "sentAt"):
        parsed = parse_timestamp(msg.get(field), field)
        _set_or_drop(msg, field, _canonical(msg.get(field), to_micros(parsed)) if parsed else None)
    if defaults.sent_at_iso is not None and "sentAt" not in msg:
        msg["sentAt"] = defaults.sent_at_iso

    try:
        encoded = _encode(msg)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidField(None, f"the message cannot be stored as JSON: {exc}") from None
    size = len(encoded)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidField(None, f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (32 KB)")
    _check_depth(encoded)
    return Event(
        source_id=source_id,
        message_id=message_id,
        type=kind,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp_us,
        received_at=defaults.received_us,
        body=msg,
        encoded=encoded,
    )


def _canonical(given: Any, us: int) -> str:
    return given if isinstance(given, str) and is_canonical_iso(given) else iso(us)


def _set_or_drop(msg: dict[str, Any], field: str, value: Any) -> None:
    if value is None:
        msg.pop(field, None)
    else:
        msg[field] = value


def _check_depth(encoded: bytes) -> None:
    """Refuse a message nested deeper than MAX_DEPTH. Nesting cannot exceed the number of
    `{` and `[` in the text, so almost every message passes on two byte counts; only one with
    more brackets than the limit (say, a large cart) is decoded and walked."""
    if encoded.count(b"{") + encoded.count(b"[") <= MAX_DEPTH:
        return
    stack: list[tuple[Any, int, str]] = [(v, 2, k) for k, v in _decode(encoded).items() if isinstance(v, dict | list)]
    while stack:
        node, depth, field = stack.pop()
        if depth > MAX_DEPTH:
            raise NestedTooDeep(field, f"{field} nests objects and arrays deeper than {MAX_DEPTH} levels",
                                encoded.decode())
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1, field) for child in children if isinstance(child, dict | list))


def json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
