"""The outbox: deliveries waiting to be sent to a destination, kept in the state store.

A stage that decides something must go out (a journey step, a segment transition) enqueues
the delivery in the same transaction as the state that caused it (`enqueue(conn, ...)`
inside its `Database.write`), so the delivery exists exactly when that state committed. Each
delivery carries an idempotency key, unique per destination: enqueueing the same key again
does nothing, so a producer that redoes a batch after a crash never sends twice. The key
goes out as the `webhook-id`, so a receiver can drop the duplicates at-least-once delivery
still makes.

A delivery moves `pending → delivering → delivered`, or back to `pending` with a later
`next_attempt_at` after a failure, or to `dead` when retrying is hopeless or used up. A
deliverer claims due rows compare-and-set with a claim token of its own; while a row is
`delivering`, `next_attempt_at` is when that claim expires, so a row whose deliverer died
becomes due again by itself. Results are recorded under the claim (a deliverer whose claim
expired and was taken over cannot overwrite its successor's failure), except success: a
delivery that got a 2xx is delivered, whoever holds the claim. `replay` puts dead letters
back in line.

The outbox is not derived from the log: `persona rebuild` must leave it, and a replayed
producer finds its deliveries already there (same keys) and sends nothing again.

Times are µs since the epoch, like the rest of the state store.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.log.events import now_micros
from persona.storage.sql import Connection, Database, Insert, Migration, Row, chunk_size, chunks, where_in

MIGRATIONS = [
    Migration(700, "webhook delivery outbox", [
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL,"
        " idempotency_key TEXT NOT NULL, payload BLOB NOT NULL, created_at INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending', claim TEXT, last_error TEXT, last_status_code INTEGER,"
        " delivered_at INTEGER, UNIQUE (destination, idempotency_key))",
        "CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at)"
        " WHERE status IN ('pending', 'delivering')",
        "CREATE INDEX deliveries_status ON deliveries (status, destination)",
        "CREATE INDEX deliveries_claim ON deliveries (claim) WHERE claim IS NOT NULL",
    ], postgres=[
        "CREATE TABLE deliveries (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, destination TEXT NOT NULL,"
        " idempotency_key TEXT NOT NULL, payload BYTEA NOT NULL, created_at BIGINT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending', claim TEXT, last_error TEXT, last_status_code INTEGER,"
        " delivered_at BIGINT, UNIQUE (destination, idempotency_key))",
        "CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at)"
        " WHERE status IN ('pending', 'delivering')",
        "CREATE INDEX deliveries_status ON deliveries (status, destination)",
        "CREATE INDEX deliveries_claim ON deliveries (claim) WHERE claim IS NOT NULL",
    ]),
]

PENDING, DELIVERING, DELIVERED, DEAD = "pending", "delivering", "delivered", "dead"
STATUSES = (PENDING, DELIVERING, DELIVERED, DEAD)
LEASE = 60.0  # seconds a claim lasts before the row may be claimed again
MAX_ERROR = 1000  # characters of an error message kept

_COLUMNS = ("id, destination, idempotency_key, payload, created_at, attempts, next_attempt_at, status, claim,"
            " last_error, last_status_code, delivered_at")
_INSERT = Insert("deliveries", (("destination", "text"), ("idempotency_key", "text"), ("payload", "bytea"),
                                ("created_at", "bigint"), ("next_attempt_at", "bigint")),
                 "ON CONFLICT (destination, idempotency_key) DO NOTHING")

# Claiming: pick the due rows, oldest due first, and mark them ours. The UPDATE repeats the
# condition, so a row is taken only if it is still due when updated (compare-and-set). SQLite
# has one writer at a time anyway; on PostgreSQL the rows are locked as picked, skipping those
# another claimer holds, in a CTE materialized once (as a plain `IN (subquery)` the planner may
# run the LIMIT more than once and take more rows than asked).
_DUE = "destination = ? AND status IN ('pending', 'delivering') AND next_attempt_at <= ?"
_CLAIM_SQLITE = (f"WITH picked AS (SELECT id FROM deliveries WHERE {_DUE} ORDER BY next_attempt_at, id LIMIT ?)"
                 " UPDATE deliveries SET status = 'delivering', claim = ?, attempts = attempts + 1,"
                 f" next_attempt_at = ? WHERE id IN (SELECT id FROM picked) AND {_DUE}")
_CLAIM_POSTGRES = (f"WITH picked AS MATERIALIZED (SELECT id FROM deliveries WHERE {_DUE}"
                   " ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED)"
                   " UPDATE deliveries SET status = 'delivering', claim = ?, attempts = attempts + 1,"
                   f" next_attempt_at = ? FROM picked WHERE deliveries.id = picked.id AND {_DUE}")


@dataclass(frozen=True)
class NewDelivery:
    """What a producer enqueues: where to, its idempotency key, and the JSON body (bytes)."""

    destination: str
    key: str
    payload: bytes

    @classmethod
    def json(cls, destination: str, key: str, body: Any) -> NewDelivery:
        return cls(destination, key, msgspec.json.encode(body))


@dataclass(frozen=True)
class Delivery:
    id: int
    destination: str
    key: str                    # the idempotency key, sent as `webhook-id`
    payload: bytes              # the JSON body, sent as is
    created_at: int             # µs
    attempts: int               # claims so far (a claim whose deliverer died counts)
    next_attempt_at: int        # µs; while delivering, when the claim expires
    status: str
    claim: str | None
    last_error: str | None
    last_status_code: int | None
    delivered_at: int | None    # µs

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(int(row[0]), row[1], row[2], bytes(row[3]), int(row[4]), int(row[5]), int(row[6]), row[7],
                   row[8], row[9], None if row[10] is None else int(row[10]),
                   None if row[11] is None else int(row[11]))

    def body(self) -> Any:
        return msgspec.json.decode(self.payload)


def enqueue(conn: Connection, deliveries: Iterable[NewDelivery], *, now: int | None = None,
            dialect: str | None = None) -> int:
    """Add deliveries inside the caller's write transaction (`Database.write(fn)` gives `fn` the
    connection); a key already enqueued for its destination is skipped. Returns how many were new.
    Idempotent, as write functions must be: a retried transaction inserts nothing twice."""
    at = now_micros() if now is None else now
    rows = [(d.destination, d.key, bytes(d.payload), at, at) for d in deliveries]
    return _INSERT.run(conn, dialect or dialect_of(conn), rows)


def dialect_of(conn: Connection) -> str:
    """The engine behind a writer connection: sqlite3's own, or psycopg's behind an adapter."""
    return "sqlite" if isinstance(conn, sqlite3.Connection) else "postgres"


class Outbox:
    """The `deliveries` table of one state store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- producers -------------------------------------------------------------------------------
    def enqueue(self, deliveries: Iterable[NewDelivery], now: int | None = None) -> int:
        """Add deliveries in a transaction of their own; see `enqueue` to add them in yours."""
        rows = list(deliveries)
        dialect = self.db.dialect
        return int(self.db.write(lambda conn: enqueue(conn, rows, now=now, dialect=dialect)))

    # -- deliverers ------------------------------------------------------------------------------
    def claim_due(self, destination: str, now: int | None = None, limit: int = 10,
                  lease: float = LEASE) -> list[Delivery]:
        """Claim up to `limit` of the destination's due deliveries (pending and due, or delivering
        with an expired claim), oldest due first; they are `delivering` under a new claim token
        until `lease` seconds from now. Two deliverers never claim the same row at once."""
        at = now_micros() if now is None else now
        if self.db.query_one(f"SELECT 1 FROM deliveries WHERE {_DUE} LIMIT 1", (destination, at)) is None:
            return []  # the usual answer, from a reader: an idle deliverer writes nothing
        claim = uuid.uuid4().hex
        claim_sql = _CLAIM_POSTGRES if self.db.dialect == "postgres" else _CLAIM_SQLITE

        def write(conn: Connection) -> list[Row]:
            select = f"SELECT {_COLUMNS} FROM deliveries WHERE claim = ? ORDER BY next_attempt_at, id"
            landed = conn.execute(select, (claim,)).fetchall()
            if landed:  # this very claim committed and the transaction is being retried
                return list(landed)
            conn.execute(claim_sql, (destination, at, limit, claim, at + int(lease * 1_000_000), destination, at))
            return list(conn.execute(select, (claim,)).fetchall())

        return [Delivery.from_row(r) for r in self.db.write(write)]

    def mark_delivered(self, delivery_id: int, status_code: int | None = None, at: int | None = None) -> bool:
        """Record a success (whoever holds the claim: it did reach the receiver). False if it
        was already recorded delivered."""
        when = now_micros() if at is None else at
        return bool(self.db.write(lambda conn: conn.execute(
            "UPDATE deliveries SET status = 'delivered', claim = NULL, delivered_at = ?, last_status_code = ?"
            " WHERE id = ? AND status <> 'delivered'", (when, status_code, delivery_id)).rowcount))

    def mark_failed(self, delivery_id: int, claim: str, error: str, *, status_code: int | None = None,
                    retry_at: int | None = None) -> bool:
        """Record a failed attempt under its claim: `pending` again at `retry_at` (µs), or `dead`
        when `retry_at` is None. False if the claim is no longer this deliverer's."""
        status, next_at = (DEAD, None) if retry_at is None else (PENDING, retry_at)
        return bool(self.db.write(lambda conn: conn.execute(
            "UPDATE deliveries SET status = ?, claim = NULL, last_error = ?, last_status_code = ?,"
            " next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ? AND claim = ? AND status = 'delivering'",
            (status, error[:MAX_ERROR], status_code, next_at, delivery_id, claim)).rowcount))

    # -- operators -------------------------------------------------------------------------------
    def get(self, delivery_id: int) -> Delivery | None:
        row = self.db.query_one(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,))
        return Delivery.from_row(row) if row else None

    def deliveries(self, destination: str | None = None, status: str | None = None, limit: int = 100,
             after_id: int = 0) -> list[Delivery]:
        """Deliveries by id, optionally of one destination and/or status; page with `after_id`."""
        where, params = ["id > ?"], [after_id]
        if destination is not None:
            where.append("destination = ?")
            params.append(destination)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        rows = self.db.query(f"SELECT {_COLUMNS} FROM deliveries WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                             (*params, limit))
        return [Delivery.from_row(r) for r in rows]

    def dead_letters(self, destination: str | None = None, limit: int = 100, after_id: int = 0) -> list[Delivery]:
        return self.deliveries(destination, DEAD, limit, after_id)

    def replay(self, ids: Sequence[int] | None = None, destination: str | None = None,
               now: int | None = None) -> int:
        """Put deliveries back in line, due now with their attempts reset: the given ids (dead,
        delivered or pending: an operator may want a delivery sent again; one in flight is left
        alone), or every dead letter of `destination`. Returns how many."""
        if (ids is None) == (destination is None):
            raise ValueError("replay takes ids or a destination")
        at = now_micros() if now is None else now
        dialect = self.db.dialect
        reset = ("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, claim = NULL,"
                 " delivered_at = NULL WHERE ")

        def write(conn: Connection) -> int:
            if destination is not None:
                return int(conn.execute(reset + "destination = ? AND status = 'dead'", (at, destination)).rowcount)
            count = 0
            for chunk in chunks(list(ids or []), chunk_size(dialect)):
                clause, params = where_in(dialect, "id", chunk)
                count += int(conn.execute(reset + f"{clause} AND status <> 'delivering'", (at, *params)).rowcount)
            return count

        return int(self.db.write(write))

    def hasten(self, destination: str, now: int | None = None) -> int:
        """Make the destination's deliveries waiting on a retry due now (its receiver is back)."""
        at = now_micros() if now is None else now
        return int(self.db.write(lambda conn: conn.execute(
            "UPDATE deliveries SET next_attempt_at = ? WHERE destination = ? AND status = 'pending'"
            " AND attempts > 0 AND next_attempt_at > ?", (at, destination, at)).rowcount))

    def counts(self) -> dict[str, dict[str, int]]:
        """destination -> status -> how many deliveries."""
        out: dict[str, dict[str, int]] = {}
        for destination, status, n in self.db.query(
                "SELECT destination, status, count(*) FROM deliveries GROUP BY destination, status"
                " ORDER BY destination, status"):
            out.setdefault(destination, {})[status] = int(n)
        return out

    def prune(self, delivered_before: int) -> int:
        """Forget deliveries delivered before a time (µs); their keys may then be enqueued again."""
        return int(self.db.write(lambda conn: conn.execute(
            "DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < ?", (delivered_before,)).rowcount))
