"""Sources and API keys, scoped as Segment does it.

A *write key* belongs to one source and can only send events (HTTP Basic username or
`writeKey` in the body). A *secret key* reads and administers (`Authorization: Bearer`).
Only a SHA-256 of each key is stored; the plaintext is shown once, when it is created.
Lookups are cached for a few seconds only: a key revoked by another process (`persona keys
revoke` beside a running server) stops working within `cache_seconds`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from persona.errors import RequestError
from persona.storage.sql import Connection, Database, Migration


class KeyKind(enum.StrEnum):
    WRITE = "write"
    SECRET = "secret"


@dataclass(frozen=True)
class ApiKey:
    kind: KeyKind
    name: str
    source_id: str | None  # the source a write key sends for
    created_at: float
    fingerprint: str       # first characters of the hash, safe to show


MIGRATIONS = [
    Migration(100, "sources and keys", [
        "CREATE TABLE sources (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL)",
        """CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('write', 'secret')),
            name TEXT NOT NULL,
            source_id TEXT REFERENCES sources (id),
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
    ], postgres=[
        "CREATE TABLE sources (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
        """CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('write', 'secret')),
            name TEXT NOT NULL,
            source_id TEXT REFERENCES sources (id),
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        )""",
    ]),
]

_PREFIX = {KeyKind.WRITE: "pw_", KeyKind.SECRET: "ps_"}
_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{8,64}$")


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_key(kind: KeyKind) -> str:
    return _PREFIX[kind] + secrets.token_urlsafe(24)


class KeyStore(Protocol):
    def create_source(self, source_id: str, name: str | None = None) -> None: ...
    def create_key(self, kind: KeyKind, name: str, source_id: str | None = None,
                   plaintext: str | None = None) -> str: ...
    def lookup(self, plaintext: str) -> ApiKey | None: ...
    def revoke(self, fingerprint: str) -> bool: ...
    def list_keys(self) -> list[ApiKey]: ...
    def list_sources(self) -> list[tuple[str, str]]: ...


class SQLKeyStore:
    """Keys live beside the event log (`log.db`, or the log's tables in PostgreSQL)."""

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}  # hash -> (key, monotonic time it is valid until)
        self._lock = threading.Lock()

    def create_source(self, source_id: str, name: str | None = None) -> None:
        if not _SOURCE_ID.match(source_id):
            raise RequestError("a source id is 1-63 lowercase letters, digits, '-' or '_'", field="source")
        self.db.write(lambda c: c.execute(
            "INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (source_id, name or source_id, time.time())))

    def create_key(self, kind: KeyKind, name: str, source_id: str | None = None,
                   plaintext: str | None = None) -> str:
        """Store a new key (or the given plaintext, for seeding) and return its plaintext."""
        if kind is KeyKind.WRITE:
            if source_id is None:
                raise RequestError("a write key needs a source", field="source")
            self.create_source(source_id)
        plaintext = plaintext or new_key(kind)
        digest = hash_key(plaintext)

        def write(conn: Connection) -> None:
            conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                         (digest, kind.value, name, source_id if kind is KeyKind.WRITE else None, time.time()))

        self.db.write(write)
        return plaintext

    def lookup(self, plaintext: str) -> ApiKey | None:
        digest = hash_key(plaintext)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = self.db.query_one(
            "SELECT kind, name, source_id, created_at, key_hash FROM api_keys"
            " WHERE key_hash = ? AND revoked_at IS NULL", (digest,))
        if row is None:
            with self._lock:
                self._cache.pop(digest, None)
            return None
        key = _to_key(row)
        with self._lock:
            self._cache[digest] = (key, now + self.cache_seconds)
        return key

    def revoke(self, fingerprint: str) -> bool:
        """Revoke the one active key whose hash starts with `fingerprint` (as `list_keys` shows it)."""
        if not _FINGERPRINT.match(fingerprint):
            raise RequestError("give at least 8 hex characters of the key fingerprint", field="fingerprint")

        def write(conn: Connection) -> int:
            matches = conn.execute("SELECT count(*) FROM api_keys WHERE key_hash LIKE ? AND revoked_at IS NULL",
                                   (fingerprint + "%",)).fetchone()[0]
            if matches > 1:
                raise RequestError(f"{fingerprint} matches {matches} keys; give more of the fingerprint",
                                   field="fingerprint")
            return conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_hash LIKE ? AND revoked_at IS NULL",
                                (time.time(), fingerprint + "%")).rowcount

        revoked = self.db.write(write) > 0
        with self._lock:
            self._cache.clear()
        return revoked

    def list_keys(self) -> list[ApiKey]:
        rows = self.db.query(
            "SELECT kind, name, source_id, created_at, key_hash FROM api_keys WHERE revoked_at IS NULL"
            " ORDER BY created_at")
        return [_to_key(r) for r in rows]

    def list_sources(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.query("SELECT id, name FROM sources ORDER BY id")]


def _to_key(row: tuple[str, str, str | None, float, str]) -> ApiKey:
    kind, name, source_id, created_at, digest = row
    return ApiKey(KeyKind(kind), name, source_id, created_at, digest[:12])
