"""Where the audience stage keeps its work: per-profile audience state, memberships, sizes.

It is derived state (a replay rebuilds it), so it lives in the state store beside the
profiles, and commits move the stage's checkpoint compare-and-set like every stage's.

- `audience_profiles`: per profile (root id) its `AudienceState` (window inputs, computed
  traits, transition counters) and `next_check`, the moment time alone changes something;
- `memberships`: the current members of each segment, with when they entered;
- `segment_sizes`: each segment's member count now, and `segment_size_history` over time;
- `audience_plan`: the fingerprint and inputs of the definitions the state was built for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

import msgspec

from persona.jobs.store import forget_changes
from persona.profiles.sql import move_checkpoints
from persona.segments.live import AudienceState
from persona.storage.sql import Connection, Database, Insert, Migration, chunk_size, chunks, where_in

MIGRATIONS = [
    Migration(100, "audiences: audience state, memberships, sizes", [
        "CREATE TABLE audience_profiles (profile_id TEXT PRIMARY KEY, data BLOB NOT NULL, next_check INTEGER)",
        "CREATE INDEX audience_profiles_due ON audience_profiles (next_check)",
        "CREATE TABLE memberships (segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, since INTEGER NOT NULL,"
        " PRIMARY KEY (segment_id, profile_id)) WITHOUT ROWID",
        "CREATE INDEX memberships_profile ON memberships (profile_id)",
        "CREATE TABLE segment_sizes (segment_id TEXT PRIMARY KEY, size INTEGER NOT NULL)",
        "CREATE TABLE segment_size_history (segment_id TEXT NOT NULL, at INTEGER NOT NULL, size INTEGER NOT NULL,"
        " PRIMARY KEY (segment_id, at))",
        "CREATE TABLE audience_plan (id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL,"
        " inputs TEXT NOT NULL)",
    ], postgres=[
        "CREATE TABLE audience_profiles (profile_id TEXT PRIMARY KEY, data BYTEA NOT NULL, next_check BIGINT)",
        "CREATE INDEX audience_profiles_due ON audience_profiles (next_check)",
        "CREATE TABLE memberships (segment_id TEXT NOT NULL, profile_id TEXT NOT NULL, since BIGINT NOT NULL,"
        " PRIMARY KEY (segment_id, profile_id))",
        "CREATE INDEX memberships_profile ON memberships (profile_id)",
        "CREATE TABLE segment_sizes (segment_id TEXT PRIMARY KEY, size BIGINT NOT NULL)",
        "CREATE TABLE segment_size_history (segment_id TEXT NOT NULL, at BIGINT NOT NULL, size BIGINT NOT NULL,"
        " PRIMARY KEY (segment_id, at))",
        "CREATE TABLE audience_plan (id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL,"
        " inputs TEXT NOT NULL)",
    ]),
]

TABLES = ("audience_profiles", "memberships", "segment_sizes", "segment_size_history", "audience_plan")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(AudienceState).decode
_STATES = Insert("audience_profiles", (("profile_id", "text"), ("data", "bytea"), ("next_check", "bigint")),
                 "ON CONFLICT (profile_id) DO UPDATE SET data = excluded.data, next_check = excluded.next_check")
_JOINED = Insert("memberships", (("segment_id", "text"), ("profile_id", "text"), ("since", "bigint")),
                 "ON CONFLICT (segment_id, profile_id) DO UPDATE SET since = excluded.since")


@dataclass
class AudienceChanges:
    states: dict[str, AudienceState] = field(default_factory=dict)  # by profile id
    removed: set[str] = field(default_factory=set)                 # profiles merged away
    joined: dict[tuple[str, str], int] = field(default_factory=dict)  # (segment, profile) -> since
    left: set[tuple[str, str]] = field(default_factory=set)
    dropped_segments: set[str] = field(default_factory=set)        # no longer defined: forget their members
    plan: tuple[str, list[str]] | None = None                      # (fingerprint, input keys) now built for
    history_at: int | None = None                                  # record every segment's size at this time
    checkpoint: tuple[int, int] | None = None                      # (read, new) of the stage's checkpoint
    score_changes: list[int] = field(default_factory=list)         # queued model trait changes evaluated
    scores_read: frozenset[str] | None = None                      # drop queued changes of other traits

    def join(self, segment_id: str, profile_id: str, since: int) -> None:
        self.left.discard((segment_id, profile_id))
        self.joined[(segment_id, profile_id)] = since

    def remove(self, profile_id: str) -> None:
        """A profile merged away: forget it, and whatever this commit was to change about it."""
        self.states.pop(profile_id, None)
        for key in [k for k in self.joined if k[1] == profile_id]:
            del self.joined[key]
        self.left = {k for k in self.left if k[1] != profile_id}
        self.removed.add(profile_id)

    def leave(self, segment_id: str, profile_id: str) -> None:
        self.joined.pop((segment_id, profile_id), None)
        self.left.add((segment_id, profile_id))


class AudienceStore:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name  # the checkpoint's

    def states(self, ids: Iterable[str]) -> dict[str, AudienceState]:
        wanted = list(ids)
        out: dict[str, AudienceState] = {}
        for chunk in chunks(wanted, chunk_size(self.db.dialect)):
            clause, params = where_in(self.db.dialect, "profile_id", chunk)
            for pid, data in self.db.query(f"SELECT profile_id, data FROM audience_profiles WHERE {clause}", params):
                out[pid] = _decode(data)
        return out

    def due(self, now: int, limit: int) -> list[str]:
        """Profiles whose next check has come (they leave this list when their evaluation commits)."""
        rows = self.db.query("SELECT profile_id FROM audience_profiles WHERE next_check <= ? LIMIT ?",
                             (now, limit))
        return [r[0] for r in rows]

    def profile_ids(self, after: str, limit: int) -> list[str]:
        rows = self.db.query("SELECT profile_id FROM audience_profiles WHERE profile_id > ? ORDER BY profile_id"
                             " LIMIT ?", (after, limit))
        return [r[0] for r in rows]

    def plan(self) -> tuple[str, set[str]] | None:
        row = self.db.query_one("SELECT fingerprint, inputs FROM audience_plan")
        return (row[0], set(msgspec.json.decode(row[1]))) if row else None

    def memberships(self, profile_id: str) -> dict[str, int]:
        """segment -> since (µs), for one profile."""
        rows = self.db.query("SELECT segment_id, since FROM memberships WHERE profile_id = ? ORDER BY segment_id",
                             (profile_id,))
        return {r[0]: r[1] for r in rows}

    def members(self, segment_id: str, after: str, limit: int) -> list[tuple[str, int]]:
        rows = self.db.query("SELECT profile_id, since FROM memberships WHERE segment_id = ? AND profile_id > ?"
                             " ORDER BY profile_id LIMIT ?", (segment_id, after, limit))
        return [(r[0], r[1]) for r in rows]

    def sizes(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.query("SELECT segment_id, size FROM segment_sizes")}

    def size_history(self, segment_id: str, since: int) -> list[tuple[int, int]]:
        rows = self.db.query("SELECT at, size FROM segment_size_history WHERE segment_id = ? AND at >= ?"
                             " ORDER BY at", (segment_id, since))
        return [(r[0], r[1]) for r in rows]

    def overlap(self, a: str, b: str) -> int:
        row = self.db.query_one("SELECT count(*) FROM memberships x JOIN memberships y ON y.profile_id = x.profile_id"
                                " WHERE x.segment_id = ? AND y.segment_id = ?", (a, b))
        return int(row[0]) if row else 0

    def commit(self, changes: AudienceChanges) -> Future[None]:
        rows = [(pid, _encode(state), state.next_check) for pid, state in changes.states.items()]
        commit_id = uuid.uuid4().hex
        checkpoints = {self.name: changes.checkpoint} if changes.checkpoint is not None else {}
        dialect = self.db.dialect

        def write(conn: Connection) -> None:
            if checkpoints and not move_checkpoints(conn, checkpoints, commit_id):
                return  # a retry of a commit that landed
            _STATES.run(conn, dialect, rows)
            for pid in changes.removed:
                conn.execute("DELETE FROM audience_profiles WHERE profile_id = ?", (pid,))
                for (segment_id,) in conn.execute("SELECT segment_id FROM memberships WHERE profile_id = ?",
                                                  (pid,)).fetchall():
                    _resize(conn, segment_id, -1)
                conn.execute("DELETE FROM memberships WHERE profile_id = ?", (pid,))
            for segment_id, delta in _size_changes(conn, dialect, changes).items():
                _resize(conn, segment_id, delta)
            _JOINED.run(conn, dialect, [(s, p, since) for (s, p), since in changes.joined.items()])
            conn.executemany("DELETE FROM memberships WHERE segment_id = ? AND profile_id = ?", list(changes.left))
            for segment_id in changes.dropped_segments:
                conn.execute("DELETE FROM memberships WHERE segment_id = ?", (segment_id,))
                conn.execute("DELETE FROM segment_sizes WHERE segment_id = ?", (segment_id,))
            if changes.plan is not None:
                fingerprint, inputs = changes.plan
                conn.execute("INSERT INTO audience_plan VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
                             " SET fingerprint = excluded.fingerprint, inputs = excluded.inputs",
                             (fingerprint, msgspec.json.encode(sorted(inputs)).decode()))
            forget_changes(conn, dialect, changes.score_changes, changes.scores_read)
            if changes.history_at is not None:
                conn.execute("INSERT INTO segment_size_history SELECT segment_id, ?, size FROM segment_sizes"
                             " WHERE true ON CONFLICT DO NOTHING", (changes.history_at,))

        return self.db.submit(write)

    def reset(self) -> None:
        def write(conn: Connection) -> None:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")

        self.db.write(write)


def _size_changes(conn: Connection, dialect: str, changes: AudienceChanges) -> dict[str, int]:
    """How each segment's size moves, from the rows the joins add and the leaves delete: a size
    is what the memberships hold, whatever the stage believed they held."""
    touched = sorted({p for _, p in changes.joined} | {p for _, p in changes.left})
    held: set[tuple[str, str]] = set()
    for chunk in chunks(touched, chunk_size(dialect)):
        clause, params = where_in(dialect, "profile_id", chunk)
        held.update((s, p) for s, p in conn.execute(
            f"SELECT segment_id, profile_id FROM memberships WHERE {clause}", params).fetchall())
    deltas: dict[str, int] = {}
    for key in changes.joined.keys() - held:
        deltas[key[0]] = deltas.get(key[0], 0) + 1
    for key in changes.left & held:
        deltas[key[0]] = deltas.get(key[0], 0) - 1
    return {segment_id: delta for segment_id, delta in deltas.items() if delta}


def _resize(conn: Connection, segment_id: str, delta: int) -> None:
    conn.execute("INSERT INTO segment_sizes VALUES (?, ?) ON CONFLICT (segment_id) DO UPDATE"
                 " SET size = segment_sizes.size + excluded.size", (segment_id, delta))
