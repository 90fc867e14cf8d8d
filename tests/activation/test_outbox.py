"""The outbox on both backends: idempotent enqueue (also inside another write), claims that
two deliverers never share, claims that expire, results recorded under the claim, dead
letters, replay, counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona.activation.outbox import DEAD, DELIVERED, DELIVERING, PENDING, NewDelivery, Outbox, enqueue
from persona.storage.sql import Connection, Database
from tests.activation.support import open_state_db

pytestmark = pytest.mark.backends

SECOND = 1_000_000
T0 = 1_800_000_000 * SECOND


@pytest.fixture
def db(tmp_path: Path, store_url: str | None) -> Iterator[Database]:
    database = open_state_db(tmp_path, store_url)
    yield database
    database.close()


@pytest.fixture
def other_db(tmp_path: Path, store_url: str | None, db: Database) -> Iterator[Database]:
    """A second process's view of the same store: its own writer and readers."""
    database = open_state_db(tmp_path, store_url)
    yield database
    database.close()


def new(key: str, destination: str = "crm", body: object = None) -> NewDelivery:
    return NewDelivery.json(destination, key, body if body is not None else {"key": key})


def test_enqueue_is_idempotent_per_destination(db: Database) -> None:
    outbox = Outbox(db)
    assert outbox.enqueue([new("a"), new("b"), new("a")], now=T0) == 2
    assert outbox.enqueue([new("a", body={"changed": True}), new("c")], now=T0) == 1  # a retried producer
    assert outbox.enqueue([new("a", destination="warehouse")], now=T0) == 1         # same key, other destination
    stored = outbox.deliveries()
    assert [(d.destination, d.key) for d in stored] == [("crm", "a"), ("crm", "b"), ("crm", "c"), ("warehouse", "a")]
    first = stored[0]
    assert (first.body(), first.status, first.attempts, first.created_at, first.next_attempt_at) == (
        {"key": "a"}, PENDING, 0, T0, T0)
    assert outbox.counts() == {"crm": {PENDING: 3}, "warehouse": {PENDING: 1}}


def test_enqueue_inside_another_stores_transaction(db: Database) -> None:
    """What a journey stage does: its state and the deliveries it causes commit together, or neither."""
    db.write(lambda conn: conn.execute("CREATE TABLE journey_state (k TEXT PRIMARY KEY)"))

    def commit(conn: Connection) -> int:
        conn.execute("INSERT INTO journey_state VALUES ('x') ON CONFLICT DO NOTHING")
        return enqueue(conn, [new("j1"), new("j2")], now=T0)

    assert db.write(commit) == 2
    assert db.write(commit) == 0  # run again, as a writer does after a lost connection

    def failing(conn: Connection) -> None:
        enqueue(conn, [new("j3")])
        raise RuntimeError("the stage's commit failed")

    with pytest.raises(RuntimeError):
        db.write(failing)
    assert [d.key for d in Outbox(db).deliveries()] == ["j1", "j2"]


def test_claims_are_exclusive_and_expire(db: Database, other_db: Database) -> None:
    first, second = Outbox(db), Outbox(other_db)
    first.enqueue([new(f"k{i}") for i in range(5)], now=T0)
    a = first.claim_due("crm", T0, limit=3, lease=60)
    b = second.claim_due("crm", T0, limit=3, lease=60)
    assert [d.key for d in a] == ["k0", "k1", "k2"] and [d.key for d in b] == ["k3", "k4"]
    assert {d.status for d in a + b} == {DELIVERING} and {d.attempts for d in a + b} == {1}
    assert len({d.claim for d in a}) == 1 and a[0].claim != b[0].claim
    assert second.claim_due("crm", T0 + 59 * SECOND) == []
    assert second.claim_due("other", T0) == []
    # The first deliverer died: its claims expire and the rows are claimed again, a second attempt.
    again = second.claim_due("crm", T0 + 61 * SECOND, limit=10, lease=60)
    assert [d.key for d in again] == ["k0", "k1", "k2", "k3", "k4"] and {d.attempts for d in again} == {2}
    # The old claim cannot record a failure over its successor's...
    assert not first.mark_failed(a[0].id, a[0].claim or "", "late", retry_at=T0)
    assert first.get(a[0].id).status == DELIVERING  # type: ignore[union-attr]
    # ...but a success is a success, whoever holds the claim.
    assert first.mark_delivered(a[0].id, 200, at=T0 + 62 * SECOND)
    assert not second.mark_delivered(a[0].id, 200)
    assert not second.mark_failed(again[0].id, again[0].claim or "", "too late")
    done = first.get(a[0].id)
    assert done is not None and (done.status, done.delivered_at, done.claim) == (DELIVERED, T0 + 62 * SECOND, None)


def test_racing_claimers_share_nothing(db: Database, other_db: Database) -> None:
    Outbox(db).enqueue([new(f"k{i:03}") for i in range(300)], now=T0)
    outboxes = [Outbox(db), Outbox(other_db), Outbox(db), Outbox(other_db)]
    start = threading.Barrier(len(outboxes))
    claimed: list[list[str]] = [[] for _ in outboxes]

    def claim(i: int) -> None:
        start.wait()
        while batch := outboxes[i].claim_due("crm", T0, limit=7):
            claimed[i] += [d.key for d in batch]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(outboxes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [key for keys in claimed for key in keys]
    assert sorted(every) == [f"k{i:03}" for i in range(300)]  # each exactly once


def test_failures_retry_die_and_replay(db: Database) -> None:
    outbox = Outbox(db)
    outbox.enqueue([new("a"), new("b"), new("c", destination="warehouse")], now=T0)
    a, b = outbox.claim_due("crm", T0, limit=2)
    assert outbox.mark_failed(a.id, a.claim or "", "HTTP 503", status_code=503, retry_at=T0 + 10 * SECOND)
    assert outbox.mark_failed(b.id, b.claim or "", "HTTP 400: no", status_code=400)  # dead
    assert outbox.claim_due("crm", T0 + 9 * SECOND) == []
    (retried,) = outbox.claim_due("crm", T0 + 10 * SECOND)
    assert (retried.key, retried.attempts, retried.last_error, retried.last_status_code) == ("a", 2, "HTTP 503", 503)
    assert outbox.mark_failed(retried.id, retried.claim or "", "gave up")
    c, = outbox.claim_due("warehouse", T0)
    outbox.mark_failed(c.id, c.claim or "", "HTTP 404", status_code=404)
    assert outbox.counts() == {"crm": {DEAD: 2}, "warehouse": {DEAD: 1}}
    assert [d.key for d in outbox.dead_letters()] == ["a", "b", "c"]
    assert [d.key for d in outbox.dead_letters("crm")] == ["a", "b"]

    assert outbox.replay(destination="crm", now=T0 + 100 * SECOND) == 2
    replayed = outbox.deliveries("crm")
    assert {(d.status, d.attempts, d.next_attempt_at) for d in replayed} == {(PENDING, 0, T0 + 100 * SECOND)}
    assert replayed[1].last_error == "HTTP 400: no"  # kept until the next attempt says otherwise
    assert outbox.replay(ids=[c.id], now=T0) == 1
    assert outbox.counts() == {"crm": {PENDING: 2}, "warehouse": {PENDING: 1}}
    with pytest.raises(ValueError):
        outbox.replay()


def test_replay_by_id_resends_a_delivered_one_but_not_one_in_flight(db: Database) -> None:
    outbox = Outbox(db)
    outbox.enqueue([new("a"), new("b")], now=T0)
    a, b = outbox.claim_due("crm", T0, limit=2)
    outbox.mark_delivered(a.id, 204, at=T0)
    assert outbox.replay(ids=[a.id, b.id], now=T0) == 1  # b is being delivered
    again = outbox.get(a.id)
    assert again is not None and (again.status, again.delivered_at) == (PENDING, None)


def test_prune_forgets_old_deliveries(db: Database) -> None:
    outbox = Outbox(db)
    outbox.enqueue([new("a"), new("b")], now=T0)
    a, b = outbox.claim_due("crm", T0, limit=2)
    outbox.mark_delivered(a.id, 200, at=T0)
    outbox.mark_delivered(b.id, 200, at=T0 + 10 * SECOND)
    assert outbox.prune(delivered_before=T0 + SECOND) == 1
    assert [d.key for d in outbox.deliveries()] == ["b"]
