"""The store backends the contract tests run on: SQLite always, PostgreSQL when it is reachable.

PostgreSQL is found at `PERSONA_TEST_POSTGRES_URL` (default: the local server CI runs,
postgresql://127.0.0.1:5432/test). Each test gets a schema of its own, dropped afterwards,
so runs never see each other's data. Without a server the PostgreSQL variants skip with
the reason, except under CI=true, where they must run.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgres"]


def postgres_base_url() -> str:
    return os.environ.get("PERSONA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None if they can."""
    try:
        with psycopg.connect(postgres_base_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {postgres_base_url()} is unreachable ({exc}); set PERSONA_TEST_POSTGRES_URL"
    return None


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    pytest.skip(reason)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema; yields the store URL that points at it."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = postgres_base_url()
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
