"""The event log's contract: what every backend (SQLite now, PostgreSQL next) provides."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from persona.log.events import Event

# (seq, source_id, type, name, timestamp, body as stored): an event as a pass over the whole log reads it
Scanned = tuple[int, str, str, str | None, int, bytes]


@dataclass(frozen=True)
class AppendResult:
    accepted: int    # newly stored
    duplicates: int  # already in the log under the same (source, messageId)
    last_seq: int    # highest position in the log after the append


@dataclass(frozen=True)
class QuarantinedMessage:
    id: int
    source_id: str
    received_at: int
    field: str | None
    reason: str
    message: Any


@dataclass(frozen=True)
class Rejected:
    """A message ingest refused, kept in the quarantine with the reason."""

    source_id: str
    received_at: int
    field: str | None
    reason: str
    message: Any


class EventLog(Protocol):
    """Append-only, ordered, deduplicated by (source, messageId)."""

    def append(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult:
        """Store new events and quarantine rejects in one transaction; durable on return."""
        ...

    async def append_async(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult: ...

    def read(self, after_seq: int, limit: int, decode: Callable[[bytes], dict[str, Any]] | None = None
             ) -> list[Event]:
        """Events with seq > after_seq in log order: the stream the processor consumes.

        `decode` turns a stored body into the dict put in `Event.body` (default: all of it)."""
        ...

    def scan(self, after_seq: int, through_seq: int, limit: int) -> list[Scanned]:
        """Events in (after_seq, through_seq] in log order, as bare rows with the body undecoded:
        for batch jobs that read millions and decode only what they need."""
        ...

    def read_range(self, start_us: int, end_us: int, batch: int = 10_000) -> Iterator[Event]:
        """Events whose timestamp is in [start, end), in timestamp order: for batch jobs."""
        ...

    def get(self, seqs: Sequence[int], decode: Callable[[bytes], dict[str, Any]] | None = None) -> list[Event]:
        """The events at these positions (erased ones are missing), in no particular order."""
        ...

    def last_seq(self) -> int: ...

    def count(self) -> int: ...

    def event_names(self) -> set[str]:
        """The name of every track event the log has held."""
        ...

    def delete(self, seqs: Iterable[int]) -> int:
        """Remove events for erasure; positions are never reused."""
        ...

    def quarantined(self, limit: int = 100, source_id: str | None = None) -> list[QuarantinedMessage]: ...

    def quarantine_count(self) -> int: ...

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        """Block until the log grows past `after_seq` (or timeout); True if it did."""
        ...
