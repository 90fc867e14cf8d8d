"""A processor that cannot apply an event says so in /v1/status, retries, and recovers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx

from tests.support.live import LiveServer


def wait_for(predicate: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def test_an_unreadable_event_is_reported_in_status_and_processing_resumes_once_repaired(
        live_server: LiveServer) -> None:
    # Damage the log behind the server's back (a disk fault, a bad manual edit): a body that is not JSON.
    with closing(sqlite3.connect(live_server.data_dir / "log.db", timeout=30)) as conn, conn:
        conn.execute("INSERT INTO events (source_id, message_id, type, name, user_id, anonymous_id, timestamp,"
                     " received_at, body) VALUES ('default', 'damaged', 'track', 'E', 'u1', NULL, 0, 0, ?)",
                     (b"{not json",))
    sent = httpx.post(f"{live_server.url}/v1/track", auth=(live_server.write_key, ""),
                      json={"userId": "u2", "event": "After the damage"})
    assert sent.status_code == 200

    with live_server.reader() as reader:
        failing = wait_for(lambda: (s := reader.get("/v1/status").json())["processor"]["error"] and s)
        assert "DecodeError" in failing["processor"]["error"]  # the processor runs in its own process
        assert failing["processor"]["error_at"].endswith("Z")
        assert failing["processor"]["lag"] == 2
        assert reader.get("/v1/profiles/user_id:u2").status_code == 404  # stuck behind the damaged event

        with closing(sqlite3.connect(live_server.data_dir / "log.db", timeout=30)) as conn, conn:
            conn.execute("DELETE FROM events WHERE message_id = 'damaged'")  # the repair
        healed = wait_for(lambda: (s := reader.get("/v1/status").json())["processor"]["lag"] == 0 and s)
        assert healed["processor"]["error"] is None
        assert reader.get("/v1/profiles/user_id:u2").json()["event_counts"] == {"After the damage": 1}
