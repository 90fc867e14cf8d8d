"""What scheduled jobs keep in the state store: the model traits they write, and their runs.

- `model_traits`: traits computed by a job over all customers (RFM scores, the persona), as
  opposed to traits set by events. Each job's traits are replaced wholesale by its run, in
  one transaction, so a profile never shows half of one run and half of another, and a
  customer who no longer qualifies loses the trait. Values are JSON. They are keyed by the
  profile (root) id the run saw: a profile merged away since keeps its traits under its
  old id until the next run.
- `model_trait_changes`: each (profile, trait) whose value a run changed, added or dropped,
  queued in the run's own transaction for the audience stage, which re-evaluates the
  segments reading that trait and deletes the rows in its own commit. So a segment on a
  score follows the score, and a crash in between re-evaluates rather than misses.
- `scheduled_jobs`: per job, when it last started and on which runner, how it ended. The
  start is what runners claim compare-and-set (see `jobs/scheduler.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.log.events import now_micros as now_us
from persona.storage.sql import Connection, Database, Insert, Migration, chunk_size, chunks, where_in

MIGRATIONS = [
    Migration(300, "scheduled jobs and model traits", [
        "CREATE TABLE model_traits (profile_id TEXT NOT NULL, name TEXT NOT NULL, job TEXT NOT NULL,"
        " value TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (profile_id, name)) WITHOUT ROWID",
        "CREATE INDEX model_traits_job ON model_traits (job)",
        "CREATE TABLE scheduled_jobs (name TEXT PRIMARY KEY, started_at INTEGER NOT NULL, runner TEXT,"
        " finished_at INTEGER, duration REAL, summary TEXT, error TEXT)",
    ], postgres=[
        "CREATE TABLE model_traits (profile_id TEXT NOT NULL, name TEXT NOT NULL, job TEXT NOT NULL,"
        " value TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (profile_id, name))",
        "CREATE INDEX model_traits_job ON model_traits (job)",
        "CREATE TABLE scheduled_jobs (name TEXT PRIMARY KEY, started_at BIGINT NOT NULL, runner TEXT,"
        " finished_at BIGINT, duration DOUBLE PRECISION, summary TEXT, error TEXT)",
    ]),
    Migration(310, "model trait changes the audience stage has yet to evaluate", [
        "CREATE TABLE model_trait_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, profile_id TEXT NOT NULL,"
        " name TEXT NOT NULL)",
    ], postgres=[
        "CREATE TABLE model_trait_changes (id BIGSERIAL PRIMARY KEY, profile_id TEXT NOT NULL, name TEXT NOT NULL)",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_TRAITS = Insert("model_traits", (("profile_id", "text"), ("name", "text"), ("job", "text"), ("value", "text"),
                                  ("updated_at", "bigint")),
                 "ON CONFLICT (profile_id, name) DO UPDATE SET job = excluded.job, value = excluded.value,"
                 " updated_at = excluded.updated_at")
_CHANGED = Insert("model_trait_changes", (("profile_id", "text"), ("name", "text")))


class ModelTraitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def replace(self, job: str, traits: dict[str, dict[str, Any]], updated_at: int | None = None) -> int:
        """Make `traits` (profile id -> name -> value) all that `job` has written, and queue the
        values that changed for the audience stage; returns rows written."""
        at = now_us() if updated_at is None else updated_at
        new = {(pid, name): _encode(value).decode() for pid, values in traits.items() for name, value in values.items()}
        rows = [(pid, name, job, value, at) for (pid, name), value in new.items()]
        dialect = self.db.dialect

        def write(conn: Connection) -> int:  # idempotent: a retry finds nothing changed to queue
            old = {(pid, name): value for pid, name, value in conn.execute(
                "SELECT profile_id, name, value FROM model_traits WHERE job = ?", (job,)).fetchall()}
            changed = [key for key in old.keys() | new.keys() if old.get(key) != new.get(key)]
            conn.execute("DELETE FROM model_traits WHERE job = ?", (job,))
            for insert, items in ((_TRAITS, rows), (_CHANGED, changed)):
                for start in range(0, len(items), 50_000):
                    insert.run(conn, dialect, items[start:start + 50_000])
            return len(rows)

        return int(self.db.write(write))

    def of_profile(self, profile_id: str) -> dict[str, Any]:
        rows = self.db.query("SELECT name, value FROM model_traits WHERE profile_id = ? ORDER BY name", (profile_id,))
        return {name: _decode(value) for name, value in rows}

    def of_profiles(self, profile_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """profile id -> its model traits, for those that have any."""
        out: dict[str, dict[str, Any]] = {}
        wanted = list(profile_ids)
        for chunk in chunks(wanted, chunk_size(self.db.dialect)):
            clause, params = where_in(self.db.dialect, "profile_id", chunk)
            for pid, name, value in self.db.query(
                    f"SELECT profile_id, name, value FROM model_traits WHERE {clause} ORDER BY name", params):
                out.setdefault(pid, {})[name] = _decode(value)
        return out

    def values(self, name: str) -> dict[str, Any]:
        """profile id -> the value of one trait, for every profile that has it."""
        rows = self.db.query("SELECT profile_id, value FROM model_traits WHERE name = ?", (name,))
        return {pid: _decode(value) for pid, value in rows}

    def changes(self, limit: int) -> list[tuple[int, str, str]]:
        """The oldest queued changes: (id, profile id, trait name)."""
        rows = self.db.query("SELECT id, profile_id, name FROM model_trait_changes ORDER BY id LIMIT ?", (limit,))
        return [(r[0], r[1], r[2]) for r in rows]

    def count(self, job: str) -> int:
        row = self.db.query_one("SELECT count(DISTINCT profile_id) FROM model_traits WHERE job = ?", (job,))
        return int(row[0]) if row else 0

    def reset(self) -> None:
        def write(conn: Connection) -> None:
            conn.execute("DELETE FROM model_traits")
            conn.execute("DELETE FROM model_trait_changes")

        self.db.write(write)


def forget_changes(conn: Connection, dialect: str, ids: list[int], read: frozenset[str] | None = None) -> None:
    """Delete queued changes once evaluated, in the transaction that commits their evaluation;
    with `read`, also every change of a trait not in it (no segment reads it: nothing to do)."""
    for chunk in chunks(ids, chunk_size(dialect)):
        clause, params = where_in(dialect, "id", chunk)
        conn.execute(f"DELETE FROM model_trait_changes WHERE {clause}", params)
    if read is not None:
        clause, params = where_in(dialect, "name", sorted(read)) if read else ("false", [])
        conn.execute(f"DELETE FROM model_trait_changes WHERE NOT ({clause})", params)


@dataclass(frozen=True)
class JobRecord:
    name: str
    started_at: int          # µs; the claim runners compare-and-set
    runner: str | None
    finished_at: int | None  # None while running (or if the runner died)
    duration: float | None   # seconds
    summary: str | None
    error: str | None


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> JobRecord | None:
        row = self.db.query_one("SELECT name, started_at, runner, finished_at, duration, summary, error"
                                " FROM scheduled_jobs WHERE name = ?", (name,))
        return JobRecord(*row) if row else None

    def all(self) -> dict[str, JobRecord]:
        rows = self.db.query("SELECT name, started_at, runner, finished_at, duration, summary, error"
                             " FROM scheduled_jobs ORDER BY name")
        return {r[0]: JobRecord(*r) for r in rows}

    def claim(self, name: str, seen: int | None, runner: str, at: int) -> bool:
        """Mark the job started by `runner` if its start is still `seen` (None: it never ran).

        Compare-and-set, so of runners that saw the job due at once exactly one gets it."""
        def write(conn: Connection) -> bool:
            if seen is None:
                claimed = conn.execute("INSERT INTO scheduled_jobs (name, started_at, runner) VALUES (?, ?, ?)"
                                       " ON CONFLICT DO NOTHING", (name, at, runner)).rowcount
            else:
                claimed = conn.execute("UPDATE scheduled_jobs SET started_at = ?, runner = ?, finished_at = NULL"
                                       " WHERE name = ? AND started_at = ?", (at, runner, name, seen)).rowcount
            if claimed:
                return True
            # Nothing changed: taken by someone else, or this very claim landed and is retried.
            row = conn.execute("SELECT started_at, runner FROM scheduled_jobs WHERE name = ?", (name,)).fetchone()
            return row is not None and tuple(row) == (at, runner)

        return bool(self.db.write(write))

    def finish(self, name: str, started_at: int, *, at: int, duration: float, summary: str | None,
               error: str | None) -> None:
        """Record how the run that started at `started_at` ended (unless a newer run has started)."""
        self.db.write(lambda conn: conn.execute(
            "UPDATE scheduled_jobs SET finished_at = ?, duration = ?, summary = ?, error = ?"
            " WHERE name = ? AND started_at = ?", (at, duration, summary, error, name, started_at)))

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Drop the records (all, or some jobs'): those jobs are due at once."""
        def write(conn: Connection) -> None:
            if names is None:
                conn.execute("DELETE FROM scheduled_jobs")
            else:
                conn.executemany("DELETE FROM scheduled_jobs WHERE name = ?", [(n,) for n in names])

        self.db.write(write)
