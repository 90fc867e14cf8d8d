"""SQLite done right: one writer thread per file with group commit, readers on their own connections.

Every write goes through `SQLiteWriter.submit(fn)`: the writer thread runs queued
functions back to back inside one `BEGIN IMMEDIATE` transaction (each in its own
savepoint, so one failing function does not undo the others), commits once, and only
then resolves their futures. A resolved future therefore means "on disk": with
`synchronous=FULL` the commit has been fsynced, which is what lets the ingest API
acknowledge an event only when it survives kill -9 or power loss.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from persona.errors import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]

_STOP = object()


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


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Sequence[str]


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
            for stmt in m.statements:
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("applied migration %s %s", m.version, m.name)
        applied.append(m.version)
    return applied


class SQLiteWriter:
    """The only connection that writes to one database file; work arrives through a queue."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL", max_group: int = 256) -> None:
        self.path = Path(path)
        self.conn = connect(self.path, synchronous=synchronous)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_group = max_group
        self._thread = threading.Thread(target=self._run, name=f"sqlite-writer:{self.path.name}", daemon=True)
        self._closed = False
        self.commits = 0
        self._thread.start()

    def submit(self, fn: WriteFn) -> Future[Any]:
        """Queue `fn(conn)`; the future resolves with its result after the commit."""
        fut: Future[Any] = Future()
        if self._closed:
            fut.set_exception(StoreError("the store is closed"))
            return fut
        self._queue.put((fn, fut))
        return fut

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Submit and wait: the synchronous form for CLI commands and the processor."""
        return self.submit(fn).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self.conn.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            group = [item]
            stop = False
            while len(group) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                group.append(nxt)
            self._commit_group(group)
            if stop:
                return

    def _commit_group(self, group: list[tuple[WriteFn, Future[Any]]]) -> None:
        conn = self.conn
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _ in group:
                conn.execute("SAVEPOINT work")
                try:
                    result = fn(conn)
                except BaseException as exc:  # isolate one caller's failure from the rest of the group
                    conn.execute("ROLLBACK TO work")
                    conn.execute("RELEASE work")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE work")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            log.exception("commit failed on %s", self.path)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = StoreError(f"write to {self.path.name} failed: {exc}")
            for _, fut in group:
                fut.set_exception(err)
            return
        for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


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


class Database:
    """One SQLite file: its migrations applied, its single writer, its readers."""

    def __init__(self, path: Path | str, migrations: Sequence[Migration], *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        setup = connect(self.path)
        try:
            migrate(setup, migrations)
        finally:
            setup.close()
        self.writer = SQLiteWriter(self.path, synchronous=synchronous)
        self.readers = ReaderPool(self.path)

    def read(self) -> sqlite3.Connection:
        return self.readers.get()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self.writer.run(fn)

    def close(self) -> None:
        self.writer.close()
        self.readers.close()
