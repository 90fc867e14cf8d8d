"""The Segment HTTP Tracking API and the profile reads, in-process over a real SQLite engine.

Every test asserts the status code and the JSON body, and for ingest what ended up in the
log (and the quarantine). The processor does not run on its own here: tests that read
profiles drive it with `engine.processor.run_until_caught_up()`.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from persona.access.keys import KeyKind
from persona.api import create_app
from persona.config import Config
from persona.engine import Engine
from tests.conftest import SECRET_KEY, WRITE_KEY, TestClient
from tests.support.api import assert_error, gzipped, read, stored

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL

CONTEXT = {"ip": "203.0.113.7", "library": {"name": "analytics.js", "version": "4.1.0"},
           "page": {"path": "/shoes", "url": "https://shop.example/shoes"}, "locale": "de-DE"}

# One message per Segment call with the spec fields of that call plus the common ones.
SPEC_MESSAGES: dict[str, dict[str, Any]] = {
    "identify": {"userId": "u-1", "anonymousId": "a-1",
                 "traits": {"email": "Ann@Example.com", "name": "Ann", "plan": "pro", "address": {"city": "Bonn"}}},
    "track": {"userId": "u-1", "event": "Product Viewed",
              "properties": {"product_id": "sku-9", "price": 19.5, "tags": ["red", "sale"]}},
    "page": {"anonymousId": "a-1", "name": "Shoes", "category": "Catalog",
             "properties": {"path": "/shoes", "referrer": "https://search.example/"}},
    "screen": {"userId": "u-1", "name": "Basket", "category": "Checkout", "properties": {"items": 2}},
    "group": {"userId": "u-1", "groupId": "acme", "traits": {"name": "Acme Inc", "employees": 42}},
    "alias": {"userId": "u-1", "previousId": "a-1"},
}
COMMON = {"context": CONTEXT, "integrations": {"All": True, "Mixpanel": False},
          "timestamp": "2026-09-01T10:00:00.000Z", "originalTimestamp": "2026-09-01T10:00:00.000Z",
          "sentAt": "2026-09-01T10:00:01.000Z", "channel": "browser", "version": 2}


def spec_message(kind: str, message_id: str) -> dict[str, Any]:
    return {**COMMON, **SPEC_MESSAGES[kind], "messageId": message_id}


def track(message_id: str, user: str = "u-1", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Clicked", "messageId": message_id, **fields}


def ok(response: Any, accepted: int, duplicates: int = 0) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert (body["accepted"], body["duplicates"]) == (accepted, duplicates), body
    return body


def nothing_stored(engine: Engine) -> None:
    assert engine.log.count() == 0
    assert engine.log.quarantined() == []


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


# -- the endpoints ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(SPEC_MESSAGES))
def test_each_endpoint_accepts_its_spec_fields_and_stores_them_normalized(
        client: TestClient, engine: Engine, kind: str) -> None:
    message = spec_message(kind, f"mid-{kind}")
    ok(client.post(f"/v1/{kind}", json={**message, "writeKey": WRITE_KEY}), accepted=1)

    [body] = stored(engine)
    assert body["type"] == kind
    assert body["source"] == "default"
    assert body["messageId"] == f"mid-{kind}"
    assert "writeKey" not in body
    for field, value in SPEC_MESSAGES[kind].items():
        assert body[field] == value, field
    assert body["context"] == CONTEXT
    assert body["integrations"] == {"All": True, "Mixpanel": False}
    assert (body["channel"], body["version"]) == ("browser", 2)
    assert body["timestamp"] == "2026-09-01T10:00:00.000Z"
    assert body["receivedAt"].endswith("Z")


def test_the_endpoint_decides_the_type_whatever_the_body_says(client: TestClient, engine: Engine) -> None:
    ok(client.post("/v1/page", json={"type": "track", "anonymousId": "a-1", "name": "Home"}), accepted=1)
    assert [b["type"] for b in stored(engine)] == ["page"]


def test_batch_accepts_every_message_type(client: TestClient, engine: Engine) -> None:
    batch = [{**spec_message(kind, f"b-{kind}"), "type": kind} for kind in SPEC_MESSAGES]
    ok(client.post("/v1/batch", json={"batch": batch, "sentAt": "2026-09-01T10:00:01Z"}), accepted=6)
    assert [b["type"] for b in stored(engine)] == list(SPEC_MESSAGES)
    assert [b["messageId"] for b in stored(engine)] == [f"b-{kind}" for kind in SPEC_MESSAGES]


def test_a_message_without_message_id_gets_one(client: TestClient, engine: Engine) -> None:
    ok(client.post("/v1/track", json={"userId": "u-1", "event": "Clicked"}), accepted=1)
    [body] = stored(engine)
    assert body["messageId"].startswith("persona-")


# -- authentication -----------------------------------------------------------------------------

def test_write_key_as_basic_username_with_empty_password(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/track", json=track("m1"), headers={"Authorization": basic(WRITE_KEY)}, auth=None)
    ok(response, accepted=1)
    assert engine.log.count() == 1


def test_write_key_in_the_body_works_without_a_header_and_is_not_stored(client: TestClient, engine: Engine) -> None:
    ok(client.post("/v1/batch", json={"batch": [track("m1")], "writeKey": WRITE_KEY}, auth=None), accepted=1)
    ok(client.post("/v1/identify", json={"userId": "u-2", "writeKey": WRITE_KEY}, auth=None), accepted=1)
    assert all("writeKey" not in body for body in stored(engine))


def test_a_missing_write_key_is_401_and_nothing_is_stored(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/batch", json={"batch": [track("m1")]}, auth=None)
    assert_error(response, 401, "missing_write_key", says="write key is required")
    assert response.headers["www-authenticate"].startswith("Basic")
    assert_error(client.post("/v1/track", json=track("m1"), auth=None), 401, "missing_write_key")
    nothing_stored(engine)


@pytest.mark.parametrize("authorization", [basic("pw_not_a_key"), basic(SECRET_KEY)])
def test_an_unknown_key_or_a_secret_key_cannot_write(client: TestClient, engine: Engine, authorization: str) -> None:
    response = client.post("/v1/track", json=track("m1"), headers={"Authorization": authorization}, auth=None)
    assert_error(response, 401, "invalid_write_key", says="not valid")
    body_key = client.post("/v1/track", json={**track("m2"), "writeKey": "pw_not_a_key"}, auth=None)
    assert_error(body_key, 401, "invalid_write_key")
    nothing_stored(engine)


@pytest.mark.parametrize("authorization", [b"Basic %%%not base64", b"Basic \xe9t\xe9", b"basic " + base64.b64encode(
    b"\xff\xfe:")])
def test_a_basic_header_that_is_not_base64_is_401(client: TestClient, engine: Engine, authorization: bytes) -> None:
    response = client.post("/v1/track", json=track("m1"), headers={"Authorization": authorization}, auth=None)
    assert_error(response, 401, "unauthorized", says="base64")
    nothing_stored(engine)


def test_reads_need_a_secret_key_as_bearer(client: TestClient) -> None:
    assert_error(client.get("/v1/status", auth=None), 401, "missing_secret_key", says="Bearer")
    assert_error(read(client, "/v1/status", headers={"Authorization": "Bearer ps_wrong"}), 401, "invalid_secret_key")
    assert_error(read(client, "/v1/status", headers={"Authorization": basic(SECRET_KEY)}), 401, "missing_secret_key")
    # a write key is a valid key, but it may only send
    for path in ("/v1/status", "/v1/profiles", "/v1/quarantine", "/v1/profiles/user_id:u-1"):
        assert_error(read(client, path, headers={"Authorization": f"Bearer {WRITE_KEY}"}), 403, "forbidden",
                     says="write key")
    assert read(client, "/v1/status").status_code == 200


# -- encodings, bodies and limits ------------------------------------------------------------------

def test_gzip_bodies_are_accepted(client: TestClient, engine: Engine) -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    ok(client.post("/v1/batch", content=gzipped({"batch": [track("m1"), track("m2")]}), headers=headers), accepted=2)
    ok(client.post("/v1/identify", content=gzipped({"userId": "u-1", "traits": {"plan": "pro"}}), headers=headers),
       accepted=1)
    assert [b["type"] for b in stored(engine)] == ["track", "track", "identify"]
    assert stored(engine)[2]["traits"] == {"plan": "pro"}


def test_broken_gzip_and_unknown_encodings_are_400(client: TestClient, engine: Engine) -> None:
    whole = gzipped({"batch": [track("m1")]})
    truncated = client.post("/v1/batch", content=whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})
    assert_error(truncated, 400, "invalid_request", field="Content-Encoding", says="truncated")
    plain = client.post("/v1/batch", content=json.dumps({"batch": [track("m1")]}), headers={"Content-Encoding": "gzip"})
    assert_error(plain, 400, "invalid_request", field="Content-Encoding", says="not valid gzip")
    brotli = client.post("/v1/batch", content=b"{}", headers={"Content-Encoding": "br"})
    assert_error(brotli, 400, "unsupported_encoding", field="Content-Encoding", says="br")
    nothing_stored(engine)


def test_a_gzip_bomb_is_refused_by_its_decompressed_size(client: TestClient, engine: Engine) -> None:
    big = {"batch": [track("m1", properties={"pad": "x" * 600_000})]}
    body = gzip.compress(json.dumps(big).encode())
    assert len(body) < 10_000
    response = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, "body_too_large", says="500 KB")
    nothing_stored(engine)


def test_a_single_message_over_32_kb_is_413_naming_the_limit(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/track", json=track("m1", properties={"pad": "x" * 33_000}))
    assert_error(response, 413, "body_too_large", says="32 KB")
    nothing_stored(engine)


def test_a_message_that_grows_over_32_kb_when_normalized_is_rejected_naming_the_limit(
        client: TestClient, engine: Engine) -> None:
    message = track("m1", properties={"pad": ""})
    message["properties"]["pad"] = "x" * (32 * 1024 - len(json.dumps(message)) - 5)  # the body is just under
    response = client.post("/v1/track", json=message)
    assert_error(response, 400, "invalid_message", says="32 KB")
    assert engine.log.count() == 0
    [quarantined] = engine.log.quarantined()
    assert "32 KB" in quarantined.reason


def test_a_message_over_32_kb_in_a_batch_is_rejected_alone(client: TestClient, engine: Engine) -> None:
    batch = [track("small"), track("big", properties={"pad": "x" * 40_000}), track("small-2")]
    body = ok(client.post("/v1/batch", json={"batch": batch}), accepted=2)
    [rejection] = body["rejected"]
    assert rejection["index"] == 1
    assert "32 KB" in rejection["reason"]
    assert [b["messageId"] for b in stored(engine)] == ["small", "small-2"]


def test_a_batch_over_500_kb_is_413_and_nothing_is_stored(client: TestClient, engine: Engine) -> None:
    batch = [track(f"m{i}", properties={"pad": "x" * 20_000}) for i in range(26)]
    response = client.post("/v1/batch", json={"batch": batch})
    assert_error(response, 413, "body_too_large", says="500 KB")
    nothing_stored(engine)


def test_a_batch_over_2500_messages_is_400_and_nothing_is_stored(client: TestClient, engine: Engine) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E", "messageId": str(i)} for i in range(2501)]
    response = client.post("/v1/batch", json={"batch": batch})
    assert_error(response, 400, "too_many_messages", field="batch", says="2500")
    nothing_stored(engine)
    ok(client.post("/v1/batch", json={"batch": batch[:2500]}), accepted=2500)


@pytest.mark.parametrize(("content", "error", "says"), [
    (b"this is not json", "invalid_json", "not valid JSON"),
    (b'{"batch": [', "invalid_json", "not valid JSON"),
    (b"", "invalid_json", "empty"),
    (b"   \n", "invalid_json", "empty"),
    (b"0\x00", "invalid_json", "not valid JSON"),
    (b"[1, 2] trailing", "invalid_json", "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "invalid_json", "nested too deeply"),
    (b'{"userId": "caf\xe9"}', "invalid_json", "UTF-8"),
    (b'{"properties": {"price": 1e999}}', "invalid_json", "out of range"),
    (b"[1, 2]", "invalid_body", "JSON object"),
    (b'"batch"', "invalid_body", "JSON object"),
])
def test_a_body_that_is_not_a_json_object_is_400(
        client: TestClient, engine: Engine, content: bytes, error: str, says: str) -> None:
    for path in ("/v1/batch", "/v1/track"):
        assert_error(client.post(path, content=content), 400, error, says=says)
    nothing_stored(engine)


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"batch": {"type": "track"}}, "batch", "batch` array"),
    ({"messages": []}, "batch", "batch` array"),
    ({"batch": [], "context": [1]}, "context", "object"),
    ({"batch": [], "integrations": "all"}, "integrations", "object"),
    ({"batch": [], "sentAt": "yesterday"}, "sentAt", "ISO 8601"),
])
def test_a_malformed_batch_envelope_is_400_naming_the_field(
        client: TestClient, engine: Engine, body: dict[str, Any], field: str, says: str) -> None:
    assert_error(client.post("/v1/batch", json=body), 400, "invalid_request", field=field, says=says)
    nothing_stored(engine)


@pytest.mark.parametrize(("message", "field", "says"), [
    ({"event": "E"}, "userId", "userId or anonymousId"),
    ({"userId": {"id": 1}, "event": "E"}, "userId", "string"),
    ({"userId": "u", "event": "E", "timestamp": 1_700_000_000}, "timestamp", "ISO 8601"),
    ({"userId": "u", "event": "E", "properties": [1, 2]}, "properties", "object"),
    ({"userId": "u"}, "event", "event name"),
])
def test_an_invalid_single_message_is_400_naming_the_field_and_quarantined(
        client: TestClient, engine: Engine, message: dict[str, Any], field: str, says: str) -> None:
    assert_error(client.post("/v1/track", json=message), 400, "invalid_message", field=field, says=says)
    assert engine.log.count() == 0
    [quarantined] = engine.log.quarantined()
    assert (quarantined.field, quarantined.message) == (field, message)


# -- partial batches and the quarantine --------------------------------------------------------------

def test_a_batch_stores_the_valid_messages_and_lists_the_rejected(client: TestClient, engine: Engine) -> None:
    batch = [
        track("good-1"),
        {"type": "track", "event": "Clicked", "messageId": "no-ids"},
        {"type": "purchase", "userId": "u-1", "messageId": "bad-type"},
        track("bad-time", timestamp="yesterday at noon"),
        "not an object",
        {"type": ["track"], "userId": "u-1", "event": "Clicked", "messageId": "list-type"},
        {"type": "identify", "userId": "u-2", "messageId": "good-2", "traits": {"plan": "free"}},
    ]
    body = ok(client.post("/v1/batch", json={"batch": batch}), accepted=2)
    rejected = body["rejected"]
    assert [(r["index"], r["field"]) for r in rejected] == [
        (1, "userId"), (2, "type"), (3, "timestamp"), (4, None), (5, "type")]
    assert "userId or anonymousId is required" in rejected[0]["reason"]
    assert "purchase" in rejected[1]["reason"] and "identify" in rejected[1]["reason"]
    assert "yesterday at noon" in rejected[2]["reason"]
    assert "JSON object" in rejected[3]["reason"]
    assert [b["messageId"] for b in stored(engine)] == ["good-1", "good-2"]

    response = read(client, "/v1/quarantine")
    assert response.status_code == 200
    items = response.json()["data"]
    assert [(q["field"], q["message"]) for q in items] == [
        ("type", batch[5]), (None, "not an object"), ("timestamp", batch[3]), ("type", batch[2]), ("userId", batch[1])]
    assert all(q["source_id"] == "default" and q["received_at"].endswith("Z") for q in items)
    assert items[1]["reason"] == rejected[3]["reason"]
    assert len(read(client, "/v1/quarantine", limit=2).json()["data"]) == 2
    assert read(client, "/v1/quarantine", source="ios").json()["data"] == []


# -- normalization: batch context, time -------------------------------------------------------------

def test_batch_context_and_integrations_are_merged_into_each_message(client: TestClient, engine: Engine) -> None:
    batch = [
        track("plain"),
        track("own", context={"ip": "198.51.100.1", "campaign": {"name": "spring"}}, integrations={"Mixpanel": True}),
    ]
    ok(client.post("/v1/batch", json={"batch": batch, "context": {"ip": "203.0.113.7", "library": {"name": "sdk"}},
                                      "integrations": {"All": False}}), accepted=2)
    plain, own = stored(engine)
    assert plain["context"] == {"ip": "203.0.113.7", "library": {"name": "sdk"}}
    assert plain["integrations"] == {"All": False}
    assert own["context"] == {"ip": "198.51.100.1", "library": {"name": "sdk"}, "campaign": {"name": "spring"}}
    assert own["integrations"] == {"All": False, "Mixpanel": True}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_timestamps_are_stored_in_utc(client: TestClient, engine: Engine) -> None:
    batch = [
        track("offset", timestamp="2026-03-01T12:00:00+02:00"),
        track("naive", timestamp="2026-03-01T12:00:00"),
        track("micro", timestamp="2026-03-01T12:00:00.123456-05:30"),
    ]
    ok(client.post("/v1/batch", json={"batch": batch}), accepted=3)
    assert [b["timestamp"] for b in stored(engine)] == [
        "2026-03-01T10:00:00.000Z", "2026-03-01T12:00:00.000Z", "2026-03-01T17:30:00.123Z"]
    events = engine.log.read(0, 10)
    assert events[0].when == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_clock_skew_is_corrected_from_sent_at(client: TestClient, engine: Engine) -> None:
    # The device clock is years off; the event happened 10 s (and 2 s) before the device sent it.
    batch = [
        {"type": "track", "userId": "u", "event": "Batch sentAt", "messageId": "m1",
         "originalTimestamp": "2019-05-05T08:00:00Z"},
        {"type": "track", "userId": "u", "event": "Own sentAt", "messageId": "m2",
         "originalTimestamp": "2019-05-05T08:00:00Z", "sentAt": "2019-05-05T08:00:02Z"},
        {"type": "track", "userId": "u", "event": "Explicit", "messageId": "m3",
         "timestamp": "2026-01-01T00:00:00Z", "originalTimestamp": "2019-05-05T08:00:00Z"},
    ]
    ok(client.post("/v1/batch", json={"batch": batch, "sentAt": "2019-05-05T08:00:10+00:00"}), accepted=3)
    first, second, explicit = stored(engine)
    assert _utc(first["receivedAt"]) - _utc(first["timestamp"]) == timedelta(seconds=10)
    assert first["sentAt"] == "2019-05-05T08:00:10.000Z"
    assert first["originalTimestamp"] == "2019-05-05T08:00:00.000Z"
    assert _utc(second["receivedAt"]) - _utc(second["timestamp"]) == timedelta(seconds=2)
    assert explicit["timestamp"] == "2026-01-01T00:00:00.000Z"
    assert abs(_utc(first["receivedAt"]) - datetime.now(UTC)) < timedelta(minutes=1)


def test_without_any_time_the_event_time_is_the_arrival(client: TestClient, engine: Engine) -> None:
    ok(client.post("/v1/track", json={"userId": "u", "event": "E"}), accepted=1)
    [body] = stored(engine)
    assert body["timestamp"] == body["receivedAt"]


# -- dedup ----------------------------------------------------------------------------------------

def test_a_message_id_is_stored_once_per_source(client: TestClient, engine: Engine) -> None:
    ok(client.post("/v1/track", json=track("m1")), accepted=1)
    ok(client.post("/v1/track", json=track("m1", event="Changed")), accepted=0, duplicates=1)
    ok(client.post("/v1/batch", json={"batch": [track("m1"), track("m2"), track("m2")]}), accepted=1, duplicates=2)
    ios_key = engine.keys.create_key(KeyKind.WRITE, "ios app", "ios")
    ok(client.post("/v1/track", json=track("m1"), auth=(ios_key, "")), accepted=1)
    assert [(b["source"], b["messageId"], b["event"]) for b in stored(engine)] == [
        ("default", "m1", "Clicked"), ("default", "m2", "Clicked"), ("ios", "m1", "Clicked")]


def test_dedup_survives_closing_and_reopening_the_engine(config: Config) -> None:
    with Engine.open(config) as engine, TestClient(create_app(engine)) as client:
        ok(client.post("/v1/batch", json={"batch": [track("m1"), track("m2")]}, auth=(WRITE_KEY, "")), accepted=2)
    with Engine.open(config) as engine, TestClient(create_app(engine)) as client:
        ok(client.post("/v1/batch", json={"batch": [track("m2"), track("m3")]}, auth=(WRITE_KEY, "")),
           accepted=1, duplicates=1)
        assert [b["messageId"] for b in stored(engine)] == ["m1", "m2", "m3"]


# -- profile reads --------------------------------------------------------------------------------

def _send(client: TestClient, *messages: dict[str, Any]) -> None:
    ok(client.post("/v1/batch", json={"batch": list(messages)}), accepted=len(messages))


def _msg(kind: str, n: int, minutes: int = 0, **fields: Any) -> dict[str, Any]:
    when = datetime(2026, 9, 1, 9, tzinfo=UTC) + timedelta(minutes=minutes)
    return {"type": kind, "messageId": f"{kind}-{n}", "timestamp": when.isoformat(), **fields}


@pytest.fixture
def shopper(client: TestClient, engine: Engine) -> dict[str, Any]:
    """An anonymous visit, then a sign-up that identifies it, then an order; processed."""
    _send(client,
          _msg("page", 1, 0, anonymousId="anon-1", name="Home"),
          _msg("track", 2, 1, anonymousId="anon-1", event="Product Viewed", properties={"product_id": "p1"}),
          _msg("identify", 3, 2, userId="user-1", anonymousId="anon-1",
               traits={"email": "Ann@Example.com", "plan": "pro"}),
          _msg("track", 4, 3, userId="user-1", event="Order Completed",
               properties={"order_id": "o1", "revenue": 59.9}))
    engine.processor.run_until_caught_up()
    response = read(client, "/v1/profiles/user_id:user-1")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_profile_is_found_by_each_of_its_identifiers_and_its_id(client: TestClient, shopper: dict[str, Any]) -> None:
    assert shopper["identifiers"] == {"user_id": ["user-1"], "email": ["ann@example.com"],
                                      "anonymous_id": ["anon-1"]}
    assert shopper["traits"] == {"email": "Ann@Example.com", "plan": "pro"}
    assert shopper["orders"]["count"] == 1
    assert shopper["orders"]["revenue"] == 59.9
    assert shopper["event_count"] == 4
    assert shopper["event_counts"] == {"page": 1, "Product Viewed": 1, "identify": 1, "Order Completed": 1}
    assert shopper["first_seen"] == "2026-09-01T09:00:00.000Z"
    assert shopper["sources"] == ["default"]
    for identifier in ("anonymous_id:anon-1", "email:ann@example.com", "email:ANN@example.COM", shopper["id"]):
        response = read(client, f"/v1/profiles/{identifier}")
        assert response.status_code == 200, identifier
        assert response.json() == shopper


def test_unknown_identifiers_are_404_and_unknown_kinds_400(client: TestClient, shopper: dict[str, Any]) -> None:
    body = assert_error(read(client, "/v1/profiles/user_id:nobody"), 404, "not_found", field="identifier",
                        says="nobody")
    assert "user_id" in body["message"]
    assert_error(read(client, "/v1/profiles/p_does_not_exist"), 404, "not_found", field="identifier")
    assert_error(read(client, "/v1/profiles/email:nobody@example.com/events"), 404, "not_found")
    assert_error(read(client, "/v1/profiles/user_id:nobody/merges"), 404, "not_found")
    body = assert_error(read(client, "/v1/profiles/phone:+4912345"), 400, "invalid_request", field="identifier",
                        says="unknown identifier kind 'phone'")
    assert "user_id" in body["message"] and "anonymous_id" in body["message"]
    assert_error(read(client, "/v1/profiles/user_id:null"), 404, "not_found")  # a blocked value is never an id


def test_events_are_newest_first_and_paged_with_a_cursor(client: TestClient, engine: Engine) -> None:
    _send(client, *[_msg("track", i, minutes=i, userId="u-7", event=f"E{i}") for i in range(7)])
    _send(client, _msg("track", 99, minutes=3, userId="someone-else", event="Other"))
    engine.processor.run_until_caught_up()

    first = read(client, "/v1/profiles/user_id:u-7/events", limit=3).json()
    assert [e["event"] for e in first["data"]] == ["E6", "E5", "E4"]
    assert all(e["source"] == "default" and e["userId"] == "u-7" for e in first["data"])
    names, cursor, pages = [], None, 0
    while True:
        page = read(client, "/v1/profiles/user_id:u-7/events", limit=3, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200
        names += [e["event"] for e in page.json()["data"]]
        pages += 1
        cursor = page.json()["next"]
        if cursor is None:
            break
    assert names == [f"E{i}" for i in reversed(range(7))]
    assert pages == 3
    assert first["profile_id"] == read(client, "/v1/profiles/user_id:u-7").json()["id"]
    for cursor in ("yesterday", "1_2_3", "99999999999999999999_1", f"1_{-(2**63) - 1}"):
        assert_error(read(client, "/v1/profiles/user_id:u-7/events", cursor=cursor), 400, "invalid_request",
                     field="cursor", says="cursor")
    assert_error(read(client, "/v1/profiles/user_id:u-7/events", limit=0), 400, "invalid_request", field="limit")


def test_a_merged_away_profile_resolves_to_the_survivor(client: TestClient, engine: Engine) -> None:
    _send(client, _msg("page", 1, 0, anonymousId="phone-anon", name="Home"),
          _msg("track", 2, 1, anonymousId="laptop-anon", event="Viewed"),
          _msg("identify", 3, 2, userId="u-9", anonymousId="laptop-anon", traits={"plan": "pro"}))
    engine.processor.run_until_caught_up()
    phone = read(client, "/v1/profiles/anonymous_id:phone-anon").json()
    survivor = read(client, "/v1/profiles/user_id:u-9").json()
    assert phone["id"] != survivor["id"]

    _send(client, _msg("identify", 4, 3, userId="u-9", anonymousId="phone-anon"))
    engine.processor.run_until_caught_up()
    merged = read(client, "/v1/profiles/user_id:u-9").json()
    assert merged["identifiers"]["anonymous_id"] == ["laptop-anon", "phone-anon"]
    assert merged["event_count"] == 4
    for identifier in ("anonymous_id:phone-anon", "anonymous_id:laptop-anon", phone["id"], survivor["id"]):
        assert read(client, f"/v1/profiles/{identifier}").json()["id"] == merged["id"], identifier
    gone = phone["id"] if merged["id"] == survivor["id"] else survivor["id"]
    assert merged["merged_from"] == [gone]

    merges = read(client, f"/v1/profiles/{phone['id']}/merges")
    assert merges.status_code == 200
    [merge] = merges.json()["data"]
    assert merges.json()["profile_id"] == merged["id"]
    assert merge["merged"] == gone
    assert merge["seq"] == 4
    assert merge["reason"]
    timeline = read(client, "/v1/profiles/anonymous_id:phone-anon/events").json()["data"]
    assert [e["messageId"] for e in timeline] == ["identify-4", "identify-3", "track-2", "page-1"]


def test_profiles_are_listed_in_pages(client: TestClient, engine: Engine) -> None:
    _send(client, *[_msg("identify", i, userId=f"user-{i}") for i in range(5)])
    engine.processor.run_until_caught_up()
    ids, cursor = [], None
    for _ in range(5):
        page = read(client, "/v1/profiles", limit=2, **({"cursor": cursor} if cursor else {})).json()
        ids += [p["id"] for p in page["data"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(ids) == 5 and ids == sorted(set(ids))
    everyone = read(client, "/v1/profiles").json()
    assert [p["id"] for p in everyone["data"]] == ids and everyone["next"] is None
    assert {p["identifiers"]["user_id"][0] for p in everyone["data"]} == {f"user-{i}" for i in range(5)}
    assert_error(read(client, "/v1/profiles", limit=501), 400, "invalid_request", field="limit")


# -- operations -----------------------------------------------------------------------------------

def test_status_reports_the_log_the_processor_and_the_state(client: TestClient, engine: Engine) -> None:
    _send(client, _msg("identify", 1, userId="u-1"), _msg("track", 2, userId="u-1", event="E"))
    before = read(client, "/v1/status").json()
    assert before["log"] == {"last_seq": 2, "events": 2, "quarantined": 0}
    assert before["processor"]["lag"] == 2
    engine.processor.run_until_caught_up()
    after = read(client, "/v1/status").json()
    assert (after["processor"]["position"], after["processor"]["lag"], after["processor"]["error"]) == (2, 0, None)
    assert after["state"]["profiles"] == 1
    assert after["state"]["identities"] == 1
    client.post("/v1/batch", json={"batch": [{"type": "track", "event": "no identity"}]})
    assert read(client, "/v1/status").json()["log"]["quarantined"] == 1


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz", auth=None)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_says_what_is_not_ready(client: TestClient, engine: Engine) -> None:
    ready = client.get("/readyz", auth=None)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"migrations": "ok", "store": "ok", "lag": 0}}
    engine.config = engine.config.with_overrides(ready_max_lag=2)
    client.post("/v1/batch", json={"batch": [{"type": "track", "userId": f"u{i}", "event": "E"} for i in range(3)]})
    lagging = client.get("/readyz", auth=None)
    assert (lagging.status_code, lagging.json()["checks"]["lag"]) == (503, 3)
    engine.processor.run_until_caught_up()
    assert client.get("/readyz", auth=None).json()["checks"]["lag"] == 0
    engine.state_db.write(lambda c: c.execute("DELETE FROM schema_migrations WHERE version = 3"))
    missing = client.get("/readyz", auth=None)
    assert missing.status_code == 503 and "lacks migrations [3]" in missing.json()["checks"]["migrations"]


def test_unknown_routes_and_methods_are_json_errors(client: TestClient) -> None:
    assert_error(client.post("/v1/nothing", json={}), 404, "not_found")
    assert_error(client.get("/v1/batch"), 405, "method_not_allowed")


def test_openapi_lists_every_route(client: TestClient) -> None:
    response = client.get("/openapi.json", auth=None)
    assert response.status_code == 200
    paths = response.json()["paths"]
    for kind in (*SPEC_MESSAGES, "batch"):
        assert "post" in paths[f"/v1/{kind}"], kind
        assert paths[f"/v1/{kind}"]["post"]["requestBody"]["required"] is True
    for path in ("/v1/profiles", "/v1/profiles/{identifier}", "/v1/profiles/{identifier}/events",
                 "/v1/profiles/{identifier}/merges", "/v1/quarantine", "/v1/status", "/healthz", "/readyz"):
        assert "get" in paths[path], path
    decide = paths["/v1/decide"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert decide["required"] == ["placements"] and "context" in decide["properties"]
    for path in ("/v1/journeys", "/v1/placements", "/v1/deliveries", "/v1/suppressions"):
        assert "get" in paths[path], path
    assert client.get("/docs", auth=None).status_code == 200
