"""What the stores need from a SQL database, whichever engine it is (SQLite or PostgreSQL).

Stores write their SQL once, with `?` placeholders and syntax both engines accept
(`ON CONFLICT`, row values); a backend translates placeholders. Writes go through
`Database.submit(fn)`: `fn(conn)` runs inside a transaction on the backend's single writer
connection, grouped with other queued writes, and its future resolves after the commit.
A backend may run a write function again after a lost connection, so write functions are
idempotent: they upsert, or insert with `ON CONFLICT DO NOTHING`, or check the checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]


class Connection(Protocol):
    """The part of a DB-API connection the stores use (sqlite3's, or psycopg's behind an adapter)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Any) -> Any: ...


WriteFn = Callable[[Any], Any]


class Database(Protocol):
    """One store's database: a SQLite file, or a PostgreSQL schema."""

    dialect: str  # "sqlite" or "postgres"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    def submit(self, fn: WriteFn) -> Future[Any]: ...
    def write(self, fn: Callable[[Any], T]) -> T: ...
    def ping(self) -> None: ...

    def pending_migrations(self) -> list[int]:
        """Versions this code knows that the database has not recorded (someone reset it?)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Migration:
    """One schema change, recorded once applied. `postgres` is given where the DDL differs."""

    version: int
    name: str
    statements: Sequence[str]
    postgres: Sequence[str] | None = None

    def for_dialect(self, dialect: str) -> Sequence[str]:
        return self.postgres if dialect == "postgres" and self.postgres is not None else self.statements


@dataclass
class Backoff:
    """Exponential backoff for transient failures: first wait, ceiling, and how long to keep trying."""

    first: float = 0.05
    ceiling: float = 2.0
    give_up_after: float = 60.0

    def retry(self, fn: Callable[[], T], transient: tuple[type[BaseException], ...], what: str,
              on_retry: Callable[[], object] | None = None) -> T:
        """Call `fn` until it does not raise a transient error, or until `give_up_after` has passed."""
        deadline = time.monotonic() + self.give_up_after
        delay = self.first
        while True:
            try:
                return fn()
            except transient as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s failed (%s); retrying in %.2f s", what, _one_line(exc), delay)
                time.sleep(delay)
                delay = min(self.ceiling, delay * 2)
                if on_retry is not None:
                    on_retry()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def chunks(items: list[T], size: int = 500) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def marks(n: int) -> str:
    """`?, ?, ?` for an IN list of n values."""
    return ",".join("?" * n)


@dataclass(frozen=True)
class Insert:
    """A many-row INSERT written once, run the way each engine does it best.

    SQLite is in-process, so `executemany` costs little per row. PostgreSQL runs each row
    of an `executemany` as a statement of its own, about 10 µs of server CPU apiece, so
    there the rows go as one array per column in a single INSERT ... SELECT FROM unnest(),
    in the order given (WITH ORDINALITY), which is the order identity columns count in.
    """

    table: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL element type)
    conflict: str = ""                    # e.g. "ON CONFLICT DO NOTHING"

    def sql(self, dialect: str) -> str:
        names = ", ".join(name for name, _ in self.columns)
        if dialect == "postgres":
            arrays = ", ".join(f"?::{kind}[]" for _, kind in self.columns)
            return (f"INSERT INTO {self.table} ({names}) SELECT {names} FROM unnest({arrays})"
                    f" WITH ORDINALITY AS u({names}, n) ORDER BY n {self.conflict}")
        return f"INSERT INTO {self.table} ({names}) VALUES ({marks(len(self.columns))}) {self.conflict}"

    def run(self, conn: Connection, dialect: str, rows: Sequence[Sequence[Any]]) -> int:
        """Insert the rows; returns how many the database stored (conflicts skipped)."""
        if not rows:
            return 0
        if dialect == "postgres":
            return int(conn.execute(self.sql(dialect), [list(column) for column in zip(*rows, strict=True)]).rowcount)
        return int(conn.executemany(self.sql(dialect), rows).rowcount)


def where_in(dialect: str, column: str, values: list[Any]) -> tuple[str, list[Any]]:
    """`column IN (...)` for a list of values: one array parameter on PostgreSQL (no parsing of
    hundreds of placeholders), placeholders on SQLite. Callers chunk with `chunk_size`."""
    if dialect == "postgres":
        return f"{column} = ANY(?)", [values]
    return f"{column} IN ({marks(len(values))})", values


def chunk_size(dialect: str) -> int:
    return 10_000 if dialect == "postgres" else 500
