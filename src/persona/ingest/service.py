"""Ingest requests end to end: decode, authenticate, check limits, normalize, append, answer.

The HTTP routes are one line over `IngestService.handle`; bulk import reuses
`normalize` and the log directly. Nothing is acknowledged before the log has committed it.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from persona.access.keys import KeyKind, KeyStore
from persona.errors import AuthError, PayloadTooLarge, RequestError
from persona.ingest.messages import (
    MAX_MESSAGE_BYTES,
    BatchDefaults,
    InvalidField,
    Rejection,
    json_type,
    normalize,
    parse_timestamp,
)
from persona.log.events import Event, to_micros
from persona.log.store import EventLog, Rejected

MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
OFFLOAD_BYTES = 16 * 1024
_decode = msgspec.json.Decoder().decode
_decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_list = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _field(payload: dict[str, Any], name: str) -> Any:
    """A top-level field of a request body, decoded if it is still raw JSON."""
    value = payload.get(name)
    return _decode(value) if type(value) is msgspec.Raw else value


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "accepted": self.accepted, "duplicates": self.duplicates}
        if self.rejected:
            body["rejected"] = [r.to_json() for r in self.rejected]
        return body


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> dict[str, Any]:
    """Bytes of a request (maybe gzip) to its top-level JSON fields, each still raw JSON.

    Refuses anything over `limit` bytes decoded, and anything but a JSON object."""
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise RequestError(f"the body is not valid gzip: {exc}", field="Content-Encoding") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the decompressed body is over the {limit // 1024} KB limit", code="body_too_large")
        if not inflater.eof:
            raise RequestError("the gzip body is truncated", field="Content-Encoding")
    elif encoding not in ("", "identity"):
        raise RequestError(f"unsupported Content-Encoding {encoding!r}; use gzip or none",
                           field="Content-Encoding", code="unsupported_encoding")
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is {len(raw)} bytes, over the {limit // 1024} KB limit",
                              code="body_too_large")
    if not raw.strip():
        raise RequestError("the body is empty; send a JSON object", code="invalid_json")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not valid UTF-8 (byte {exc.start})", code="invalid_json") from None
    whole = _decode_whole(raw)
    if not isinstance(whole, dict):
        raise RequestError(f"the body must be a JSON object, got {json_type(whole)}", code="invalid_body")
    return _decode_fields(raw)


def _decode_whole(raw: bytes) -> Any:
    """The body fully decoded, only to be thrown away: the message objects are stored as raw
    JSON (`persona.ingest.messages`), which msgspec checks for syntax but not for UTF-8 or
    number range, and an event that no reader can decode (`1e999`) would stop the processor
    for good. This is the one range check msgspec has; it costs about a fifth of the API's
    CPU per event. Regex pre-filters were measured and rejected: one that skips UUIDs and
    catches every overflowing literal (`1e999`, `1111…(400 digits).5`, `1111…(250 digits)e60`)
    scans a body half as fast as msgspec decodes it."""
    try:
        return _decode(raw)
    except msgspec.DecodeError as exc:  # also a ValidationError: a number out of range
        raise RequestError(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise RequestError("the body is nested too deeply", code="invalid_json") from None


def basic_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic header: where Segment SDKs put the write key."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, or a non-ASCII header
        raise AuthError("the Basic authorization header is not valid base64") from None
    return decoded.split(":", 1)[0] or None


class IngestService:
    def __init__(self, log: EventLog, keys: KeyStore) -> None:
        self.log = log
        self.keys = keys

    def source_for(self, authorization: str | None, payload: Any) -> str:
        """The source a request writes for, from its write key (Basic username or body `writeKey`)."""
        key = basic_username(authorization)
        if key is None and isinstance(payload, dict):
            body_key = _field(payload, "writeKey")
            key = body_key if isinstance(body_key, str) and body_key else None
        if key is None:
            raise AuthError("a write key is required: HTTP Basic username or writeKey in the body",
                            code="missing_write_key")
        found = self.keys.lookup(key)
        if found is None or found.kind is not KeyKind.WRITE or found.source_id is None:
            raise AuthError("the write key is not valid", code="invalid_write_key")
        return found.source_id

    def prepare(self, payload: Any, source_id: str, *, endpoint_type: str | None,
                received_at: datetime | None = None) -> tuple[list[Event], list[Rejection]]:
        """Normalize the messages of a request; invalid ones are rejected alone."""
        received_at = received_at or datetime.now(UTC)
        if not isinstance(payload, dict):
            raise RequestError("the body must be a JSON object", code="invalid_body")
        if endpoint_type is None:
            messages, defaults = self._batch(payload, received_at)
        else:
            messages, defaults = [payload], BatchDefaults(received_at=received_at)
        events: list[Event] = []
        rejections: list[Rejection] = []
        for index, message in enumerate(messages):
            outcome = normalize(message, index=index, source_id=source_id, defaults=defaults,
                                forced_type=endpoint_type)
            (events if isinstance(outcome, Event) else rejections).append(outcome)  # type: ignore[arg-type]
        return events, rejections

    def _batch(self, payload: dict[str, Any], received_at: datetime) -> tuple[list[Any], BatchDefaults]:
        messages = payload.get("batch")
        if type(messages) is msgspec.Raw:
            try:
                messages = _decode_list(messages)
            except msgspec.ValidationError:
                messages = None
        if not isinstance(messages, list):
            raise RequestError("a batch request needs a `batch` array of messages", field="batch")
        if len(messages) > MAX_BATCH_MESSAGES:
            raise RequestError(f"the batch has {len(messages)} messages; the limit is {MAX_BATCH_MESSAGES}",
                               field="batch", code="too_many_messages")
        context, integrations = _field(payload, "context"), _field(payload, "integrations")
        for name, value in (("context", context), ("integrations", integrations)):
            if value is not None and not isinstance(value, dict):
                raise RequestError(f"batch-level {name} must be an object", field=name)
        try:
            sent_at = parse_timestamp(_field(payload, "sentAt"), "sentAt")
        except InvalidField as bad:
            raise RequestError(bad.reason, field="sentAt") from None
        return messages, BatchDefaults(received_at=received_at, sent_at=sent_at,
                                       context=context, integrations=integrations)

    def _validate(self, raw: bytes, content_encoding: str | None, authorization: str | None,
                  endpoint_type: str | None) -> tuple[list[Event], list[Rejected], list[Rejection]]:
        limit = MAX_BATCH_BYTES if endpoint_type is None else MAX_MESSAGE_BYTES
        payload = decode_body(raw, content_encoding, limit)
        source_id = self.source_for(authorization, payload)
        received_at = datetime.now(UTC)
        events, rejections = self.prepare(payload, source_id, endpoint_type=endpoint_type, received_at=received_at)
        received_us = to_micros(received_at)
        quarantined = [Rejected(source_id, received_us, r.field, r.reason, r.message) for r in rejections]
        return events, quarantined, rejections

    async def handle(self, raw: bytes, *, content_encoding: str | None, authorization: str | None,
                     endpoint_type: str | None) -> IngestResult:
        """One HTTP ingest request; returns only after the accepted events are durable."""
        if endpoint_type is None and len(raw) > OFFLOAD_BYTES:
            # A batch takes milliseconds of CPU to validate: off the event loop, so that reads
            # and small requests are answered in between instead of queueing behind it.
            events, quarantined, rejections = await asyncio.to_thread(
                self._validate, raw, content_encoding, authorization, endpoint_type)
        else:
            events, quarantined, rejections = self._validate(raw, content_encoding, authorization, endpoint_type)
        appended = await self.log.append_async(events, quarantined)
        if endpoint_type is not None and rejections:
            r = rejections[0]
            raise RequestError(r.reason, field=r.field, code="invalid_message")
        return IngestResult(accepted=appended.accepted, duplicates=appended.duplicates, rejected=rejections)
