"""Trained model sets, kept in the state store, and the service that serves the newest one.

`persona recs train` saves a set (`rec_models`: its JSON summary and its `np.savez` archive)
and only the newest `KEEP` stay. Model sets are history, not state derived event by event,
so `persona rebuild` leaves them. A `Recommender` in every server checks every few seconds,
with one cheap query, whether a newer set exists; it loads it completely on the side and then
replaces one reference, so requests keep being served by the old set meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.errors import ModelNotTrained
from persona.recommend.modelset import ModelSet
from persona.storage.sql import Connection, Database, Migration

MIGRATIONS = [
    Migration(600, "recommendation models", [
        "CREATE TABLE rec_models (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, summary TEXT NOT NULL,"
        " blob BLOB NOT NULL)",
    ], postgres=[
        "CREATE TABLE rec_models (id BIGINT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL,"
        " summary TEXT NOT NULL, blob BYTEA NOT NULL)",
    ]),
]

KEEP = 3
CHECK_EVERY = 5.0  # seconds between two looks for a newer model set


@dataclass(frozen=True)
class StoredModels:
    id: int
    created_at: float
    summary: dict[str, Any]
    blob: bytes


class ModelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, models: ModelSet) -> int:
        """Store the set as the newest; returns its id."""
        blob, summary = models.to_bytes(), msgspec.json.encode(models.summary).decode()

        def write(conn: Connection) -> int:
            row = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM rec_models").fetchone()
            new_id = int(row[0])
            conn.execute("INSERT INTO rec_models (id, created_at, summary, blob) VALUES (?, ?, ?, ?)",
                         (new_id, time.time(), summary, blob))
            conn.execute("DELETE FROM rec_models WHERE id <= ?", (new_id - KEEP,))
            return new_id

        return self.db.write(write)

    def newest_id(self) -> int | None:
        row = self.db.query_one("SELECT MAX(id) FROM rec_models")
        return int(row[0]) if row and row[0] is not None else None

    def newest(self) -> StoredModels | None:
        row = self.db.query_one("SELECT id, created_at, summary, blob FROM rec_models ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        return StoredModels(int(row[0]), float(row[1]), msgspec.json.decode(row[2]), bytes(row[3]))

    def ids(self) -> list[int]:
        return [int(r[0]) for r in self.db.query("SELECT id FROM rec_models ORDER BY id")]


class Recommender:
    """The newest trained model set, swapped in atomically when a newer one is saved."""

    def __init__(self, store: ModelStore, check_every: float = CHECK_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.check_every = check_every
        self.clock = clock
        self._models: ModelSet | None = None
        self._models_id: int | None = None
        self._checked_at: float | None = None
        self._loading = threading.Lock()

    def current(self) -> ModelSet:
        """The set to serve with; ModelNotTrained (503) until a first one is trained. A newer set is
        looked for and loaded in a thread of its own (loading takes about a second on a large store),
        so no request, nor an async server's event loop, waits for a swap; only the first load is waited for."""
        models = self._models
        if models is None:
            self.refresh(wait=True)
            models = self._models
        elif self._due():
            self._checked_at = self.clock()
            threading.Thread(target=self.refresh, kwargs={"wait": False}, name="recs-refresh", daemon=True).start()
        if models is None:
            raise ModelNotTrained("no recommendation model has been trained yet: run `persona recs train`")
        return models

    def refresh(self, wait: bool = True) -> bool:
        """Load the newest set if it is newer than the one served; True if it swapped. Without
        `wait`, a caller that finds another thread loading goes on with the current set."""
        if not self._loading.acquire(blocking=wait):
            return False
        try:
            self._checked_at = self.clock()
            newest_id = self.store.newest_id()
            if newest_id is None or newest_id == self._models_id:
                return False
            stored = self.store.newest()
            if stored is None:
                return False
            models = ModelSet.from_bytes(stored.blob, stored.summary | {"id": stored.id})
            if self._models is None:
                _one_blas_thread()
            self._models, self._models_id = models, stored.id  # built completely, then one swap
            return True
        finally:
            self._loading.release()

    def _due(self) -> bool:
        return self._checked_at is None or self.clock() - self._checked_at >= self.check_every


def _one_blas_thread() -> None:
    """Serving multiplies one user's vector by the item factors per request: too small for BLAS
    threads to gain anything, and with the server's request threads calling BLAS at once its
    threads only contend (at 250 requests/s, 100k users: 117 requests/s served with the default
    threads, 176-184 with one). So a process that serves keeps BLAS to one thread, set once (a
    `threadpool_limits` per request would cost ~0.2 ms)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
