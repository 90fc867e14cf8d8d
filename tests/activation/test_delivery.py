"""The deliverer against a real receiver on a socket, on both backends: signed deliveries,
retries with backoff, dead letters and replay, a receiver that is down and comes back, two
deliverers sharing one outbox, and the per-destination concurrency limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from persona.activation.delivery import Deliverer
from persona.activation.outbox import DEAD, DELIVERED, NewDelivery, Outbox
from persona.activation.webhooks import Destination, new_secret
from persona.storage.sql import Database
from tests.activation.support import Receiver, free_port, open_state_db

pytestmark = pytest.mark.backends

FAST = {"timeout": 2.0, "backoff_base": 0.02, "backoff_max": 0.1}


@pytest.fixture
def db(tmp_path: Path, store_url: str | None) -> Iterator[Database]:
    database = open_state_db(tmp_path, store_url)
    yield database
    database.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(new_secret()).start()
    yield r
    r.stop()


def destination(receiver: Receiver, **settings: float) -> Destination:
    options: dict[str, float] = {**FAST, **settings}
    return Destination("crm", receiver.url, receiver.secret, options["timeout"],
                       int(options.get("max_concurrency", 4)), int(options.get("max_attempts", 8)),
                       options["backoff_base"], options["backoff_max"])


def enqueue(outbox: Outbox, n: int, prefix: str = "event") -> list[str]:
    keys = [f"{prefix}:{i}" for i in range(n)]
    assert outbox.enqueue([NewDelivery.json("crm", key, {"key": key, "n": i}) for i, key in enumerate(keys)]) == n
    return keys


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_deliveries_arrive_signed_once_each(db: Database, receiver: Receiver,
                                           caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(db)
    keys = enqueue(outbox, 20)
    caplog.set_level(logging.INFO, "persona.activation.delivery")
    with Deliverer(outbox, [destination(receiver)], poll_interval=0.02):
        wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 20}})
    assert receiver.ids() == dict.fromkeys(keys, 1) and receiver.bad_signatures == 0
    assert {msgspec.json.decode(body)["key"] for _, body in receiver.received} == set(keys)
    stored = outbox.deliveries()
    assert {(d.attempts, d.last_status_code, d.last_error) for d in stored} == {(1, 204, None)}
    assert "delivered, HTTP 204, attempt 1" in caplog.text


def test_retries_with_backoff_until_the_receiver_takes_it(db: Database, receiver: Receiver,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(db)
    receiver.fail_first = 3
    (key,) = enqueue(outbox, 1)
    caplog.set_level(logging.INFO, "persona.activation.delivery")
    with Deliverer(outbox, [destination(receiver)], poll_interval=0.02):
        wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 1}})
    (delivered,) = outbox.deliveries()
    assert (delivered.attempts, delivered.last_error) == (4, "HTTP 500")  # the last failure stays on record
    assert receiver.requests == 4 and receiver.ids() == {key: 1}
    assert caplog.text.count("HTTP 500; attempt") == 3 and "retry in" in caplog.text


def test_dead_after_max_attempts_then_replay_delivers(db: Database, receiver: Receiver,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(db)
    receiver.fail_first, receiver.fail_status = 3, 503
    (key,) = enqueue(outbox, 1)
    caplog.set_level(logging.INFO, "persona.activation.delivery")
    deliverer = Deliverer(outbox, [destination(receiver, max_attempts=3)], poll_interval=0.02)
    with deliverer:
        wait_for(lambda: outbox.counts() == {"crm": {DEAD: 1}})
        (dead,) = outbox.dead_letters("crm")
        assert (dead.attempts, dead.last_status_code) == (3, 503)
        assert dead.last_error == "HTTP 503; gave up after 3 attempts"
        wait_for(lambda: "dead: HTTP 503; gave up after 3 attempts" in caplog.text)  # logged after the commit
        assert receiver.ids() == {}
        assert outbox.replay(destination="crm") == 1
        wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 1}})
    assert receiver.ids() == {key: 1} and receiver.requests == 4


def test_a_request_that_cannot_succeed_is_dead_at_once(db: Database, receiver: Receiver) -> None:
    outbox = Outbox(db)
    receiver.fail_first, receiver.fail_status = 1, 422
    enqueue(outbox, 1)
    Deliverer(outbox, [destination(receiver)]).run_once()
    (dead,) = outbox.dead_letters()
    assert (dead.attempts, dead.last_status_code, dead.last_error) == (1, 422, "HTTP 422")
    # A receiver that rejects the signature is dead at once too (401): the secret needs fixing.
    outbox.enqueue([NewDelivery.json("crm", "wrong-secret", {})])
    Deliverer(outbox, [Destination("crm", receiver.url, new_secret(), **FAST)]).run_once()
    assert outbox.counts() == {"crm": {DEAD: 2}} and receiver.bad_signatures == 1


def test_a_receiver_that_is_down_loses_nothing(db: Database) -> None:
    outbox = Outbox(db)
    receiver = Receiver(new_secret(), port=free_port())  # nothing listens on the port yet
    keys = enqueue(outbox, 10)
    deliverer = Deliverer(outbox, [destination(receiver, max_attempts=1000)], poll_interval=0.02)
    with deliverer:
        wait_for(lambda: sum(d.attempts >= 1 for d in outbox.deliveries()) >= 5)
        assert all("ConnectError" in d.last_error for d in outbox.deliveries() if d.last_error)
        receiver.start()
        try:
            wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 10}})
        finally:
            receiver.stop()
    assert receiver.ids() == dict.fromkeys(keys, 1)


def test_two_deliverers_send_each_delivery_once(db: Database, tmp_path: Path, store_url: str | None,
                                                receiver: Receiver) -> None:
    other = open_state_db(tmp_path, store_url)  # another process's connections to the same store
    try:
        first, second = Outbox(db), Outbox(other)
        keys = enqueue(first, 200)
        receiver.delay = 0.002
        with Deliverer(first, [destination(receiver)], poll_interval=0.01), \
                Deliverer(second, [destination(receiver)], poll_interval=0.01):
            wait_for(lambda: first.counts() == {"crm": {DELIVERED: 200}})
        assert receiver.ids() == dict.fromkeys(keys, 1)
        assert receiver.requests == 200
    finally:
        other.close()


def test_concurrency_per_destination_is_limited(db: Database, receiver: Receiver) -> None:
    outbox = Outbox(db)
    enqueue(outbox, 24)
    receiver.delay = 0.1
    with Deliverer(outbox, [destination(receiver, max_concurrency=3)], poll_interval=0.02) as deliverer:
        wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 24}})
        assert deliverer.in_flight() == 0
    assert receiver.max_concurrent == 3


def test_a_slow_receiver_times_out_and_is_retried(db: Database, receiver: Receiver) -> None:
    outbox = Outbox(db)
    (key,) = enqueue(outbox, 1)
    receiver.delay = 0.5
    deliverer = Deliverer(outbox, [destination(receiver, timeout=0.1)])
    deliverer.run_once()
    (slow,) = outbox.deliveries()
    assert slow.status == "pending" and (slow.last_error or "").startswith("timed out after 0.1 s")
    receiver.delay = 0
    wait_for(lambda: deliverer.run_once() == 0 and outbox.counts() == {"crm": {DELIVERED: 1}}, timeout=5)
    deliverer.stop()
    assert key in receiver.ids()  # the timed-out request may have been accepted too: at-least-once


def test_a_receiver_that_is_down_pauses_its_destination_and_its_return_drains_the_backlog(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """Long backoffs and few attempts: each delivery alone would be dead after 3 attempts, or wait
    up to a minute for its retry once the receiver is back. Paused, they spend no attempts; the
    probe that gets through brings every waiting retry forward."""
    outbox = Outbox(db)
    receiver = Receiver(new_secret(), port=free_port())  # nothing listens on the port yet
    keys = enqueue(outbox, 30)
    caplog.set_level(logging.INFO, "persona.activation.delivery")
    slow = destination(receiver, backoff_base=30.0, backoff_max=60.0, max_attempts=3)
    deliverer = Deliverer(outbox, [slow], poll_interval=0.02)
    with deliverer:
        wait_for(lambda: deliverer.health["crm"].pauses >= 2)  # down, and the first probe failed too
        assert "crm is down (5 failures in a row" in caplog.text
        assert sum(d.attempts for d in outbox.deliveries()) <= 5 + 4 + 1  # the failures, those in flight, a probe
        assert DEAD not in outbox.counts()["crm"]
        receiver.start()
        try:
            started = time.monotonic()
            wait_for(lambda: outbox.counts() == {"crm": {DELIVERED: 30}}, timeout=15)
            assert time.monotonic() - started < 2 * 2 + 2  # the next probe (at most 2 s away), then at once
        finally:
            receiver.stop()
    assert receiver.ids() == dict.fromkeys(keys, 1)
    assert "crm answers again" in caplog.text and deliverer.health["crm"].failures == 0
