"""Live audiences through a real `persona serve`: events over HTTP move a shopper in and out of
segments, announced in the log, shown on the profile, listed as members, counted and exported."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.support.live import LiveServer, start_server

CART_NO_ORDER = {"id": "cart_no_order", "name": "Added to cart, no order in the last hour",
                 "where": {"all": [{"event": "Product Added", "within": "1h"},
                                   {"not": {"event": "Order Completed", "within": "1h"}}]}}
BIG_SPENDERS = {"id": "big_spenders", "where": {"event": "Order Completed", "within": "30d", "sum": "revenue",
                                                "gt": 500}}
BROWSING = {"id": "browsing_now", "where": {"event": "Product Viewed", "within": "3s"}}
ORDERS = {"id": "orders_90d", "event": "Order Completed", "within": "90d", "count": True}
FAVORITE = {"id": "favorite_category", "event": "Product Viewed", "within": "30d", "most_frequent": "category"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path / "live", WRITE_KEY, SECRET_KEY, extra_env={"PERSONA_SEGMENT_TIME_CHECK": "0.5"})
    try:
        yield live
    finally:
        live.stop()


def track(server: LiveServer, user: str, event: str, **properties: Any) -> None:
    message = {"type": "track", "userId": user, "event": event, "properties": properties,
               "timestamp": datetime.now(UTC).isoformat()}
    response = httpx.post(f"{server.url}/v1/batch", json={"batch": [message]}, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.1)


def segments_of(reader: httpx.Client, user: str) -> set[str]:
    response = reader.get(f"/v1/profiles/user_id:{user}")
    return {s["id"] for s in response.json().get("segments", [])} if response.status_code == 200 else set()


def test_shopper_moves_through_segments_live(server: LiveServer) -> None:
    with server.reader() as reader:
        for path, body in [("segments", CART_NO_ORDER), ("segments", BIG_SPENDERS), ("segments", BROWSING),
                           ("computed-traits", ORDERS), ("computed-traits", FAVORITE)]:
            # defined before any event has come in
            assert reader.post(f"/v1/{path}?allow_unseen_events=true", json=body).status_code == 201

        track(server, "ann", "Product Viewed", category="boots")
        track(server, "ann", "Product Added", category="boots", price=120)
        eventually(lambda: segments_of(reader, "ann") == {"cart_no_order", "browsing_now"})
        profile = reader.get("/v1/profiles/user_id:ann").json()
        assert profile["computed_traits"] == {"favorite_category": "boots", "orders_90d": 0}

        # the window of "browsing now" empties with no event: time alone takes her out
        eventually(lambda: segments_of(reader, "ann") == {"cart_no_order"}, timeout=10)

        track(server, "ann", "Order Completed", revenue=620.0)
        eventually(lambda: segments_of(reader, "ann") == {"big_spenders"})
        assert reader.get("/v1/profiles/user_id:ann").json()["computed_traits"]["orders_90d"] == 1

        # every transition is an event in the log, on her timeline, in order
        def announced() -> list[tuple[str, str]]:
            events = reader.get("/v1/profiles/user_id:ann/events", params={"limit": 50}).json()["data"]
            return [(e["event"], e["properties"]["segment_id"]) for e in reversed(events)
                    if e.get("event") in ("Segment Entered", "Segment Exited")]

        expected = {("Segment Entered", "cart_no_order"), ("Segment Entered", "browsing_now"),
                    ("Segment Exited", "browsing_now"), ("Segment Exited", "cart_no_order"),
                    ("Segment Entered", "big_spenders")}
        seen = eventually(lambda: announced() if set(announced()) == expected else None)
        assert seen.index(("Segment Entered", "browsing_now")) < seen.index(("Segment Exited", "browsing_now"))

        track(server, "bob", "Product Added", category="tents", price=300)
        eventually(lambda: "cart_no_order" in segments_of(reader, "bob"))
        page = reader.get("/v1/segments/cart_no_order/members", params={"limit": 10}).json()
        assert page["size"] == 1 and len(page["data"]) == 1 and page["next"] is None
        bob = reader.get("/v1/profiles/user_id:bob").json()["id"]
        assert page["data"][0]["profile_id"] == bob

        exported = reader.get("/v1/segments/big_spenders/members", params={"format": "csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["user_id"] for r in rows] == ["ann"]

        overlap = reader.get("/v1/segments/overlap", params={"segments": "cart_no_order,big_spenders"}).json()
        assert overlap["overlap"]["cart_no_order"] == {"cart_no_order": 1, "big_spenders": 0}
        assert reader.get("/v1/segments/big_spenders/size").json()["size"] == 1

        missing = reader.get("/v1/segments/nope/members")
        assert missing.status_code == 404 and missing.json()["field"] == "id"
        status = reader.get("/v1/status").json()["processor"]["audiences"]
        assert status["owner"] and status["lag"] >= 0
