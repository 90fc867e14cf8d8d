"""The model registry: every trained version of a predictive model, which one is in use, and
going back to an earlier one.

A version keeps what it is (`kind`: clv, ...), its fitted parameters, the metrics measured when
it was trained, the features it reads, the training window, and who trained it when. Exactly
one version per kind is active: training activates the new one; `activate` puts any earlier one
back (a rollback), and the next scoring writes its scores. Kept in the state store (models are
derived from the data); `persona rebuild` keeps them, as it keeps recommendation model sets.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.errors import NotFound
from persona.storage.sql import Connection, Database, Migration

MIGRATIONS = [  # the state store
    Migration(1000, "model registry", [
        "CREATE TABLE model_versions (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL,"
        " trained_by TEXT NOT NULL, trained_on TEXT NOT NULL, features TEXT NOT NULL, metrics TEXT NOT NULL,"
        " params TEXT NOT NULL, blob BLOB)",
        "CREATE INDEX model_versions_kind ON model_versions (kind, id)",
        "CREATE TABLE model_active (kind TEXT PRIMARY KEY, version INTEGER NOT NULL, activated_at REAL NOT NULL,"
        " activated_by TEXT NOT NULL)",
        "CREATE TABLE model_drift (version INTEGER NOT NULL, measured_at REAL NOT NULL, report TEXT NOT NULL,"
        " PRIMARY KEY (version, measured_at))",
    ], postgres=[
        "CREATE TABLE model_versions (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
        " trained_by TEXT NOT NULL, trained_on TEXT NOT NULL, features TEXT NOT NULL, metrics TEXT NOT NULL,"
        " params TEXT NOT NULL, blob BYTEA)",
        "CREATE INDEX model_versions_kind ON model_versions (kind, id)",
        "CREATE TABLE model_active (kind TEXT PRIMARY KEY, version BIGINT NOT NULL,"
        " activated_at DOUBLE PRECISION NOT NULL, activated_by TEXT NOT NULL)",
        "CREATE TABLE model_drift (version BIGINT NOT NULL, measured_at DOUBLE PRECISION NOT NULL,"
        " report TEXT NOT NULL, PRIMARY KEY (version, measured_at))",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class ModelVersion:
    id: int
    kind: str
    created_at: float          # unix seconds
    trained_by: str            # user@host (process)
    trained_on: dict[str, Any]  # the training window and data: {"as_of": iso, "customers": n, ...}
    features: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    active: bool = False

    @property
    def label(self) -> str:
        """What scores carry as the version that made them: `clv@3`."""
        return f"{self.kind}@{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, "active": self.active,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
                "trained_by": self.trained_by, "trained_on": self.trained_on, "features": self.features,
                "metrics": self.metrics, "params": self.params}


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


class ModelRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, kind: str, params: dict[str, Any], metrics: dict[str, Any], features: list[str],
                 trained_on: dict[str, Any], *, blob: bytes | None = None, activate: bool = True) -> ModelVersion:
        """Keep a newly trained version (and make it the active one); returns it. `blob`: the fitted
        model when its parameters are not plain numbers (a pickled classifier)."""
        by = who()

        def write(conn: Connection) -> int:
            row = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM model_versions").fetchone()
            new_id = int(row[0])
            conn.execute("INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (new_id, kind, time.time(), by, _text(trained_on), _text(features), _text(metrics),
                          _text(params), blob))
            if activate:
                _activate(conn, kind, new_id, by)
            return new_id

        return self.get(int(self.db.write(write)))

    def get(self, version: int) -> ModelVersion:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM model_versions v LEFT JOIN model_active a"
                                " ON a.kind = v.kind AND a.version = v.id WHERE v.id = ?", (version,))
        if row is None:
            raise NotFound(f"no model version {version}", field="version")
        return _version(row)

    def blob(self, version: int) -> bytes | None:
        row = self.db.query_one("SELECT blob FROM model_versions WHERE id = ?", (version,))
        return bytes(row[0]) if row and row[0] is not None else None

    def record_drift(self, version: int, report: dict[str, Any]) -> None:
        """Keep what a scoring measured (`predict/drift.py`); the last 100 per version stay."""
        at = time.time()

        def write(conn: Connection) -> None:
            conn.execute("INSERT INTO model_drift VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         (version, at, _text(report)))
            conn.execute("DELETE FROM model_drift WHERE version = ? AND measured_at < (SELECT min(measured_at) FROM"
                         " (SELECT measured_at FROM model_drift WHERE version = ? ORDER BY measured_at DESC LIMIT 100)"
                         " AS newest)", (version, version))

        self.db.write(write)

    def drift(self, version: int, limit: int = 1) -> list[dict[str, Any]]:
        """The newest drift reports of a version, newest first, each with `measured_at`."""
        rows = self.db.query("SELECT measured_at, report FROM model_drift WHERE version = ? ORDER BY measured_at DESC"
                             " LIMIT ?", (version, limit))
        return [{"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[0])), **_decode(r[1])} for r in rows]

    def versions(self, kind: str | None = None) -> list[ModelVersion]:
        """Newest first."""
        where, params = ("WHERE v.kind = ?", (kind,)) if kind else ("", ())
        rows = self.db.query(f"SELECT {_COLUMNS} FROM model_versions v LEFT JOIN model_active a"
                             f" ON a.kind = v.kind AND a.version = v.id {where} ORDER BY v.id DESC", params)
        return [_version(r) for r in rows]

    def active(self, kind: str) -> ModelVersion | None:
        row = self.db.query_one("SELECT version FROM model_active WHERE kind = ?", (kind,))
        return self.get(int(row[0])) if row else None

    def activate(self, version: int) -> ModelVersion:
        """Make a version the one in use for its kind (a rollback, or forward again)."""
        chosen = self.get(version)
        by = who()
        self.db.write(lambda conn: _activate(conn, chosen.kind, chosen.id, by))
        return self.get(version)


_COLUMNS = ("v.id, v.kind, v.created_at, v.trained_by, v.trained_on, v.features, v.metrics, v.params,"
            " a.version IS NOT NULL")


def _activate(conn: Connection, kind: str, version: int, by: str) -> None:
    conn.execute("INSERT INTO model_active VALUES (?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE"
                 " SET version = excluded.version, activated_at = excluded.activated_at,"
                 " activated_by = excluded.activated_by", (kind, version, time.time(), by))


def _version(row: tuple[Any, ...]) -> ModelVersion:
    return ModelVersion(int(row[0]), row[1], float(row[2]), row[3], _decode(row[4]), _decode(row[5]),
                        _decode(row[6]), _decode(row[7]), bool(row[8]))


def _text(value: Any) -> str:
    return _encode(value).decode()
