"""Derived state on SQLite, in its own file (`state.db`) so processing never blocks ingest."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future

import msgspec

from persona.profiles.profile import Profile
from persona.profiles.store import MergeRecord, StateChanges, StateCounts
from persona.storage.sqlite import Database, Migration

MIGRATIONS = [
    Migration(1, "profiles and identity graph", [
        """CREATE TABLE profiles (
            id TEXT PRIMARY KEY,
            merged_into TEXT,
            created_seq INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
        "CREATE TABLE identities (key TEXT PRIMARY KEY, profile_id TEXT NOT NULL) WITHOUT ROWID",
        "CREATE INDEX identities_profile ON identities (profile_id)",
        """CREATE TABLE timeline (
            profile_id TEXT NOT NULL, timestamp INTEGER NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (profile_id, timestamp, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE merges (
            id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL,
            survivor TEXT NOT NULL, merged TEXT NOT NULL, reason TEXT NOT NULL
        )""",
        "CREATE INDEX merges_survivor ON merges (survivor)",
        "CREATE TABLE dropped_links (seq INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
        " reason TEXT NOT NULL)",
        "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    ]),
    Migration(2, "processor errors", [
        "CREATE TABLE processor_errors (name TEXT PRIMARY KEY, error TEXT NOT NULL, at REAL NOT NULL)",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode_profile = msgspec.json.Decoder(Profile).decode
_TABLES = ("profiles", "identities", "timeline", "merges", "dropped_links", "checkpoints", "processor_errors")


class SQLiteStateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def checkpoint(self, name: str) -> int:
        row = self.db.read().execute("SELECT seq FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def identities(self, keys: set[str]) -> dict[str, str]:
        conn = self.db.read()
        found: dict[str, str] = {}
        for chunk in _chunks(list(keys)):
            found.update(conn.execute(
                f"SELECT key, profile_id FROM identities WHERE key IN ({_marks(chunk)})", chunk).fetchall())
        return found

    def profiles(self, ids: set[str]) -> dict[str, Profile]:
        conn = self.db.read()
        found: dict[str, Profile] = {}
        for chunk in _chunks(list(ids)):
            for pid, data in conn.execute(f"SELECT id, data FROM profiles WHERE id IN ({_marks(chunk)})", chunk):
                found[pid] = _decode_profile(data)
        return found

    def commit(self, name: str, changes: StateChanges) -> None:
        self.commit_async(name, changes).result()

    def commit_async(self, name: str, changes: StateChanges) -> Future[None]:
        """Encode now (a snapshot of the profiles), write on the writer thread."""
        profile_rows = [(p.id, p.merged_into, p.created_seq, p.last_seen, _encode(p))
                        for p in changes.profiles.values()]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO profiles VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " merged_into = excluded.merged_into, last_seen = excluded.last_seen, data = excluded.data",
                profile_rows)
            conn.executemany(
                "INSERT INTO identities VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET profile_id = excluded.profile_id",
                list(changes.identities.items()))
            conn.executemany("INSERT OR IGNORE INTO timeline VALUES (?, ?, ?)", changes.timeline)
            for merged, survivor in changes.repoints:
                conn.execute("UPDATE timeline SET profile_id = ? WHERE profile_id = ?", (survivor, merged))
            conn.executemany("INSERT INTO merges (seq, at, survivor, merged, reason) VALUES (?, ?, ?, ?, ?)",
                             [(m.seq, m.at, m.survivor, m.merged, m.reason) for m in changes.merges])
            conn.executemany("INSERT INTO dropped_links VALUES (?, ?, ?, ?)",
                             [(d.seq, d.kind, d.value, d.reason) for d in changes.dropped])
            conn.execute("INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                         (name, changes.checkpoint))

        return self.db.writer.submit(write)

    def record_error(self, name: str, error: str | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if error is None:
                conn.execute("DELETE FROM processor_errors WHERE name = ?", (name,))
            else:
                conn.execute("INSERT INTO processor_errors VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                             " SET error = excluded.error, at = excluded.at", (name, error, time.time()))

        self.db.write(write)

    def last_error(self, name: str) -> tuple[str, float] | None:
        row = self.db.read().execute("SELECT error, at FROM processor_errors WHERE name = ?", (name,)).fetchone()
        return (row[0], row[1]) if row else None

    def profile(self, profile_id: str) -> Profile | None:
        conn = self.db.read()
        for _ in range(64):  # merges are repointed eagerly; a long chain would be a bug
            row = conn.execute("SELECT merged_into, data FROM profiles WHERE id = ?", (profile_id,)).fetchone()
            if row is None:
                return None
            if row[0] is None:
                return _decode_profile(row[1])
            profile_id = row[0]
        return None

    def owner(self, kind: str, value: str) -> str | None:
        row = self.db.read().execute("SELECT profile_id FROM identities WHERE key = ?", (f"{kind}:{value}",)).fetchone()
        return row[0] if row else None

    def timeline(self, profile_id: str, before: tuple[int, int] | None, limit: int) -> list[tuple[int, int]]:
        conn = self.db.read()
        if before is None:
            rows = conn.execute("SELECT timestamp, seq FROM timeline WHERE profile_id = ?"
                                " ORDER BY timestamp DESC, seq DESC LIMIT ?", (profile_id, limit))
        else:
            rows = conn.execute("SELECT timestamp, seq FROM timeline WHERE profile_id = ? AND (timestamp, seq) < (?, ?)"
                                " ORDER BY timestamp DESC, seq DESC LIMIT ?", (profile_id, *before, limit))
        return [(r[0], r[1]) for r in rows]

    def merges(self, profile_id: str) -> list[MergeRecord]:
        rows = self.db.read().execute(
            "SELECT seq, at, survivor, merged, reason FROM merges WHERE survivor = ? ORDER BY seq", (profile_id,))
        return [MergeRecord(*r) for r in rows]

    def all_profiles(self) -> list[Profile]:
        rows = self.db.read().execute("SELECT data FROM profiles WHERE merged_into IS NULL ORDER BY id")
        return [_decode_profile(r[0]) for r in rows]

    def list_profiles(self, after_id: str | None, limit: int) -> list[Profile]:
        rows = self.db.read().execute(
            "SELECT data FROM profiles WHERE merged_into IS NULL AND id > ? ORDER BY id LIMIT ?",
            (after_id or "", limit))
        return [_decode_profile(r[0]) for r in rows]

    def counts(self) -> StateCounts:
        conn = self.db.read()

        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        return StateCounts(
            profiles=one("SELECT count(*) FROM profiles WHERE merged_into IS NULL"),
            merged_profiles=one("SELECT count(*) FROM profiles WHERE merged_into IS NOT NULL"),
            identities=one("SELECT count(*) FROM identities"),
            merges=one("SELECT count(*) FROM merges"),
            dropped_links=one("SELECT count(*) FROM dropped_links"),
        )

    def reset(self) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")

        self.db.write(write)


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
