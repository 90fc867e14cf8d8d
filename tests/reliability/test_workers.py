"""Several `persona worker` processes share the processing, join, leave and die mid-way, and end
in exactly the state a single-process replay of the same log produces.

The stream is merge-heavy (few users, many devices and shared emails, aliases, late events),
so identity merges join profiles whose fragments live in different partitions, owned by
different workers, all the time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona.config import Config
from persona.engine import Engine
from persona.errors import StoreError
from persona.segments.stage import now_micros
from persona.segments.verify import verify
from persona.status import processing_of
from persona.synth.definitions import random_definitions
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.support.audiences import announcements, check_announcements, shop_stream
from tests.support.live import TEST_ENV, start_server
from tests.support.state import snapshot
from tests.support.streams import random_stream

pytestmark = [pytest.mark.backends, pytest.mark.slow]


class Workers:
    """`persona worker` child processes on one store, with their logs in tmp_path."""

    def __init__(self, config: Config, tmp_path: Path, segment_time_check: str = "60") -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.segment_time_check = segment_time_check
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, worker_id: str) -> None:
        env = {**os.environ, **TEST_ENV, "PERSONA_BATCH_SIZE": "50", "PERSONA_COMMIT_INTERVAL": "0.02",
               "PERSONA_LOG_LEVEL": "INFO", "PERSONA_SEGMENT_TIME_CHECK": self.segment_time_check}
        with open(self.tmp_path / f"{worker_id}.log", "ab") as log:
            self.procs[worker_id] = subprocess.Popen(
                [sys.executable, "-m", "persona", "worker", "--id", worker_id, "--store", self.config.store_url],
                stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self, worker_id: str) -> None:
        self.procs[worker_id].kill()  # kill -9: no commit, no hand-back
        self.procs.pop(worker_id).wait()

    def stop(self, worker_id: str) -> None:
        proc = self.procs.pop(worker_id)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, self.log(worker_id)

    def stop_all(self) -> None:
        for worker_id in list(self.procs):
            self.stop(worker_id)

    def log(self, worker_id: str) -> str:
        return (self.tmp_path / f"{worker_id}.log").read_text()[-3000:]


def owners(engine: Engine) -> dict[str, str | None]:
    processing = processing_of(engine)
    found = {f"fold:{p['partition']}": p["owner"] for p in processing["partitions"]}
    found["identity"] = processing["identity"]["owner"]
    return found


def wait_for(condition: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(0.05)
    return time.monotonic() - started


def test_workers_that_join_leave_and_die_end_in_the_single_process_state(
        engine: Engine, config: Config, tmp_path: Path) -> None:
    events = random_stream(random.Random(2026), 6000, users=150, devices=600, emails=100)
    parts = [events[i::4] for i in range(4)]
    workers = Workers(config, tmp_path)
    try:
        workers.start("w1")
        workers.start("w2")
        engine.log.append(parts[0])
        wait_for(lambda: set(owners(engine).values()) == {"w1", "w2"}, 30, "w1 and w2 to share the work")
        wait_for(lambda: processing_of(engine)["position"] > 0, 30, "processing to start")

        workers.kill("w1")  # mid-way, with uncommitted work and leases held
        engine.log.append(parts[1])
        moved = wait_for(lambda: set(owners(engine).values()) == {"w2"}, 30, "w1's partitions to move to w2")
        assert moved < 5, f"partitions took {moved:.1f} s to move"

        workers.start("w3")
        workers.start("w4")
        engine.log.append(parts[2])
        wait_for(lambda: {"w3", "w4"} <= set(owners(engine).values()), 30, "w3 and w4 to get partitions")
        workers.stop("w2")  # a graceful leave hands its leases over
        engine.log.append(parts[3])

        wait_for(lambda: processing_of(engine)["lag"] == 0, 120, "the workers to catch up")
        assert set(owners(engine).values()) <= {"w3", "w4"}
        workers.stop_all()
    finally:
        for worker_id in list(workers.procs):
            workers.kill(worker_id)

    shared = snapshot(engine)
    assert shared["counts"].merges > 200 and shared["counts"].profiles > 20
    engine.rebuild()  # one process replays the same log from nothing
    assert snapshot(engine) == shared


def test_a_worker_killed_while_keeping_audiences_announces_nothing_twice(
        engine: Engine, config: Config, tmp_path: Path) -> None:
    """Definitions live while the worker holding the audience stage dies mid-way: the next one picks the
    stage up from its checkpoint, every transition is announced once, numbered without gaps, and the live
    state equals the batch evaluation of the log."""
    rng = random.Random(4)
    engine.definitions.apply(random_definitions(rng, segments=8, computed=4))
    events = shop_stream(rng, 3000)
    workers = Workers(config, tmp_path, segment_time_check="0.5")
    try:
        workers.start("w1")
        workers.start("w2")
        engine.log.append(events[:1500])
        wait_for(lambda: processing_of(engine)["audiences"]["position"] > 0, 30, "audiences to start")
        holder = processing_of(engine)["audiences"]["owner"]
        workers.kill(holder)  # mid-way through the log, between announcing and committing perhaps
        engine.log.append(events[1500:])
        workers.start("w3")
        wait_for(lambda: processing_of(engine)["lag"] == 0, 120, "the workers to catch up")
        wait_for(lambda: "w3" in processing_of(engine)["workers"], 30, "w3 to join")  # not stopped mid-start
        assert processing_of(engine)["audiences"]["owner"] != holder
        workers.stop_all()
    finally:
        for worker_id in list(workers.procs):
            workers.kill(worker_id)

    members = {pid: set(engine.audiences.memberships(pid)) for pid in (p.id for p in engine.state.all_profiles())}
    assert sum(map(len, members.values())) > 50
    check_announcements(engine, members)
    assert len(announcements(engine)) == len(set(announcements(engine)))
    report = verify(engine.log, engine.state, engine.audiences, engine.definitions, engine.model_traits, now_micros())
    assert report.segments == [] and report.computed == [], (report.segments[:5], report.computed[:5])
    assert report.left_out < report.profiles // 10


def test_api_nodes_and_a_worker_share_one_store(config: Config, tmp_path: Path) -> None:
    """The deployment the README shows: `serve --role api` nodes take events and serve reads,
    a `persona worker` processes; an event sent to one node is readable from the other."""
    env = {"PERSONA_STORE": config.store_url}
    nodes = [start_server(tmp_path / f"api{i}", WRITE_KEY, SECRET_KEY, extra_env=env, args=["--role", "api"])
             for i in range(2)]
    workers = Workers(config, tmp_path)
    try:
        workers.start("w1")
        sent = httpx.post(f"{nodes[0].url}/v1/batch", auth=(WRITE_KEY, ""), json={"batch": [
            {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
            {"type": "track", "anonymousId": "a1", "event": "Order Completed", "properties": {"revenue": 5}}]})
        assert sent.status_code == 200
        with nodes[1].reader() as reader:
            wait_for(lambda: reader.get("/readyz").json()["checks"]["lag"] == 0, 30, "the worker to process")
            profile = reader.get("/v1/profiles/anonymous_id:a1").json()
            status = reader.get("/v1/status").json()["processor"]
        assert profile["traits"] == {"plan": "pro"} and profile["orders"]["revenue"] == 5
        assert status["workers"] == ["w1"] and status["identity"]["owner"] == "w1"
        assert {p["owner"] for p in status["partitions"]} == {"w1"}
    finally:
        workers.stop_all()
        for node in nodes:
            node.stop()


def test_rebuild_refuses_while_a_worker_holds_the_store(engine: Engine) -> None:
    stop = threading.Event()
    worker = engine.worker("busy")
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: worker.held() != "nothing", 10, "the worker to take its leases")
        with pytest.raises(StoreError, match="stop it first"):
            engine.rebuild()
    finally:
        stop.set()
        thread.join()
    assert engine.rebuild() == 0  # and runs once the worker has handed everything back


def test_serve_runs_its_processor_in_a_thread_when_told(config: Config, tmp_path: Path) -> None:
    server = start_server(tmp_path / "serve", WRITE_KEY, SECRET_KEY,
                          extra_env={"PERSONA_STORE": config.store_url, "PERSONA_PROCESSOR": "thread"})
    try:
        sent = httpx.post(f"{server.url}/v1/track", auth=(WRITE_KEY, ""),
                          json={"userId": "u1", "event": "Order Completed", "properties": {"revenue": 7}})
        assert sent.status_code == 200
        status = server.wait_processed(timeout=30)
        assert status["processor"]["mode"] == "thread" and status["processor"]["identity"]["owner"].startswith("serve-")
        with server.reader() as reader:
            assert reader.get("/v1/profiles/user_id:u1").json()["orders"]["revenue"] == 7
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_path.read_text()[-3000:]
