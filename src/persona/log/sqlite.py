"""The event log on SQLite (WAL): one writer thread with group commit, readers per thread.

`seq` is an AUTOINCREMENT rowid, so positions are strictly increasing in commit order and
never reused after a deletion. Duplicates are dropped by the unique index on
(source_id, message_id), which makes deduplication permanent for as long as the event is
kept (well past the 7 days Segment promises).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec

from persona.log.events import Event
from persona.log.store import AppendResult, QuarantinedMessage, Rejected
from persona.storage.sqlite import Database, Migration

MIGRATIONS = [
    Migration(1, "event log", [
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE UNIQUE INDEX events_message ON events (source_id, message_id)",
        "CREATE INDEX events_timestamp ON events (timestamp)",
        """CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            field TEXT,
            reason TEXT NOT NULL,
            message BLOB NOT NULL
        )""",
        "CREATE INDEX quarantine_source ON quarantine (source_id, id)",
    ]),
]

_INSERT = (
    "INSERT OR IGNORE INTO events (source_id, message_id, type, name, user_id, anonymous_id,"
    " timestamp, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_QUARANTINE = "INSERT INTO quarantine (source_id, received_at, field, reason, message) VALUES (?, ?, ?, ?, ?)"
_COLUMNS = "seq, source_id, message_id, type, name, user_id, anonymous_id, timestamp, received_at, body"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _row_to_event(row: tuple[Any, ...], decode: Callable[[bytes], dict[str, Any]] = _decode) -> Event:
    seq, source_id, message_id, kind, name, user_id, anonymous_id, ts, received_at, body = row
    return Event(source_id=source_id, message_id=message_id, type=kind, name=name, user_id=user_id,
                 anonymous_id=anonymous_id, timestamp=ts, received_at=received_at, body=decode(body),
                 seq=seq)


class SQLiteEventLog:
    """Lives in the source-of-truth database file (`log.db`), beside sources and keys."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writer = db.writer
        self.readers = db.readers
        self._grown = threading.Condition()
        self._last_seq = self._read_last_seq()

    # -- writing -------------------------------------------------------------------------------
    def _append_fn(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()):
        bad = [(r.source_id, r.received_at, r.field, r.reason, _encode_any(r.message)) for r in rejected]
        rows = [
            (e.source_id, e.message_id, e.type, e.name, e.user_id, e.anonymous_id, e.timestamp,
             e.received_at, e.encoded if e.encoded is not None else _encode(e.body))
            for e in events
        ]

        def write(conn: sqlite3.Connection) -> AppendResult:
            before = conn.total_changes
            conn.executemany(_INSERT, rows)
            accepted = conn.total_changes - before
            if bad:
                conn.executemany(_QUARANTINE, bad)
            last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            return AppendResult(accepted, len(rows) - accepted, last[0] if last else 0)

        return write

    def append(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult:
        result = self.writer.run(self._append_fn(events, rejected))
        self._notify(result.last_seq)
        return result

    async def append_async(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult:
        result = await asyncio.wrap_future(self.writer.submit(self._append_fn(events, rejected)))
        self._notify(result.last_seq)
        return result

    def _notify(self, last_seq: int) -> None:
        with self._grown:
            if last_seq > self._last_seq:
                self._last_seq = last_seq
                self._grown.notify_all()

    def delete(self, seqs: Iterable[int]) -> int:
        ids = list(seqs)

        def write(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            for chunk in _chunks(ids, 500):
                conn.execute(f"DELETE FROM events WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
            return conn.total_changes - before

        return self.writer.run(write)

    # -- reading -------------------------------------------------------------------------------
    def read(self, after_seq: int, limit: int, decode: Callable[[bytes], dict[str, Any]] | None = None
             ) -> list[Event]:
        rows = self.readers.get().execute(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [_row_to_event(r, decode or _decode) for r in rows]

    def read_range(self, start_us: int, end_us: int, batch: int = 10_000) -> Iterator[Event]:
        conn = self.readers.get()
        cursor = (start_us, -1)
        while True:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE (timestamp, seq) > (?, ?) AND timestamp < ?"
                " ORDER BY timestamp, seq LIMIT ?", (*cursor, end_us, batch)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_event(row)
            cursor = (rows[-1][7], rows[-1][0])

    def get(self, seqs: Sequence[int]) -> list[Event]:
        conn = self.readers.get()
        out: list[Event] = []
        for chunk in _chunks(list(seqs), 500):
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            out.extend(_row_to_event(r) for r in rows)
        return out

    def last_seq(self) -> int:
        return self._read_last_seq()

    def _read_last_seq(self) -> int:
        row = self.readers.get().execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def count(self) -> int:
        return self.readers.get().execute("SELECT count(*) FROM events").fetchone()[0]

    def quarantine_count(self) -> int:
        return self.readers.get().execute("SELECT count(*) FROM quarantine").fetchone()[0]

    def quarantined(self, limit: int = 100, source_id: str | None = None) -> list[QuarantinedMessage]:
        sql = "SELECT id, source_id, received_at, field, reason, message FROM quarantine"
        args: tuple[Any, ...] = ()
        if source_id is not None:
            sql += " WHERE source_id = ?"
            args = (source_id,)
        rows = self.readers.get().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [QuarantinedMessage(r[0], r[1], r[2], r[3], r[4], _decode_rejected(r[5])) for r in rows]

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._grown:
            while self._last_seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Another process may have appended (CLI import): look at the file.
                    self._last_seq = max(self._last_seq, self._read_last_seq())
                    return self._last_seq > after_seq
                self._grown.wait(remaining)
        return True



def _decode_rejected(blob: bytes) -> Any:
    """A quarantined message as JSON, or as text when it is too deep to decode here."""
    try:
        return _decode(blob)
    except RecursionError:
        return blob.decode("utf-8", "replace")


def _encode_any(value: Any) -> bytes:
    try:
        return _encode(value)
    except (TypeError, ValueError, OverflowError):
        return _encode(repr(value)[:32_768])


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
