"""The event log's contract on SQLite: order, dedup, offsets, time ranges, deletion, quarantine."""

from __future__ import annotations

import logging
import threading
import time

import msgspec
import pytest

from persona.config import Config
from persona.engine import Engine
from persona.log.events import to_micros
from persona.log.store import Rejected
from persona.profiles import worker as worker_module
from tests.support.events import BASE, event

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def test_positions_grow_in_append_order_and_reads_resume_from_an_offset(engine: Engine) -> None:
    first = engine.log.append([event("track", user="u1", event="A"), event("track", user="u2", event="B")])
    second = engine.log.append([event("track", user="u3", event="C")])
    assert (first.accepted, first.duplicates, first.last_seq) == (2, 0, 2)
    assert second.last_seq == 3
    assert [e.name for e in engine.log.read(0, 10)] == ["A", "B", "C"]
    assert [e.name for e in engine.log.read(2, 10)] == ["C"]
    assert [e.seq for e in engine.log.read(0, 2)] == [1, 2]


def test_a_message_id_is_stored_once_per_source(engine: Engine) -> None:
    e = event("track", user="u1", event="A")
    assert engine.log.append([e]).accepted == 1
    again = engine.log.append([e])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert engine.log.append([msgspec.structs.replace(e, source_id="ios")]).accepted == 1
    assert engine.log.count() == 2


def test_dedup_survives_a_restart(config: Config) -> None:
    e = event("identify", user="u1", traits={"plan": "pro"})
    with Engine.open(config) as engine:
        engine.log.append([e])
    with Engine.open(config) as engine:
        assert engine.log.append([e]).duplicates == 1
        assert engine.log.count() == 1


def test_read_range_is_by_event_time_not_arrival(engine: Engine) -> None:
    engine.log.append([event("track", user="u", event=name, minutes=m)
                       for name, m in (("late", 120), ("early", 0), ("middle", 60))])
    start, end = to_micros(BASE), to_micros(BASE) + 90 * 60 * 1_000_000
    assert [e.name for e in engine.log.read_range(start, end)] == ["early", "middle"]
    assert [e.name for e in engine.log.read_range(start, end + 10**12, batch=1)] == ["early", "middle", "late"]


def test_deleted_events_are_gone_and_positions_are_not_reused(engine: Engine) -> None:
    engine.log.append([event("track", user="u", event=str(i)) for i in range(3)])
    assert engine.log.delete([2, 3]) == 2
    assert [e.name for e in engine.log.read(0, 10)] == ["0"]
    assert engine.log.append([event("track", user="u", event="new")]).last_seq == 4
    assert [e.seq for e in engine.log.get([1, 2, 4])] == [1, 4]


def test_rejects_are_quarantined_with_the_events_of_the_same_request(engine: Engine) -> None:
    bad = Rejected("default", to_micros(BASE), "userId", "either userId or anonymousId is required", {"type": "x"})
    result = engine.log.append([event("track", user="u", event="ok")], [bad])
    assert result.accepted == 1
    [q] = engine.log.quarantined()
    assert (q.source_id, q.field, q.message) == ("default", "userId", {"type": "x"})
    assert engine.log.quarantined(source_id="other") == []
    assert engine.log.quarantine_count() == 1


def test_erasing_a_profiles_events_and_replaying_forgets_it(engine: Engine) -> None:
    engine.log.append([event("identify", user="gone", anon="a1", traits={"email": "gone@example.com"}),
                       event("track", anon="a1", event="Product Viewed"),
                       event("identify", user="kept", traits={"plan": "pro"})])
    engine.processor.run_until_caught_up()
    profile = engine.profiles.find("user_id:gone")
    seqs = [seq for _, seq in engine.state.timeline(profile.id, None, 100)]
    assert engine.log.delete(seqs) == 2
    engine.rebuild()
    assert engine.state.owner("user_id", "gone") is None
    assert engine.state.owner("email", "gone@example.com") is None
    assert engine.profiles.find("user_id:kept").traits["plan"] == "pro"


def test_the_processor_resumes_from_its_checkpoint_without_applying_twice(config: Config) -> None:
    with Engine.open(config) as engine:
        engine.log.append([event("track", user="u", event="Viewed", minutes=i) for i in range(5)])
        engine.processor.run_until_caught_up()
    with Engine.open(config) as engine:
        engine.log.append([event("track", user="u", event="Viewed", minutes=10 + i) for i in range(3)])
        engine.processor.run_until_caught_up()
        profile = engine.profiles.find("user_id:u")
        assert profile.event_count == 8
        assert profile.event_counts["Viewed"] == 8
        assert engine.processor.lag() == 0


def test_the_running_processor_logs_its_progress(engine: Engine, caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "PROGRESS_EVERY", 0.05)
    stop = threading.Event()
    runner = threading.Thread(target=engine.worker("w1").run, args=(stop,))
    with caplog.at_level(logging.INFO, logger="persona.profiles.worker"):
        runner.start()
        engine.log.append([event("track", user="u", event="Viewed", minutes=i) for i in range(30)])
        deadline = time.monotonic() + 10
        while not any(r.getMessage().startswith("applied") for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        runner.join()
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied")]
    assert line.startswith("applied 30 events in ") and "holding identity, fold:0" in line
    assert engine.profiles.find("user_id:u").event_count == 30  # and the final commit happened on stop
