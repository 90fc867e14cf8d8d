"""Past persona runs, kept in the state store so the next run can say how much changed.

Each run keeps its JSON summary (what `persona personas show` prints), its HTML report (so
that a scheduled run on any worker leaves its report where every node can read it), and its
model: who was in which persona, and the feature space and centroids to place new customers
with. Only the newest `KEEP` runs are kept. Runs are history, not state derived from the log, so
`persona rebuild` leaves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from persona.personas.space import FeatureSpace
from persona.storage.sql import Connection, Database, Migration

MIGRATIONS = [
    Migration(400, "persona runs", [
        "CREATE TABLE persona_runs (id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, summary TEXT NOT NULL,"
        " model BLOB NOT NULL, report TEXT NOT NULL)",
    ], postgres=[
        "CREATE TABLE persona_runs (id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, summary TEXT NOT NULL,"
        " model BYTEA NOT NULL, report TEXT NOT NULL)",
    ]),
]

KEEP = 20


class RunModel(msgspec.Struct):
    customers: list[str]
    labels: list[int]
    space: FeatureSpace
    centroids: list[list[float]]  # per persona, in the space's weighted units
    names: list[str]              # per persona
    shares: list[float]           # per persona


@dataclass(frozen=True)
class StoredRun:
    id: str
    started_at: int
    summary: dict[str, Any]
    model: RunModel


_encode = msgspec.msgpack.Encoder().encode
_decode_model = msgspec.msgpack.Decoder(RunModel).decode


class PersonaRunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, run_id: str, started_at: int, summary: dict[str, Any], model: RunModel, report: str) -> None:
        row = (run_id, started_at, msgspec.json.encode(summary).decode(), _encode(model), report)

        def write(conn: Connection) -> None:
            conn.execute("INSERT INTO persona_runs VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
                         " SET started_at = excluded.started_at, summary = excluded.summary,"
                         " model = excluded.model, report = excluded.report", row)
            conn.execute("DELETE FROM persona_runs WHERE id NOT IN"
                         " (SELECT id FROM persona_runs ORDER BY started_at DESC, id DESC LIMIT ?)", (KEEP,))

        self.db.write(write)

    def latest(self) -> StoredRun | None:
        row = self.db.query_one("SELECT id, started_at, summary, model FROM persona_runs"
                                " ORDER BY started_at DESC, id DESC LIMIT 1")
        if row is None:
            return None
        return StoredRun(row[0], row[1], msgspec.json.decode(row[2]), _decode_model(bytes(row[3])))

    def report(self, run_id: str) -> str | None:
        """The run's HTML report."""
        row = self.db.query_one("SELECT report FROM persona_runs WHERE id = ?", (run_id,))
        return row[0] if row else None

    def summaries(self, limit: int = KEEP) -> list[dict[str, Any]]:
        """The newest runs' summaries, newest first."""
        rows = self.db.query("SELECT summary FROM persona_runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
        return [msgspec.json.decode(r[0]) for r in rows]
