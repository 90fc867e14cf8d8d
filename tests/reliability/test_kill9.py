"""kill -9 under load: every acknowledged event survives, exactly once, and the profiles a
restarted server derives equal a fresh replay of the log.

Writers post batches of 100 events (identifies that stitch and merge profiles, tracks,
orders, aliases) while the server is killed without warning. A 200 promises the batch is
on disk; a request cut off by the kill may or may not have landed, but only as a whole:
a batch is one transaction.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona.config import load_config
from persona.engine import Engine
from persona.profiles.reader import profile_json
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.support.live import LiveServer, start_server

BATCH = 100
WRITERS = 2
KILL_AFTER = 40  # acknowledged batches
START = datetime(2026, 9, 1, tzinfo=UTC)


def workload(writer: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Endless batches of seeded events over a small population, so identities collide and merge."""
    rng = random.Random(writer)
    for number in range(10_000):
        batch = []
        for i in range(BATCH):
            user, anon = f"u{rng.randrange(150)}", f"a{rng.randrange(500)}"
            when = (START + timedelta(seconds=rng.randrange(86_400))).isoformat()
            message: dict[str, Any] = {"messageId": f"w{writer}-b{number}-{i}", "timestamp": when}
            roll = rng.random()
            if roll < 0.35:
                message.update(type="track", anonymousId=anon, event="Product Viewed",
                               properties={"product_id": f"sku-{rng.randrange(50)}"})
            elif roll < 0.55:
                message.update(type="track", userId=user, event="Order Completed",
                               properties={"order_id": f"o-{writer}-{number}-{i}", "revenue": rng.randrange(1, 200)})
            elif roll < 0.95:
                message.update(type="identify", userId=user, anonymousId=anon,
                               traits={"plan": rng.choice(["free", "pro", "team"]), "email": f"{user}@example.com"})
            else:
                message.update(type="alias", userId=user, previousId=anon)
            batch.append(message)
        yield number, batch


class Load:
    """Writer threads posting batches; remembers which were acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[list[str]] = []
        self.unacked: list[list[str]] = []
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(w,), daemon=True) for w in range(WRITERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def acked_batches(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _write(self, writer: int) -> None:
        with httpx.Client(base_url=self.url, auth=(WRITE_KEY, ""), timeout=10) as client:
            for _, batch in workload(writer):
                ids = [m["messageId"] for m in batch]
                try:
                    response = client.post("/v1/batch", json={"batch": batch})
                except httpx.TransportError:  # the server is gone: this batch is in doubt
                    with self._lock:
                        self.unacked.append(ids)
                    if self._stop.is_set():
                        return
                    continue
                with self._lock:
                    body = response.json()
                    if response.status_code == 200 and body["accepted"] + body["duplicates"] == BATCH:
                        self.acked.append(ids)
                    else:
                        self.unexpected.append(f"{response.status_code} {response.text[:200]}")
                        return


def kill_9(server: LiveServer) -> None:
    """kill -9 the server and its processor child, as the OOM killer or a lost VM would.

    Killing only the server would let the orphaned processor notice and commit cleanly."""
    children = [int(pid) for path in Path(f"/proc/{server.process.pid}/task").glob("*/children")
                for pid in path.read_text().split()]
    assert children, "the server runs its processor in a child process by default"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    server.kill()


def logged_message_ids(data_dir: Path) -> dict[str, int]:
    uri = f"file:{data_dir / 'log.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute("SELECT message_id, count(*) FROM events WHERE source_id = 'default' GROUP BY message_id")
        return dict(rows.fetchall())


def all_profiles(server: LiveServer) -> dict[str, dict[str, Any]]:
    profiles: dict[str, dict[str, Any]] = {}
    cursor = None
    with server.reader() as reader:
        while True:
            page = reader.get("/v1/profiles", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
            profiles.update((p["id"], p) for p in page["data"])
            cursor = page["next"]
            if cursor is None:
                return profiles


def replay(log_db: Path, into: Path) -> tuple[dict[str, dict[str, Any]], Any]:
    """A fresh data directory holding only a copy of the log, rebuilt from scratch."""
    into.mkdir()
    with closing(sqlite3.connect(log_db)) as source, closing(sqlite3.connect(into / "log.db")) as copy:
        source.backup(copy)
    with Engine.open(load_config(env={}, data_dir=into)) as engine:
        replayed = engine.rebuild()
        assert replayed == engine.log.count()
        return {p.id: profile_json(p) for p in engine.state.all_profiles()}, engine.state.counts()


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9_and_profiles_equal_a_replay(live_server: LiveServer,
                                                                       tmp_path: Path) -> None:
    load = Load(live_server.url)
    load.start()
    deadline = time.monotonic() + 20
    while load.acked_batches() < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.005)
    kill_9(live_server)  # mid-load: the writers are still posting, the processor still applying
    load.stop()
    assert load.unexpected == []
    assert len(load.acked) >= KILL_AFTER

    restarted = start_server(live_server.data_dir, WRITE_KEY, SECRET_KEY)
    try:
        logged = logged_message_ids(restarted.data_dir)
        acked = [mid for batch in load.acked for mid in batch]
        missing = [mid for mid in acked if mid not in logged]
        assert missing == [], f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
        assert set(logged.values()) == {1}
        for batch in load.unacked:  # in doubt: all of it or none of it
            assert sum(mid in logged for mid in batch) in (0, BATCH)
        assert len(logged) == len(acked) + BATCH * sum(batch[0] in logged for batch in load.unacked)

        status = restarted.wait_processed(timeout=30)
        assert status["log"]["events"] == len(logged)
        assert status["processor"]["error"] is None
        served = all_profiles(restarted)
        assert len(served) == status["state"]["profiles"]
        assert status["state"]["merges"] > 0
    finally:
        restarted.stop()

    with Engine.open(load_config(env={}, data_dir=restarted.data_dir)) as engine:
        live_counts = engine.state.counts()
        assert {p.id: profile_json(p) for p in engine.state.all_profiles()} == served
    replayed, replay_counts = replay(restarted.data_dir / "log.db", tmp_path / "replay")
    assert replay_counts == live_counts
    assert replayed.keys() == served.keys()
    for profile_id, profile in served.items():
        assert replayed[profile_id] == profile, profile_id
