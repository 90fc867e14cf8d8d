"""Model traits on the profile over HTTP: in-process after a refresh, and from a real `persona serve`
whose scheduler refreshes RFM on its own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from persona.engine import Engine
from persona.jobs.rfm import refresh_rfm
from tests.conftest import SECRET_KEY, WRITE_KEY, TestClient
from tests.support.api import read
from tests.support.events import event
from tests.support.live import start_server


def test_a_profile_shows_its_model_traits(client: TestClient, engine: Engine) -> None:
    engine.log.append([event("track", user="buyer", event="Order Completed", properties={"revenue": 42.5}),
                       event("track", user="browser", event="Product Viewed")])
    engine.processor.run_until_caught_up()
    refresh_rfm(engine.state, engine.model_traits)
    traits = read(client, "/v1/profiles/user_id:buyer").json()["model_traits"]
    assert traits.pop("rfm_recency_days") >= 0
    assert traits == {"rfm_code": "111", "rfm_f": 1, "rfm_frequency": 1, "rfm_m": 1, "rfm_monetary": 42.5, "rfm_r": 1,
                      "rfm_segment": "Lost"}
    assert read(client, "/v1/profiles/user_id:browser").json()["model_traits"] == {}


def test_serve_refreshes_rfm_on_schedule(tmp_path: Path) -> None:
    server = start_server(tmp_path / "live", WRITE_KEY, SECRET_KEY, extra_env={"PERSONA_RFM_REFRESH": "0.5"})
    try:
        now = datetime.now(UTC).isoformat()
        orders = [{"type": "track", "userId": user, "event": "Order Completed", "timestamp": now,
                   "properties": {"revenue": revenue}} for user, revenue in (("ann", 900), ("bob", 20), ("bob", 30))]
        response = httpx.post(f"{server.url}/v1/batch", json={"batch": orders}, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
        server.wait_processed()
        with server.reader() as reader:
            deadline = time.monotonic() + 30
            traits: dict[str, Any] = {}
            while time.monotonic() < deadline and "rfm_segment" not in traits:
                traits = reader.get("/v1/profiles/user_id:bob").json()["model_traits"]
                time.sleep(0.1)
            assert traits["rfm_frequency"] == 2 and traits["rfm_monetary"] == 50.0 and traits["rfm_recency_days"] <= 1
            while True:  # the personas job runs after the rfm job that scored bob: it is claimed a moment later
                jobs = {j["name"]: j for j in reader.get("/v1/status").json()["jobs"]}
                if jobs["personas"]["last_started"] is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        assert jobs["rfm"]["runner"].startswith("serve-") and jobs["rfm"]["every"] == 0.5
        assert jobs["personas"]["last_started"] is not None, jobs  # ran at start, on too little data to fit
    finally:
        server.stop()
