"""The scheduler on both backends: a due job runs once, whichever runner gets there, and not
again before its interval; failures are recorded and retried; a job that waits is not claimed;
status shows it all (the recommendation training's own tests: test_recs.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from persona.config import Config
from persona.engine import Engine
from persona.jobs.scheduler import RETRY_AFTER_ERROR, Job, Scheduler
from persona.status import status_of
from tests.support.events import event

pytestmark = pytest.mark.backends

SECOND = 1_000_000
EVERY = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000 * SECOND

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SECOND)


@pytest.fixture
def other(config: Config) -> Iterator[Engine]:
    """A second process's view of the same store: its own connections and writer."""
    with Engine.open(config) as engine:
        yield engine


def counting(runs: Counter[str], name: str = "count") -> Job:
    def run() -> str:
        runs[name] += 1
        return f"run {runs[name]}"

    return Job(name, EVERY, run)


def test_a_due_job_runs_once_and_not_again_before_its_interval(engine: Engine, other: Engine) -> None:
    runs: Counter[str] = Counter()
    clock = Clock()
    first = Scheduler([counting(runs)], engine.jobs, "first", clock)
    second = Scheduler([counting(runs)], other.jobs, "second", clock)
    assert first.run_due() == ["count"]  # never ran: due at once
    assert second.run_due() == [] and runs["count"] == 1
    clock.advance(EVERY - 1)
    assert first.run_due() == second.run_due() == []
    clock.advance(2)
    assert second.run_due() == ["count"] and first.run_due() == []
    assert runs["count"] == 2
    record = engine.jobs.get("count")
    assert record is not None and (record.runner, record.summary, record.error) == ("second", "run 2", None)


def test_runners_racing_for_a_due_job_run_it_once(engine: Engine, other: Engine) -> None:
    runs: Counter[str] = Counter()
    clock = Clock()
    runners = [Scheduler([counting(runs)], store.jobs, f"r{i}", clock)
               for i, store in enumerate([engine, other, engine, other])]
    def race(scheduler: Scheduler, start: threading.Barrier, ran: list[list[str]]) -> None:
        start.wait()
        ran.append(scheduler.run_due())

    for _ in range(3):  # three intervals, four runners each time
        start = threading.Barrier(len(runners))
        ran: list[list[str]] = []
        threads = [threading.Thread(target=race, args=(s, start, ran)) for s in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(map(len, ran)) == [0, 0, 0, 1]
        clock.advance(EVERY)
    assert runs["count"] == 3


def test_a_failed_job_is_recorded_and_tried_again_sooner(engine: Engine) -> None:
    calls = []

    def fail() -> str:
        calls.append(1)
        raise RuntimeError("the model broke")

    clock = Clock()
    scheduler = Scheduler([Job("broken", 86_400.0, fail)], engine.jobs, "w", clock)
    assert scheduler.run_due() == ["broken"]
    record = engine.jobs.get("broken")
    assert record is not None and record.error == "RuntimeError: the model broke" and record.finished_at is not None
    clock.advance(RETRY_AFTER_ERROR - 1)
    assert scheduler.run_due() == []
    clock.now = record.finished_at + int(RETRY_AFTER_ERROR * SECOND)
    assert scheduler.run_due() == ["broken"] and len(calls) == 2


def test_a_due_job_that_waits_is_not_claimed_until_nothing_holds_it_back(engine: Engine) -> None:
    runs: Counter[str] = Counter()
    why: list[str | None] = ["the data is not there yet"]
    clock = Clock()
    scheduler = Scheduler([replace(counting(runs), wait=lambda: why[0])], engine.jobs, "w", clock)
    assert scheduler.run_due() == [] and engine.jobs.get("count") is None and not runs
    why[0] = None
    assert scheduler.run_due() == ["count"] and runs["count"] == 1
    why[0] = "busy"
    clock.advance(EVERY)
    assert scheduler.run_due() == [] and runs["count"] == 1  # due again, and waits again
    why[0] = None
    assert scheduler.run_due() == ["count"] and runs["count"] == 2


def test_the_engine_schedules_its_jobs_and_status_shows_them(engine: Engine) -> None:
    """The real thing: each job run in a child process of its own, on its own connections."""
    engine.log.append([event("track", user="u1", event="Order Completed", properties={"revenue": 10})])
    engine.processor.run_until_caught_up()
    assert [j["last_started"] for j in status_of(engine)["jobs"]] == [None, None, None, None]
    stop = threading.Event()
    thread = engine.scheduler("worker-1").start(stop, poll=0.05)
    deadline = time.monotonic() + 120  # four child processes one after another, on a machine maybe busy
    try:
        while not (len(engine.jobs.all()) == 4 and all(r.finished_at for r in engine.jobs.all().values())):
            assert time.monotonic() < deadline, engine.jobs.all()
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join()
    jobs = {j["name"]: j for j in status_of(engine)["jobs"]}
    assert jobs["rfm"]["summary"].startswith("1 customers scored") and jobs["rfm"]["runner"] == "worker-1"
    assert jobs["rfm"]["every"] == 3600 and jobs["personas"]["every"] == 86_400 and jobs["recs"]["every"] == 86_400
    assert jobs["personas"]["summary"].startswith("skipped: only 0 customers")  # one event: left out
    assert jobs["recs"]["summary"].startswith("skipped: no interactions")  # an order without products
    assert jobs["models"]["summary"].startswith("clv: skipped: BG/NBD needs at least 20 customers")
    assert "propensity: skipped: only " in jobs["models"]["summary"] and jobs["models"]["every"] == 3600
    assert engine.model_traits.values("rfm_segment") == {engine.state.all_profiles()[0].id: "Lost"}
    # a rebuild throws model traits away with the rest of the derived state, and the jobs are due again
    engine.rebuild()
    assert engine.model_traits.values("rfm_segment") == {} and engine.jobs.all() == {}
