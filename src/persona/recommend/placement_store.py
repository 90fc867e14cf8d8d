"""Placements kept in the store: defined as code (the `placements` file, applied when the
engine opens and on SIGHUP) and through `/v1/placements`, checked on save.

They live in the log's store, as configuration a replay must not forget. Serving reads them
from memory: `current()` looks at the store at most once a second, with one cheap query
(how many, the highest revision), and parses them again only when that moved, so an API
node sees a placement another node saved within about a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from persona.errors import NotFound
from persona.recommend.placements import Placement, PlacementError, parse_placement, parse_placements
from persona.storage.sql import Connection, Database, Migration

MIGRATIONS = [  # the log's store
    Migration(950, "placements", [
        "CREATE TABLE placements (name TEXT PRIMARY KEY, body BLOB NOT NULL, revision INTEGER NOT NULL,"
        " updated_at REAL NOT NULL)",
    ], postgres=[
        "CREATE TABLE placements (name TEXT PRIMARY KEY, body BYTEA NOT NULL, revision BIGINT NOT NULL,"
        " updated_at DOUBLE PRECISION NOT NULL)",
    ]),
]
LOOK_EVERY = 1.0  # seconds between looks at the store for changes

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_UPSERT = ("INSERT INTO placements VALUES (?, ?, (SELECT coalesce(max(revision), 0) + 1 FROM placements), ?)"
           " ON CONFLICT (name) DO UPDATE SET body = excluded.body, revision = excluded.revision,"
           " updated_at = excluded.updated_at")


class PlacementStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cached: dict[str, Placement] = {}
        self._seen: tuple[int, int] | None = None
        self._looked_at = float("-inf")

    # -- serving ---------------------------------------------------------------------------------
    def current(self) -> dict[str, Placement]:
        """The placements in force, parsed; from memory, refreshed at most every `LOOK_EVERY` s."""
        if time.monotonic() - self._looked_at < LOOK_EVERY:
            return self._cached
        with self._lock:
            if time.monotonic() - self._looked_at >= LOOK_EVERY:
                row = self.db.query_one("SELECT count(*), coalesce(max(revision), 0) FROM placements")
                seen = (int(row[0]), int(row[1])) if row else (0, 0)
                if seen != self._seen:
                    self._cached = {name: parse_placement(name, body, f"placements.{name}")
                                    for name, body in self.bodies().items()}
                    self._seen = seen
                self._looked_at = time.monotonic()
        return self._cached

    def refresh(self) -> dict[str, Placement]:
        """Look at the store now (after a change made here)."""
        self._looked_at = float("-inf")
        return self.current()

    # -- definitions -----------------------------------------------------------------------------
    def bodies(self) -> dict[str, Any]:
        return {name: _decode(body) for name, body in self.db.query("SELECT name, body FROM placements ORDER BY name")}

    def get(self, name: str) -> Any:
        row = self.db.query_one("SELECT body FROM placements WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no placement {name!r}", field="name")
        return _decode(row[0])

    def save(self, name: str, body: Any) -> bool:
        """Create or replace one placement, checked first; True if it is new."""
        _check_name(name)
        parse_placement(name, body, name)
        existed = self.db.query_one("SELECT 1 FROM placements WHERE name = ?", (name,)) is not None
        self.db.write(lambda conn: conn.execute(_UPSERT, (name, _encode(body), time.time())))
        self.refresh()
        return not existed

    def delete(self, name: str) -> None:
        self.get(name)
        self.db.write(lambda conn: conn.execute("DELETE FROM placements WHERE name = ?", (name,)))
        self.refresh()

    def apply(self, bodies: Mapping[str, Any], *, prune: bool = False) -> dict[str, list[str]]:
        """Make the store hold these placements (placements as code), all checked before anything is
        written, then written in one transaction; `prune` deletes the others."""
        for name in bodies:
            _check_name(str(name), f"placements.{name}")
        parse_placements(dict(bodies))
        existing = self.bodies()
        applied: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
        changed = []
        for name, body in bodies.items():
            before = existing.get(name, _ABSENT)
            which = "created" if before is _ABSENT else "unchanged" if before == body else "updated"
            applied[which].append(name)
            if which != "unchanged":
                changed.append((name, body))
        applied["deleted"] = sorted(set(existing) - set(bodies)) if prune else []

        def write(conn: Connection) -> None:
            now = time.time()
            for name, body in changed:
                conn.execute(_UPSERT, (name, _encode(body), now))
            for name in applied["deleted"]:
                conn.execute("DELETE FROM placements WHERE name = ?", (name,))

        if changed or applied["deleted"]:
            self.db.write(write)
            self.refresh()
        return applied


_ABSENT = object()


def _check_name(name: str, path: str = "name") -> None:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "_-." for c in name):
        raise PlacementError(f"{name!r} is not a placement name (letters, digits, _ - . ; at most 100)", field=path)
