"""PostgreSQL restarts under load: requests wait and retry, nothing acknowledged is lost or doubled.

A real `persona serve` on PostgreSQL takes batches from two writers while the PostgreSQL
server itself is restarted. Writers behave like Segment's SDKs: a batch that fails is sent
again with the same messageIds. Afterwards every acknowledged messageId is in the log once,
every event is applied to profiles exactly once, and the state equals a fresh replay.

This restarts the PostgreSQL server, so outside CI it runs only when asked to
(PERSONA_TEST_RESTART_POSTGRES=1); the restart command can be set in
PERSONA_TEST_POSTGRES_RESTART_COMMAND.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona.config import load_config
from persona.engine import Engine
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.support.backends import postgres_schema
from tests.support.live import TEST_ENV, start_server
from tests.support.state import snapshot

pytestmark = pytest.mark.slow

BATCH = 50


def restart_command() -> str:
    command = os.environ.get("PERSONA_TEST_POSTGRES_RESTART_COMMAND")
    if command:
        return command
    versions = sorted(Path(p).name for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        pytest.fail("no local PostgreSQL cluster to restart; set PERSONA_TEST_POSTGRES_RESTART_COMMAND")
    return f"pg_ctlcluster --skip-systemctl-redirect {versions[-1]} main restart"


@pytest.fixture
def restartable() -> str:
    if os.environ.get("CI") != "true" and os.environ.get("PERSONA_TEST_RESTART_POSTGRES") != "1":
        pytest.skip("restarts the PostgreSQL server: set PERSONA_TEST_RESTART_POSTGRES=1 (CI always runs it)")
    return restart_command()


def batches(writer: int) -> list[list[dict[str, Any]]]:
    out = []
    for b in range(10_000):
        out.append([{"type": "track" if i % 3 else "identify", "messageId": f"w{writer}-{b}-{i}",
                     "userId": f"u{(writer * 7 + b * 13 + i) % 300}", "anonymousId": f"a{(b + i) % 700}",
                     "event": "Order Completed", "properties": {"revenue": i + 1}, "traits": {"plan": f"p{b % 3}"}}
                    for i in range(BATCH)])
    return out


class Writer(threading.Thread):
    """Sends batches until stopped, retrying each until it is acknowledged (as the SDKs do)."""

    def __init__(self, url: str, number: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.number = number
        self.acked: list[str] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, auth=(WRITE_KEY, ""), timeout=120) as client:
            for batch in batches(self.number):
                while True:
                    try:
                        if client.post("/v1/batch", json={"batch": batch}).status_code == 200:
                            self.acked.extend(m["messageId"] for m in batch)
                            break
                    except httpx.TransportError:
                        pass
                    self.failures += 1
                    time.sleep(0.2)
                if self.stop.is_set():
                    return


def test_a_postgresql_restart_under_load_loses_and_doubles_nothing(restartable: str, tmp_path: Path) -> None:
    with postgres_schema() as store:
        env = {"PERSONA_STORE": store, "PERSONA_COMMIT_INTERVAL": "0.05"}
        server = start_server(tmp_path / "live", WRITE_KEY, SECRET_KEY, extra_env=env)
        # and a `persona worker` beside the server's own processor: they share the partitions
        with open(tmp_path / "worker.log", "wb") as worker_log:
            worker = subprocess.Popen([sys.executable, "-m", "persona", "worker", "--id", "w1"],
                                      env={**os.environ, **TEST_ENV, **env, "PERSONA_LOG_LEVEL": "INFO"},
                                      stdout=worker_log, stderr=subprocess.STDOUT)
        writers = [Writer(server.url, n) for n in range(2)]
        try:
            for w in writers:
                w.start()
            while sum(len(w.acked) for w in writers) < 4000:
                time.sleep(0.05)
            acked_before = sum(len(w.acked) for w in writers)
            subprocess.run(restart_command(), shell=True, check=True, timeout=60)
            while sum(len(w.acked) for w in writers) < acked_before + 4000:  # it carries on afterwards
                time.sleep(0.05)
            for w in writers:
                w.stop.set()
            for w in writers:
                w.join(timeout=120)
            server.wait_processed(timeout=120)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]  # it rode the restart out
        finally:
            worker.send_signal(signal.SIGINT)
            worker_exit = worker.wait(timeout=60)
            server.stop()
        assert worker_exit == 0, (tmp_path / "worker.log").read_text()[-3000:]
        log = server.log_path.read_text()
        assert server.process.returncode == 0, log[-3000:]
        # The restart did cut the server's processor off: it noticed either through its lease session
        # or by finding that the worker had taken its partitions meanwhile (which comes first is timing).
        assert "retrying" in log and ("lost its leases" in log or "another worker committed" in log), log[-3000:]

        acked = [m for w in writers for m in w.acked]
        assert len(acked) == len(set(acked)) >= 8000
        with Engine.open(load_config(env={}, store=store, data_dir=tmp_path / "check")) as engine:
            stored = engine.log_db.query("SELECT message_id FROM events")
            assert sorted(r[0] for r in stored) == sorted(acked)  # each acked message once, nothing else
            live = snapshot(engine)
            assert sum(p["event_count"] for p in live["profiles"].values()) == len(acked)  # applied once
            engine.rebuild()
            assert snapshot(engine) == live
