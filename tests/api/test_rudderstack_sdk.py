"""The official RudderStack Python SDK against a real `persona serve`, unchanged: its data
plane URL is persona's address, its write key a persona write key."""

from __future__ import annotations

from typing import Any

import pytest
from rudderstack.analytics.client import Client

from tests.support.live import LiveServer


@pytest.mark.parametrize("gzip", [False, True], ids=["json", "gzip"])
def test_rudderstack_events_land_in_one_stitched_profile(live_server: LiveServer, gzip: bool) -> None:
    failures: list[tuple[Exception, Any]] = []
    client = Client(live_server.write_key, host=live_server.url, gzip=gzip, max_retries=1,
                    on_error=lambda error, batch: failures.append((error, batch)))
    client.page("", anonymous_id="rs-anon-1", name="Home", properties={"path": "/"})
    client.track("", "Product Viewed", {"product_id": "sku-9"}, anonymous_id="rs-anon-1")
    client.identify("rs-cust-1", {"email": "Rudy@Example.com"}, anonymous_id="rs-anon-1")
    client.track("rs-cust-1", "Order Completed", {"order_id": "rs-o-1", "revenue": 42.0})
    client.alias("rs-anon-2", "rs-cust-1")  # a second device, stitched explicitly
    client.flush()
    client.shutdown()
    assert failures == []

    status = live_server.wait_processed()
    assert status["log"]["events"] == 5
    with live_server.reader() as reader:
        profile = reader.get("/v1/profiles/email:rudy@example.com").json()
        assert reader.get("/v1/profiles/anonymous_id:rs-anon-2").json()["id"] == profile["id"]
        events = reader.get(f"/v1/profiles/{profile['id']}/events").json()["data"]
    assert profile["identifiers"]["user_id"] == ["rs-cust-1"]
    assert sorted(profile["identifiers"]["anonymous_id"]) == ["rs-anon-1", "rs-anon-2"]
    assert profile["orders"]["revenue"] == 42.0
    assert {e["type"] for e in events} == {"page", "track", "identify", "alias"}
    assert all(e["context"]["library"]["name"] for e in events)  # the SDK's own context is kept
