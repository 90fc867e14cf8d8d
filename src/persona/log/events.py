"""The event record as it is stored in and read back from the log."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})


class Event(msgspec.Struct, frozen=True):
    """One accepted Segment message plus what persona needs to index it.

    `body` is the normalized Segment message (UTC ISO timestamps, batch context merged,
    `writeKey` removed); the other fields are copies of it kept as columns so the log can
    be queried without decoding JSON. Times are integer microseconds since the epoch.
    Fresh from the HTTP API, `body`'s object fields may still be raw JSON (`msgspec.Raw`,
    see `persona.ingest.messages`); events read back from the log are fully decoded.
    """

    source_id: str
    message_id: str
    type: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: int
    received_at: int
    body: dict[str, Any]
    seq: int = 0  # position in the log, assigned on append
    encoded: bytes | None = None  # `body` as JSON when already at hand, so it is encoded once

    @property
    def when(self) -> datetime:
        return from_micros(self.timestamp)


def to_micros(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_micros() -> int:
    """Now, in µs since the epoch (UTC)."""
    return time.time_ns() // 1000


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def iso(us: int) -> str:
    """UTC ISO 8601 with milliseconds and a Z, the format Segment uses."""
    d = from_micros(us)
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}."
            f"{d.microsecond // 1000:03d}Z")


def is_canonical_iso(text: str) -> bool:
    """Already in `iso()`'s form (YYYY-MM-DDTHH:MM:SS.mmmZ), so parsing it back changes nothing."""
    return len(text) == 24 and text[-1] == "Z" and text[10] == "T" and text[19] == "."


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
