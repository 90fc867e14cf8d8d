"""The official Segment Python SDK against a real `persona serve` on a socket.

What a shop does on day one: point `segment.analytics.Client` at persona instead of
api.segment.io, and expect one profile per person, stitched from the anonymous browsing
before sign-up, readable by any of its identifiers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from segment.analytics import Client

from tests.support.live import LiveServer


class Sdk:
    """An SDK client that records every failed upload instead of only logging it."""

    def __init__(self, server: LiveServer, write_key: str | None = None, **options: Any) -> None:
        self.failures: list[tuple[Exception, list[dict[str, Any]]]] = []
        self.client = Client(write_key or server.write_key, host=server.url, on_error=self._failed, max_retries=1,
                             upload_interval=0.05, **options)

    def _failed(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.failures.append((error, batch))

    def flush(self) -> None:
        self.client.flush()
        assert self.failures == [], self.failures


@pytest.fixture(params=[False, True], ids=["json", "gzip"])
def sdk(live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Sdk]:
    sdk = Sdk(live_server, gzip=request.param)
    yield sdk
    sdk.client.shutdown()
    assert sdk.failures == []


def test_an_anonymous_session_is_stitched_to_the_customer_on_identify(live_server: LiveServer, sdk: Sdk) -> None:
    analytics = sdk.client
    analytics.page(anonymous_id="anon-web-1", category="Catalog", name="Shoes", properties={"path": "/shoes"})
    analytics.track(anonymous_id="anon-web-1", event="Product Viewed", properties={"product_id": "sku-1"})
    analytics.track(anonymous_id="anon-web-1", event="Product Added", properties={"product_id": "sku-1"})
    analytics.identify("cust-42", {"email": "Ann@Example.com", "name": "Ann", "plan": "pro"},
                       anonymous_id="anon-web-1")
    analytics.track("cust-42", "Order Completed", {"order_id": "o-1", "revenue": 59.9, "currency": "EUR"})
    analytics.track("cust-42", "Order Completed", {"order_id": "o-2", "revenue": 20.1, "currency": "EUR"})
    sdk.flush()
    status = live_server.wait_processed()
    assert status["log"]["events"] == 6

    with live_server.reader() as reader:
        by_user = reader.get("/v1/profiles/user_id:cust-42")
        assert by_user.status_code == 200, by_user.text
        profile = by_user.json()
        for identifier in ("anonymous_id:anon-web-1", "email:ann@example.com"):
            assert reader.get(f"/v1/profiles/{identifier}").json() == profile, identifier
        events = reader.get("/v1/profiles/user_id:cust-42/events").json()

    assert profile["identifiers"] == {"user_id": ["cust-42"], "email": ["ann@example.com"],
                                      "anonymous_id": ["anon-web-1"]}
    assert profile["traits"] == {"email": "Ann@Example.com", "name": "Ann", "plan": "pro"}
    assert profile["orders"]["count"] == 2
    assert profile["orders"]["revenue"] == 80.0
    assert profile["event_counts"] == {"page": 1, "Product Viewed": 1, "Product Added": 1, "identify": 1,
                                       "Order Completed": 2}
    assert events["profile_id"] == profile["id"]
    timeline = [(e["type"], e.get("event") or e.get("name")) for e in reversed(events["data"])]
    assert timeline == [("page", "Shoes"), ("track", "Product Viewed"), ("track", "Product Added"),
                        ("identify", None), ("track", "Order Completed"), ("track", "Order Completed")]
    sent = events["data"][-1]
    assert sent["anonymousId"] == "anon-web-1" and "userId" not in sent
    assert sent["context"]["library"]["name"] == "analytics-python"
    assert sent["timestamp"].endswith("Z") and sent["sentAt"].endswith("Z")
    assert "writeKey" not in sent


def test_a_second_device_is_stitched_on_identify(live_server: LiveServer, sdk: Sdk) -> None:
    analytics = sdk.client
    analytics.track(anonymous_id="laptop-1", event="Product Viewed", properties={"product_id": "sku-1"})
    analytics.identify("cust-7", {"email": "bob@example.com"}, anonymous_id="laptop-1")
    sdk.flush()
    live_server.wait_processed()
    with live_server.reader() as reader:
        laptop = reader.get("/v1/profiles/user_id:cust-7").json()
    assert laptop["identifiers"]["anonymous_id"] == ["laptop-1"]

    analytics.page(anonymous_id="phone-9", name="Home")
    analytics.track(anonymous_id="phone-9", event="Product Added", properties={"product_id": "sku-2"})
    sdk.flush()
    live_server.wait_processed()
    with live_server.reader() as reader:
        before = reader.get("/v1/profiles/anonymous_id:phone-9").json()
        assert before["id"] != laptop["id"]

        analytics.identify("cust-7", anonymous_id="phone-9")
        analytics.track("cust-7", "Order Completed", {"order_id": "o-9", "revenue": 12.5})
        sdk.flush()
        live_server.wait_processed()
        profile = reader.get("/v1/profiles/user_id:cust-7").json()
        for identifier in ("anonymous_id:phone-9", "anonymous_id:laptop-1", "email:bob@example.com", before["id"]):
            assert reader.get(f"/v1/profiles/{identifier}").json()["id"] == profile["id"], identifier
        merges = reader.get("/v1/profiles/user_id:cust-7/merges").json()["data"]
        events = reader.get("/v1/profiles/anonymous_id:phone-9/events").json()["data"]

    assert profile["identifiers"]["anonymous_id"] == ["laptop-1", "phone-9"]
    assert profile["event_counts"] == {"Product Viewed": 1, "identify": 2, "page": 1, "Product Added": 1,
                                       "Order Completed": 1}
    assert profile["orders"]["revenue"] == 12.5
    assert [m["merged"] for m in merges] == profile["merged_from"] == [before["id"]]
    assert len(events) == 6


def test_a_wrong_write_key_reaches_the_sdk_as_a_401_and_stores_nothing(live_server: LiveServer) -> None:
    sdk = Sdk(live_server, write_key="pw_wrong")
    sdk.client.track("cust-1", "Order Completed", {"revenue": 1.0})
    sdk.client.flush()
    sdk.client.shutdown()
    [(error, batch)] = sdk.failures
    assert getattr(error, "status", None) == 401
    assert getattr(error, "code", None) == "invalid_write_key"  # Segment's error shape: code + message
    assert "not valid" in str(error)
    assert [m["event"] for m in batch] == ["Order Completed"]
    assert live_server.wait_processed()["log"]["events"] == 0
