"""The single writer with group commit, for any SQL backend.

Every write goes through `GroupWriter.submit(fn)`: the writer thread runs queued functions
back to back inside one transaction (each in its own savepoint, so one failing function
does not undo the others), commits once, and only then resolves their futures. A resolved
future therefore means "committed": on SQLite with `synchronous=FULL` and on PostgreSQL
with `synchronous_commit=on`, on disk, which is what lets the ingest API acknowledge an
event only when it survives kill -9.

When the connection is lost (a PostgreSQL restart, a dropped socket) the whole group is
retried on a new connection with backoff; the write functions are idempotent for that
reason (see `storage/sql.py`). Other database errors fail the group with a StoreError.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from persona.errors import StoreError
from persona.storage.sql import Backoff, Connection, WriteFn

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


class GroupWriter:
    """The only connection that writes to one store; work arrives through a queue."""

    def __init__(self, name: str, connect: Callable[[], Any], *, begin: str = "BEGIN",
                 transient: tuple[type[BaseException], ...] = (),
                 backoff: Backoff | None = None, max_group: int = 256) -> None:
        self.name = name
        self._connect = connect
        self._begin = begin
        self._transient = transient
        self._backoff = backoff or Backoff()
        self._max_group = max_group
        self.conn: Any = connect()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name=f"writer:{name}", daemon=True)
        self._thread.start()

    def submit(self, fn: WriteFn) -> Future[Any]:
        """Queue `fn(conn)`; the future resolves with its result after the commit."""
        fut: Future[Any] = Future()
        if self._closed:
            fut.set_exception(StoreError("the store is closed"))
            return fut
        self._queue.put((fn, fut))
        return fut

    def run(self, fn: Callable[[Any], T]) -> T:
        """Submit and wait: the synchronous form for CLI commands and the processor."""
        return self.submit(fn).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        if self.conn is not None:
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
        try:
            outcomes = self._backoff.retry(lambda: self._attempt(group), self._transient,
                                           f"write to {self.name}", on_retry=self._reconnect)
        except Exception as exc:  # a database error, or the transient one that outlasted the backoff
            log.exception("commit failed on %s", self.name)
            err = StoreError(f"write to {self.name} failed: {exc}")
            for _, fut in group:
                fut.set_exception(err)
            return
        for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _attempt(self, group: list[tuple[WriteFn, Future[Any]]]) -> list[tuple[bool, Any]]:
        if self.conn is None:
            self.conn = self._connect()
        conn: Connection = self.conn
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute(self._begin)
            for fn, _ in group:
                conn.execute("SAVEPOINT work")
                try:
                    result = fn(conn)
                except self._transient:
                    raise
                except BaseException as exc:  # isolate one caller's failure from the rest of the group
                    conn.execute("ROLLBACK TO work")
                    conn.execute("RELEASE work")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE work")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback_quietly()
            raise
        self.commits += 1
        return outcomes

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be gone; _reconnect replaces it
            self.conn.execute("ROLLBACK")

    def _reconnect(self) -> None:
        if self._closed:
            raise StoreError(f"{self.name} closed while reconnecting")
        with contextlib.suppress(Exception):
            self.conn.close()
        self.conn = None
