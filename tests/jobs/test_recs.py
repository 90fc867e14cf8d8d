"""The scheduled recommendation training on both backends: it waits for product events and for
processing to keep up, trains once whichever runner gets there, and a Recommender (a running
server's) serves the set it saved; a live server does it all by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persona.config import Config, load_config
from persona.engine import Engine
from persona.errors import ConfigError
from persona.jobs.scheduler import Scheduler
from persona.recommend.store import Recommender
from persona.status import jobs_of
from persona.synth import Workload
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.recommend.shop import fill_shop
from tests.support.events import event
from tests.support.live import start_server

pytestmark = pytest.mark.backends


@pytest.fixture
def other(config: Config) -> Iterator[Engine]:
    """A second process's view of the same store: its own connections and writer."""
    with Engine.open(config) as engine:
        yield engine


def recs_only(engine: Engine, runner: str = "w") -> Scheduler:
    """The engine's real `recs` job (a child process per run), without RFM and personas beside it."""
    return Scheduler([engine.scheduler(runner).jobs["recs"]], engine.jobs, runner)


def waiting(engine: Engine) -> str | None:
    return next(j for j in jobs_of(engine) if j["name"] == "recs")["waiting"]


def test_an_empty_store_waits_for_product_events_without_running_anything(engine: Engine) -> None:
    scheduler = recs_only(engine)
    assert scheduler.run_due() == [] and engine.jobs.get("recs") is None  # no child process, no record
    assert waiting(engine) == "no product events in the log yet"
    engine.log.append([event("identify", user="u1", traits={"email": "u1@example.com"}),
                       event("track", user="u1", event="Signed Up")])
    engine.processor.run_until_caught_up()
    assert scheduler.run_due() == [] and waiting(engine) == "no product events in the log yet"


def test_a_burst_being_processed_holds_the_training_back(config: Config) -> None:
    with Engine.open(config.with_overrides(batch_size=2)) as engine:
        scheduler = recs_only(engine)
        engine.log.append([event("track", user=f"u{n}", event="Product Viewed", properties={"product_id": "p1"})
                           for n in range(3)])
        assert scheduler.run_due() == [] and engine.jobs.get("recs") is None
        assert waiting(engine) == "processing is 3 events behind"
        engine.processor.run_until_caught_up()
        assert waiting(engine) is None  # due, and nothing holds it back: the next look runs it


def test_orders_without_products_are_skipped_and_recorded_not_an_error(engine: Engine) -> None:
    engine.log.append([event("track", user="u1", event="Order Completed", properties={"revenue": 10})])
    engine.processor.run_until_caught_up()
    assert recs_only(engine).run_due() == ["recs"]
    record = engine.jobs.get("recs")
    assert record is not None and record.error is None
    assert record.summary is not None and record.summary.startswith("skipped: no interactions in the log yet")
    assert engine.rec_models.ids() == []


def test_the_scheduled_training_saves_a_set_that_a_recommender_serves(engine: Engine) -> None:
    fill_shop(engine, customers=60, days=10)
    recommender = Recommender(engine.rec_models)  # as in a server that started before any training
    scheduler = recs_only(engine)
    assert scheduler.run_due() == ["recs"]
    record = engine.jobs.get("recs")
    assert record is not None and record.error is None and record.runner == "w"
    assert record.summary is not None and record.summary.startswith("model set #1: ")
    assert engine.rec_models.ids() == [1]
    models = recommender.current()
    assert models.summary["id"] == 1 and models.summary["interactions"] > 0
    user = models.histories.user_ids[0]
    assert len(models.for_user(user, 10)) == 10
    assert scheduler.run_due() == []  # not again before a day has passed
    job = next(j for j in jobs_of(engine) if j["name"] == "recs")
    assert job["every"] == 86_400 and job["summary"] == record.summary and job["waiting"] is None


def test_runners_racing_for_the_training_run_it_once(engine: Engine, other: Engine) -> None:
    fill_shop(engine, customers=40, days=5)
    runners = [recs_only(store, f"r{i}") for i, store in enumerate([engine, other, engine, other])]
    start = threading.Barrier(len(runners))
    ran: list[list[str]] = []

    def race(scheduler: Scheduler) -> None:
        start.wait()
        ran.append(scheduler.run_due())

    threads = [threading.Thread(target=race, args=(s,)) for s in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(len, ran)) == [0, 0, 0, 1]
    assert engine.rec_models.ids() == [1]
    record = engine.jobs.get("recs")
    assert record is not None and record.runner in {"r0", "r1", "r2", "r3"} and record.summary is not None
    assert record.summary.startswith("model set #1: ")


def test_recs_retrain_zero_turns_the_job_off(config: Config) -> None:
    with Engine.open(config.with_overrides(recs_retrain=0.0)) as engine:
        assert list(engine.scheduler("w").jobs) == ["rfm", "personas", "models"]
        assert [j["name"] for j in jobs_of(engine)] == ["rfm", "personas", "models"]
    assert load_config(env={"PERSONA_RECS_RETRAIN": "3600"}).recs_retrain == 3600
    with pytest.raises(ConfigError, match="recs_retrain must be 0"):
        load_config(env={"PERSONA_RECS_RETRAIN": "-1"})


@pytest.mark.slow
def test_a_server_trains_by_itself_once_the_events_are_processed_and_serves_the_models(tmp_path: Path) -> None:
    server = start_server(tmp_path / "live", WRITE_KEY, SECRET_KEY, extra_env={"PERSONA_RECS_RETRAIN": "3600"})
    try:
        with server.reader() as reader:
            assert reader.get("/v1/recommendations/user_id:nobody").status_code == 503
            recs = next(j for j in reader.get("/v1/status").json()["jobs"] if j["name"] == "recs")
            assert recs["last_started"] is None and recs["waiting"] == "no product events in the log yet"
            workload = Workload(seed=3, customers=40, days=5)
            for batch in workload.batches(size=500):
                response = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
                assert response.status_code == 200, response.text
            server.wait_processed()
            deadline = time.monotonic() + 90  # the run's child process, then the server's look for a newer set
            while True:
                answer = reader.get("/v1/recommendations/user_id:nobody?k=5")
                recs = next(j for j in reader.get("/v1/status").json()["jobs"] if j["name"] == "recs")
                if answer.status_code == 200 and recs.get("summary"):
                    break
                assert answer.status_code in (200, 503), answer.text  # 503: no set trained yet
                assert time.monotonic() < deadline, server.log_path.read_text()[-3000:]
                time.sleep(0.2)
            assert answer.json()["model"] == 1 and len(answer.json()["data"]) == 5
            assert recs["summary"].startswith("model set #1: ") and recs["runner"].startswith("serve-")
            assert recs["every"] == 3600 and recs["waiting"] is None
    finally:
        server.stop()
