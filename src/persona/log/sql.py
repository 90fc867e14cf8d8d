"""The event log in SQL, on SQLite (WAL) or PostgreSQL: group-commit writer, concurrent readers.

`seq` only grows and is never reused after a deletion: an AUTOINCREMENT rowid on SQLite,
an identity column on PostgreSQL. Positions must also become visible in order, or a
reader that has seen seq 101 would skip a 100 committed a moment later. SQLite has one
writer, so they do; on PostgreSQL several API nodes append at once, so an append takes a
transaction-level advisory lock before it draws its positions and holds it to the commit.
Duplicates are dropped by the unique index on (source_id, message_id), which makes
deduplication permanent for as long as the event is kept (well past Segment's 7 days).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec

from persona.log.events import Event
from persona.log.store import AppendResult, QuarantinedMessage, Rejected, Scanned
from persona.storage.sql import Connection, Database, Insert, Migration, chunk_size, chunks, where_in

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
    ], postgres=[
        """CREATE TABLE events (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            timestamp BIGINT NOT NULL,
            received_at BIGINT NOT NULL,
            body BYTEA NOT NULL
        )""",
        "CREATE UNIQUE INDEX events_message ON events (source_id, message_id)",
        "CREATE INDEX events_timestamp ON events (timestamp, seq)",
        """CREATE TABLE quarantine (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            field TEXT,
            reason TEXT NOT NULL,
            message BYTEA NOT NULL
        )""",
        "CREATE INDEX quarantine_source ON quarantine (source_id, id)",
    ]),
    Migration(2, "the names of track events seen", [  # what definitions are checked against
        "CREATE TABLE event_names (name TEXT PRIMARY KEY)",
        "INSERT INTO event_names (name) SELECT DISTINCT name FROM events WHERE type = 'track' AND name IS NOT NULL",
    ]),
]

_INSERT = Insert("events", (
    ("source_id", "text"), ("message_id", "text"), ("type", "text"), ("name", "text"), ("user_id", "text"),
    ("anonymous_id", "text"), ("timestamp", "bigint"), ("received_at", "bigint"), ("body", "bytea"),
), "ON CONFLICT DO NOTHING")
_EVENT_NAME = "INSERT INTO event_names (name) VALUES (?) ON CONFLICT DO NOTHING"
_QUARANTINE = "INSERT INTO quarantine (source_id, received_at, field, reason, message) VALUES (?, ?, ?, ?, ?)"
_COLUMNS = "seq, source_id, message_id, type, name, user_id, anonymous_id, timestamp, received_at, body"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _row_to_event(row: tuple[Any, ...], decode: Callable[[bytes], dict[str, Any]] = _decode) -> Event:
    seq, source_id, message_id, kind, name, user_id, anonymous_id, ts, received_at, body = row
    return Event(source_id=source_id, message_id=message_id, type=kind, name=name, user_id=user_id,
                 anonymous_id=anonymous_id, timestamp=ts, received_at=received_at, body=decode(body),
                 seq=seq)


# Positions already handed out: SQLite keeps the AUTOINCREMENT high-water mark even when the
# newest events are deleted; on PostgreSQL the identity sequence never goes back either, but
# it counts positions drawn by rejected duplicates, so the newest stored event is used.
_LAST_SEQ = {
    "sqlite": "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
    "postgres": "SELECT max(seq) FROM events",
}
_APPEND_LOCK = 0x7065_7273_6F6E_6C67  # "personlg": serializes appends from several API nodes


class SQLEventLog:
    """Lives with what is not derived: sources, keys and the quarantine (`log.db`, or the schema)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._last_seq_sql = _LAST_SEQ[db.dialect]
        self._lock_appends = db.dialect == "postgres"
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
        names = sorted({(e.name,) for e in events if e.type == "track" and e.name})

        def write(conn: Connection) -> AppendResult:
            if self._lock_appends:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_APPEND_LOCK,))
            accepted = _INSERT.run(conn, self.db.dialect, rows)
            if names:
                conn.executemany(_EVENT_NAME, names)
            if bad:
                conn.executemany(_QUARANTINE, bad)
            last = conn.execute(self._last_seq_sql).fetchone()
            return AppendResult(accepted, len(rows) - accepted, (last[0] if last else None) or 0)

        return write

    def append(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult:
        result = self.db.write(self._append_fn(events, rejected))
        self._notify(result.last_seq)
        return result

    async def append_async(self, events: Sequence[Event], rejected: Sequence[Rejected] = ()) -> AppendResult:
        result = await asyncio.wrap_future(self.db.submit(self._append_fn(events, rejected)))
        self._notify(result.last_seq)
        return result

    def _notify(self, last_seq: int) -> None:
        with self._grown:
            if last_seq > self._last_seq:
                self._last_seq = last_seq
                self._grown.notify_all()

    def delete(self, seqs: Iterable[int]) -> int:
        ids = list(seqs)

        def write(conn: Connection) -> int:
            deleted = 0
            for chunk in chunks(ids, chunk_size(self.db.dialect)):
                where, params = where_in(self.db.dialect, "seq", chunk)
                deleted += conn.execute(f"DELETE FROM events WHERE {where}", params).rowcount
            return deleted

        return self.db.write(write)

    # -- reading -------------------------------------------------------------------------------
    def read(self, after_seq: int, limit: int, decode: Callable[[bytes], dict[str, Any]] | None = None
             ) -> list[Event]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [_row_to_event(r, decode or _decode) for r in rows]

    def scan(self, after_seq: int, through_seq: int, limit: int) -> list[Scanned]:
        rows = self.db.query("SELECT seq, source_id, type, name, timestamp, body FROM events"
                             " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?", (after_seq, through_seq, limit))
        return rows  # type: ignore[return-value]

    def read_range(self, start_us: int, end_us: int, batch: int = 10_000) -> Iterator[Event]:
        cursor = (start_us, -1)
        while True:
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM events WHERE (timestamp, seq) > (?, ?) AND timestamp < ?"
                " ORDER BY timestamp, seq LIMIT ?", (*cursor, end_us, batch))
            if not rows:
                return
            for row in rows:
                yield _row_to_event(row)
            cursor = (rows[-1][7], rows[-1][0])

    def get(self, seqs: Sequence[int], decode: Callable[[bytes], dict[str, Any]] | None = None) -> list[Event]:
        out: list[Event] = []
        for chunk in chunks(list(seqs), chunk_size(self.db.dialect)):
            where, params = where_in(self.db.dialect, "seq", chunk)
            rows = self.db.query(f"SELECT {_COLUMNS} FROM events WHERE {where}", params)
            out.extend(_row_to_event(r, decode or _decode) for r in rows)
        return out

    def last_seq(self) -> int:
        return self._read_last_seq()

    def _read_last_seq(self) -> int:
        row = self.db.query_one(self._last_seq_sql)
        return (row[0] if row else None) or 0

    def event_names(self) -> set[str]:
        """The name of every track event the log has held."""
        return {r[0] for r in self.db.query("SELECT name FROM event_names")}

    def count(self) -> int:
        return self._one("SELECT count(*) FROM events")

    def quarantine_count(self) -> int:
        return self._one("SELECT count(*) FROM quarantine")

    def _one(self, sql: str) -> int:
        row = self.db.query_one(sql)
        assert row is not None
        return int(row[0])

    def quarantined(self, limit: int = 100, source_id: str | None = None) -> list[QuarantinedMessage]:
        sql = "SELECT id, source_id, received_at, field, reason, message FROM quarantine"
        args: tuple[Any, ...] = ()
        if source_id is not None:
            sql += " WHERE source_id = ?"
            args = (source_id,)
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [QuarantinedMessage(r[0], r[1], r[2], r[3], r[4], _decode_rejected(r[5])) for r in rows]

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._grown:
            while self._last_seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Another process may have appended (an import, another API node): look.
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
