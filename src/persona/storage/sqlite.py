"""SQLite done right: one writer thread per file with group commit, readers on their own connections.

Writes go through the group-commit writer (`storage/writer.py`) in `BEGIN IMMEDIATE`
transactions; with `synchronous=FULL` a resolved write is fsynced. Readers use one
connection per thread and never wait for the writer (WAL).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from persona.storage.sql import Migration, Row, WriteFn
from persona.storage.writer import GroupWriter

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect(path: Path | str, *, synchronous: str = "FULL", readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with the pragmas every persona database uses."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None, timeout=30)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
    # Checkpoint the WAL every ~40 MB rather than 4 MB: hot index pages are copied back once, not ten times.
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations not yet recorded in `schema_migrations`, one transaction each."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in m.for_dialect("sqlite"):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("applied migration %s %s", m.version, m.name)
        applied.append(m.version)
    return applied


class ReaderPool:
    """Read connections, one per thread, so readers never wait on the writer (WAL)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous="NORMAL")
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class SQLiteDatabase:
    """One SQLite file: its migrations applied, its single writer, its readers."""

    dialect = "sqlite"

    def __init__(self, path: Path | str, migrations: Sequence[Migration], *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrations = migrations
        setup = connect(self.path)
        try:
            self.applied = migrate(setup, migrations)  # versions applied by this open
        finally:
            setup.close()
        self.writer = GroupWriter(self.path.name, lambda: connect(self.path, synchronous=synchronous),
                                  begin="BEGIN IMMEDIATE")
        self.readers = ReaderPool(self.path)

    def read(self) -> sqlite3.Connection:
        return self.readers.get()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.readers.get().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.readers.get().execute(sql, params).fetchone()

    def submit(self, fn: WriteFn) -> Future[Any]:
        return self.writer.submit(fn)

    def write(self, fn: Callable[[Any], T]) -> T:
        return self.writer.run(fn)

    def ping(self) -> None:
        self.readers.get().execute("SELECT 1").fetchone()

    def pending_migrations(self) -> list[int]:
        done = {r[0] for r in self.query("SELECT version FROM schema_migrations")}
        return [m.version for m in self.migrations if m.version not in done]

    def close(self) -> None:
        self.writer.close()
        self.readers.close()
