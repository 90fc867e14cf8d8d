"""PostgreSQL for the stores: a schema per deployment, a read pool, one group-commit writer.

A store URL is a libpq URL with one extra query parameter, `schema` (default `public`):
`postgresql://user@host:5432/db?schema=persona`. Each store (log, state) has its own
writer connection, so the processor's large commits never hold up ingest's, and a small
pool of autocommit connections for reads. Lost connections are retried with backoff, for
reads and writes alike: a PostgreSQL restart delays requests, it does not fail them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from persona.errors import ConfigError, StoreError
from persona.storage.sql import Backoff, Migration, Row, WriteFn
from persona.storage.writer import GroupWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

# A lost or refused connection, a restart in progress, a serialization conflict: worth retrying.
TRANSIENT: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PostgresURL:
    conninfo: str  # the URL without `schema`, as libpq takes it
    schema: str

    @classmethod
    def parse(cls, url: str) -> PostgresURL:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "public")
        if not _SCHEMA.match(schema):
            raise ConfigError(f"schema {schema!r} must be lowercase letters, digits and '_'", field="store")
        return cls(urlunsplit(parts._replace(query=urlencode(query))), schema)

    def redacted(self) -> str:
        parts = urlsplit(self.conninfo)
        host = parts.hostname or ""
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{user}{host}{port}{parts.path}?schema={self.schema}"


def connect(url: PostgresURL, application_name: str, **settings: str) -> psycopg.Connection[Any]:
    """An autocommit connection with the schema on its search path."""
    options = " ".join([f"-c search_path={url.schema}", *(f"-c {k}={v}" for k, v in settings.items())])
    return psycopg.connect(url.conninfo, autocommit=True, connect_timeout=5, options=options,
                           application_name=application_name[:63])


def lock_key(schema: str, name: str) -> int:
    """A 64-bit advisory lock id for `name` in this schema (several deployments share a database)."""
    return int.from_bytes(hashlib.blake2b(f"{schema}:{name}".encode(), digest_size=8).digest(), "big", signed=True)


@lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """Our `?` placeholders in psycopg's `%s` style."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection that speaks like sqlite3's: `?` placeholders, `executemany`."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(_pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Any) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(_pg_sql(sql), rows)
        return cursor

    def close(self) -> None:
        self.raw.close()


class PostgresDatabase:
    """One store (`component`) in a PostgreSQL schema: migrations applied, one writer, a read pool."""

    dialect = "postgres"

    def __init__(self, url: PostgresURL, migrations: Sequence[Migration], *, component: str,
                 application_name: str = "persona", pool_size: int = 8,
                 backoff: Backoff | None = None) -> None:
        self.url = url
        self.component = component
        self.migrations = migrations
        self.applied: list[int] = []  # versions applied by this open
        self.application_name = application_name
        self.backoff = backoff or Backoff()
        self._read_backoff = Backoff(give_up_after=min(10.0, self.backoff.give_up_after))
        try:
            Backoff(give_up_after=10).retry(lambda: self._migrate(migrations), TRANSIENT, f"migrating {component}")
        except TRANSIENT as exc:
            raise StoreError(f"cannot reach PostgreSQL at {url.redacted()}: {exc}") from exc
        self.writer = GroupWriter(f"{component}@{url.schema}", self._writer_connection, begin="BEGIN",
                                  transient=TRANSIENT, backoff=self.backoff)
        self.pool = ConnectionPool(
            url.conninfo, min_size=1, max_size=pool_size, open=True, name=f"{component}-read",
            kwargs={"autocommit": True, "connect_timeout": 5, "options": f"-c search_path={url.schema}",
                    "application_name": f"{application_name} read"[:63]})

    def _writer_connection(self) -> PgConnection:
        return PgConnection(connect(self.url, f"{self.application_name} {self.component} writer"))

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        with connect(self.url, f"{self.application_name} migrate") as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.url.schema}")
            # Several nodes may start at once: one migrates, the others wait and find it done.
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(self.url.schema, "migrate"),))
            try:
                self.applied = migrate(conn, migrations, self.component)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(self.url.schema, "migrate"),))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._read(lambda c: c.execute(_pg_sql(sql), tuple(params)).fetchall())

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._read(lambda c: c.execute(_pg_sql(sql), tuple(params)).fetchone())

    def _read(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        def attempt() -> T:
            with self.pool.connection() as conn:
                return fn(conn)

        try:
            return self._read_backoff.retry(attempt, TRANSIENT, f"read from {self.component}")
        except TRANSIENT as exc:
            raise StoreError(f"PostgreSQL is unreachable: {exc}") from exc

    def submit(self, fn: WriteFn) -> Future[Any]:
        return self.writer.submit(fn)

    def write(self, fn: Callable[[Any], T]) -> T:
        return self.writer.run(fn)

    def ping(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1").fetchone()

    def pending_migrations(self) -> list[int]:
        done = {r[0] for r in self.query("SELECT version FROM schema_migrations WHERE component = ?",
                                         (self.component,))}
        return [m.version for m in self.migrations if m.version not in done]

    def close(self) -> None:
        self.writer.close()
        self.pool.close()


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[Migration], component: str) -> list[int]:
    """Apply the component's migrations not yet recorded, one transaction each."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL,"
        " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (component, version))")
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations WHERE component = %s", (component,))}
    applied = []
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version in done:
            continue
        with conn.transaction():
            for stmt in m.for_dialect("postgres"):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s, %s)",
                         (component, m.version, m.name, time.time()))
        log.info("applied migration %s %s %s", component, m.version, m.name)
        applied.append(m.version)
    return applied
