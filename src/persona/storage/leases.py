"""Leases: which live worker owns which piece of work (a processing stage, a partition).

A lease is held for as long as its holder lives and released the moment it dies, with no
timeout to wait out after a kill -9:

- on PostgreSQL, by session advisory locks on one connection per worker. PostgreSQL drops
  the locks when the session ends, and ends the session of a worker that stops talking for
  `LEASE_TIMEOUT` seconds (idle_session_timeout), so a hung worker loses its leases too;
- on the embedded store, by OS file locks in `<data_dir>/leases/`, which the kernel drops
  when the process exits (workers of an embedded store share one machine).

Holding a lease is what lets a worker start a stage; it is not what makes a commit safe.
Commits are compare-and-set on the stage's checkpoint, so a worker that lost a lease
without noticing (paused, cut off) can never commit over its successor.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg

from persona.errors import ConfigError
from persona.storage.postgres import TRANSIENT, PostgresURL, connect, lock_key

LEASE_TIMEOUT = 15  # seconds of silence after which PostgreSQL ends a worker's session


class Leases(Protocol):
    worker_id: str

    def join(self) -> None:
        """Become a member of the worker group (members share the partitions)."""
        ...

    def try_acquire(self, name: str) -> bool: ...
    def release(self, name: str) -> None: ...
    def held(self) -> set[str]: ...

    def alive(self) -> bool:
        """Heartbeat: False if this worker's leases were lost (its session ended)."""
        ...

    def members(self) -> list[str]:
        """Worker ids of the live members, this one included."""
        ...

    def owners(self, names: list[str]) -> dict[str, str]:
        """Lease name -> worker id, for the leases someone holds."""
        ...

    def close(self) -> None: ...


class PostgresLeases:
    """Advisory locks on one session per worker; ownership read from pg_locks and pg_stat_activity."""

    def __init__(self, url: PostgresURL, worker_id: str) -> None:
        self.url = url
        self.worker_id = worker_id
        # The session's name says which deployment (schema) and worker it is: members() reads it.
        self._prefix = f"persona worker {url.schema} "
        if len(self._prefix + worker_id) > 63:  # PostgreSQL cuts session names there
            raise ConfigError(f"worker id {worker_id!r} is too long for schema {url.schema!r}: keep the two "
                              f"within {63 - len('persona worker  ')} characters", field="id")
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()

    def _session(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._held.clear()  # a new session holds nothing
            self._conn = connect(self.url, f"{self._prefix}{self.worker_id}",
                                 idle_session_timeout=f"{LEASE_TIMEOUT}s")
        return self._conn

    def join(self) -> None:
        self._session()

    def try_acquire(self, name: str) -> bool:
        try:
            got = self._session().execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.url.schema, name),))
            if got.fetchone()[0]:
                self._held.add(name)
                return True
        except TRANSIENT:
            self._drop()
        return False

    def release(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            try:
                self._session().execute("SELECT pg_advisory_unlock(%s)", (lock_key(self.url.schema, name),))
            except TRANSIENT:
                self._drop()

    def held(self) -> set[str]:
        return set(self._held)

    def alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
            return True
        except TRANSIENT:
            self._drop()
            return False

    def members(self) -> list[str]:
        rows = self._query("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s"
                           " AND datname = current_database()", (self._prefix.replace("_", r"\_") + "%",))
        return sorted(r[0][len(self._prefix):] for r in rows)

    def owners(self, names: list[str]) -> dict[str, str]:
        by_key = {_lock_parts(lock_key(self.url.schema, n)): n for n in names}
        rows = self._query(
            "SELECT l.classid::bigint, l.objid::bigint, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        owners = {}
        for classid, objid, app in rows:
            name = by_key.get((classid, objid))
            if name is not None:
                owners[name] = app[len(self._prefix):] if app.startswith(self._prefix) else app
        return owners

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # Separate short-lived session: never disturb the one holding the locks.
        with connect(self.url, "persona leases") as conn:
            return conn.execute(sql, params).fetchall()

    def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


def _lock_parts(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), the high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class FileLeases:
    """flock()ed files, one per lease and one per member, in `<data_dir>/leases/`."""

    def __init__(self, data_dir: Path, worker_id: str) -> None:
        self.dir = Path(data_dir) / "leases"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.worker_id = worker_id
        self._files: dict[str, IO[str]] = {}

    def _path(self, name: str) -> Path:
        return self.dir / (re.sub(r"[^A-Za-z0-9_.-]", "-", name) + ".lock")

    def _lock(self, key: str, path: Path) -> bool:
        file = open(path, "a+")  # noqa: SIM115 - held as long as the lease
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        file.seek(0)
        file.truncate()
        file.write(self.worker_id)
        file.flush()
        self._files[key] = file
        return True

    def join(self) -> None:
        self._lock("member:", self._path(f"member-{self.worker_id}"))

    def try_acquire(self, name: str) -> bool:
        return name in self._files or self._lock(name, self._path(name))

    def release(self, name: str) -> None:
        file = self._files.pop(name, None)
        if file is not None:
            fcntl.flock(file, fcntl.LOCK_UN)
            file.close()

    def held(self) -> set[str]:
        return {name for name in self._files if name != "member:"}

    def alive(self) -> bool:
        return True  # the kernel holds the locks for as long as this process lives

    def members(self) -> list[str]:
        alive = []
        for path in self.dir.glob("member-*.lock"):
            owner = _holder(path)
            if owner is not None:
                alive.append(owner)
            elif path != self._path(f"member-{self.worker_id}"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # a member that is gone
        return sorted(alive)

    def owners(self, names: list[str]) -> dict[str, str]:
        found = {}
        for name in names:
            owner = _holder(self._path(name)) if self._path(name).exists() else None
            if owner is not None:
                found[name] = owner
        return found

    def close(self) -> None:
        for name in list(self._files):
            self.release(name)


def _holder(path: Path) -> str | None:
    """Who holds the lock on `path` (as written in it), or None if nobody does."""
    try:
        with open(path) as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return file.read().strip() or "?"
            fcntl.flock(file, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None


def default_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"
