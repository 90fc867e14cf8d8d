"""Segment and computed-trait definitions over HTTP: checked on save, stored, replaced, deleted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import WRITE_KEY, TestClient

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL

LAPSED = {"id": "lapsed", "name": "No purchase in 90 days", "where": {"not": {"event": "Order Completed",
                                                                              "within": "90d"}}}
ORDERS = {"id": "orders_90d", "event": "Order Completed", "within": "90d", "count": True}
LOYAL_LAPSED = {"id": "loyal_lapsed", "where": {"all": [{"segment": "lapsed"}, {"computed": "orders_90d", "gte": 3}]}}


def send(client: TestClient, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.request(method, path, json=body, headers=headers, auth=None)


@pytest.fixture(autouse=True)
def orders_seen(client: TestClient) -> None:
    """Definitions may read only events the log has seen (unless told otherwise): one order has come in."""
    sent = client.post("/v1/track", json={"userId": "u1", "event": "Order Completed", "properties": {"revenue": 5}})
    assert sent.status_code == 200, sent.text


def test_an_event_never_seen_is_refused_unless_allowed(client: TestClient, reader_headers: dict[str, str]) -> None:
    typo = {"id": "buyers", "where": {"any": [{"trait": "plan", "eq": "pro"},
                                              {"event": "Order Complete", "within": "30d"}]}}
    refused = send(client, "POST", "/v1/segments", reader_headers, typo)
    assert refused.status_code == 400
    assert refused.json()["field"] == "buyers.where.any[1].event"
    assert "Order Completed" in refused.json()["message"]  # the known names are listed
    trait = {"id": "refunds", "event": "Order Refunded", "count": True}
    assert send(client, "POST", "/v1/computed-traits", reader_headers, trait).json()["field"] == "refunds.event"
    allowed = send(client, "POST", "/v1/segments?allow_unseen_events=true", reader_headers, typo)
    assert allowed.status_code == 201, allowed.text
    # saved once, it does not block saving others; page views are a message type, always known
    views = {"id": "viewers", "where": {"event": "page", "within": "1d"}}
    assert send(client, "POST", "/v1/segments", reader_headers, views).status_code == 201


def test_definitions_are_created_read_replaced_and_deleted(client: TestClient, reader_headers: dict[str, str]
                                                           ) -> None:
    created = send(client, "POST", "/v1/segments", reader_headers, LAPSED)
    assert created.status_code == 201, created.text
    assert created.json()["definition"] == LAPSED
    assert send(client, "POST", "/v1/computed-traits", reader_headers, ORDERS).status_code == 201
    assert send(client, "POST", "/v1/segments", reader_headers, LOYAL_LAPSED).status_code == 201
    listed = send(client, "GET", "/v1/segments", reader_headers).json()["data"]
    assert [d["id"] for d in listed] == ["lapsed", "loyal_lapsed"]

    renamed = {**LAPSED, "name": "Lapsed buyers"}
    replaced = send(client, "PUT", "/v1/segments/lapsed", reader_headers, renamed)
    assert replaced.status_code == 200 and replaced.json()["definition"]["name"] == "Lapsed buyers"
    assert send(client, "GET", "/v1/segments/lapsed", reader_headers).json()["definition"] == renamed

    in_use = send(client, "DELETE", "/v1/computed-traits/orders_90d", reader_headers)
    assert in_use.status_code == 409 and "loyal_lapsed" in in_use.json()["message"]
    assert send(client, "DELETE", "/v1/segments/loyal_lapsed", reader_headers).status_code == 204
    assert send(client, "DELETE", "/v1/computed-traits/orders_90d", reader_headers).status_code == 204
    assert send(client, "GET", "/v1/segments/loyal_lapsed", reader_headers).status_code == 404


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/v1/segments", {"id": "s", "where": {"trait": "plan", "equals": "pro"}}, 400, "where.equals"),
    ("/v1/segments", {"id": "s", "where": {"event": "X", "within": "a month"}}, 400, "where.within"),
    ("/v1/segments", {"id": "s", "where": {"segment": "missing"}}, 400, "s.where"),
    ("/v1/segments", {"id": "Bad Id", "where": {"trait": "a", "exists": True}}, 400, "id"),
    ("/v1/computed-traits", {"id": "t", "event": "X", "count": True, "gt": 1}, 400, "gt"),
    ("/v1/segments", ["not", "an", "object"], 400, None),
])
def test_a_bad_definition_is_refused_where_it_is_wrong(client: TestClient, reader_headers: dict[str, str],
                                                       path: str, body: Any, status: int, field: str | None) -> None:
    response = send(client, "POST", path, reader_headers, body)
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["field"] == field
    assert send(client, "GET", "/v1/segments", reader_headers).json()["data"] == []  # nothing was stored


def test_ids_are_unique_and_replacing_needs_the_same_id(client: TestClient, reader_headers: dict[str, str]) -> None:
    assert send(client, "POST", "/v1/segments", reader_headers, LAPSED).status_code == 201
    again = send(client, "POST", "/v1/segments", reader_headers, LAPSED)
    assert again.status_code == 409 and again.json()["field"] == "id"
    other = send(client, "PUT", "/v1/segments/lapsed", reader_headers, {**LAPSED, "id": "other"})
    assert other.status_code == 400 and "not 'lapsed'" in other.json()["message"]
    assert send(client, "PUT", "/v1/segments/nobody", reader_headers,
                {**LAPSED, "id": "nobody"}).status_code == 404


def test_definitions_need_a_secret_key(client: TestClient) -> None:
    write_key = {"Authorization": f"Bearer {WRITE_KEY}"}
    assert client.post("/v1/segments", json=LAPSED, headers=write_key, auth=None).status_code == 403
    assert client.get("/v1/segments", auth=None).status_code == 401
