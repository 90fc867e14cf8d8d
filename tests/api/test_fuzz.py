"""Whatever a client sends, the API answers 200 or a 4xx JSON error, never a 500, and never
disturbs what was stored before.

Each test stores a baseline (events and the profile they make), throws generated input at
the API, then checks that the log holds the baseline bodies unchanged plus exactly what the
200 answers said was accepted, that the processor can apply everything that was accepted,
and that the baseline profile is the same as before.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.engine import Engine
from persona.ingest.messages import MAX_DEPTH
from tests.conftest import WRITE_KEY, TestClient
from tests.support.api import read, stored

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INGEST_PATHS = ["/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"]
OWNER = "baseline-owner-5c1f"

# -- generated input --------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
timestamps = (st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(datetime.isoformat)
              | st.sampled_from(["", "now", "2026-02-30T00:00:00Z", "0001-01-01T00:00:00+01:00",
                                 "9999-12-31T23:59:59-23:59", "2026-09-01T10:00:00+25:00", "1e999",
                                 "2026-09-01T10:00:00.1234567891Z"])
              | json_values)
FIELDS = ["type", "userId", "anonymousId", "messageId", "context", "integrations", "properties", "traits",
          "event", "name", "category", "previousId", "groupId", "writeKey", "receivedAt"]


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message of a random type with some fields replaced by anything at all."""
    kind = draw(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]))
    message: dict[str, Any] = {"type": kind, "userId": draw(st.text(min_size=1, max_size=12)),
                               "anonymousId": "fuzz-anon", "event": "Fuzzed", "groupId": "g", "previousId": "p",
                               "traits": {"plan": "x"}, "properties": {"n": 1}}
    message.update(draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3)))
    message.update(draw(st.dictionaries(st.sampled_from(["timestamp", "originalTimestamp", "sentAt"]),
                                        timestamps, max_size=2)))
    for field in draw(st.sets(st.sampled_from(FIELDS), max_size=2)):
        message.pop(field, None)
    return message


batches = st.fixed_dictionaries({"batch": st.lists(messages(), max_size=5)}, optional={
    "context": json_values, "integrations": json_values, "sentAt": timestamps, "writeKey": json_values})
bodies = st.one_of(messages(), batches, json_values.map(lambda v: {"batch": v}), json_values)


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


# -- the invariant ----------------------------------------------------------------------------

@dataclass
class Baseline:
    client: TestClient
    engine: Engine
    bodies: list[dict[str, Any]]
    profile: dict[str, Any]
    accepted: int = 0  # what 200 answers said they added since

    def answer(self, response: httpx.Response) -> dict[str, Any]:
        """A 200 or a 4xx with a JSON error; never anything else."""
        assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json", response.text
        body = response.json()
        if response.status_code == 200:
            if isinstance(body, dict) and body.get("success") is True:
                self.accepted += body["accepted"]
        else:
            assert isinstance(body["error"], str) and body["error"], body
            assert isinstance(body["message"], str) and body["message"], body
        return body

    def post(self, path: str, content: bytes, headers: dict[str, Any] | None = None,
             auth: Any = (WRITE_KEY, "")) -> dict[str, Any]:
        return self.answer(self.client.post(path, content=content, headers=headers, auth=auth))

    def assert_untouched(self) -> None:
        now = stored(self.engine)
        assert now[: len(self.bodies)] == self.bodies
        assert len(now) == len(self.bodies) + self.accepted
        self.engine.processor.run_until_caught_up()  # everything accepted can be applied
        assert read(self.client, "/v1/status").json()["processor"]["lag"] == 0
        assert read(self.client, f"/v1/profiles/user_id:{OWNER}").json() == self.profile


@pytest.fixture
def baseline(client: TestClient, engine: Engine) -> Baseline:
    batch = [
        {"type": "page", "anonymousId": "baseline-anon-5c1f", "name": "Home", "messageId": "base-1",
         "timestamp": "2026-09-01T09:00:00Z"},
        {"type": "identify", "userId": OWNER, "anonymousId": "baseline-anon-5c1f", "messageId": "base-2",
         "traits": {"email": "owner-5c1f@persona.test", "plan": "pro"}, "timestamp": "2026-09-01T09:01:00Z"},
        {"type": "track", "userId": OWNER, "event": "Order Completed", "messageId": "base-3",
         "properties": {"order_id": "o-1", "revenue": 42.5}, "timestamp": "2026-09-01T09:02:00Z"},
    ]
    assert client.post("/v1/batch", json={"batch": batch}).json()["accepted"] == 3
    engine.processor.run_until_caught_up()
    profile = read(client, f"/v1/profiles/user_id:{OWNER}").json()
    assert profile["orders"]["revenue"] == 42.5
    return Baseline(client, engine, stored(engine), profile)


def fuzz(baseline: Baseline, strategy: st.SearchStrategy[Any], send: Callable[[Any], object]) -> None:
    @FUZZ
    @given(strategy)
    def run(value: Any) -> None:
        send(value)

    run()
    baseline.assert_untouched()


# -- the tests --------------------------------------------------------------------------------

def test_garbage_bytes(baseline: Baseline) -> None:
    fuzz(baseline, st.tuples(st.sampled_from(INGEST_PATHS), st.binary(max_size=2048)),
         lambda v: baseline.post(v[0], v[1]))


def test_truncated_json(baseline: Baseline) -> None:
    @st.composite
    def truncated(draw: st.DrawFn) -> tuple[str, bytes]:
        path = draw(st.sampled_from(INGEST_PATHS))
        raw = encode(draw(batches if path == "/v1/batch" else messages()))
        return path, raw[: draw(st.integers(0, max(0, len(raw) - 1)))]

    fuzz(baseline, truncated(), lambda v: baseline.post(v[0], v[1]))


def test_truncated_and_corrupt_gzip(baseline: Baseline) -> None:
    @st.composite
    def broken(draw: st.DrawFn) -> bytes:
        raw = bytearray(gzip.compress(encode(draw(batches))))
        if draw(st.booleans()):
            return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)

    fuzz(baseline, broken(), lambda raw: baseline.post("/v1/batch", raw, {"Content-Encoding": "gzip"}))


def test_wrongly_typed_fields_in_single_messages(baseline: Baseline) -> None:
    fuzz(baseline, st.tuples(st.sampled_from(INGEST_PATHS[:-1]), messages()),
         lambda v: baseline.post(v[0], encode(v[1])))


def test_wrongly_typed_batches(baseline: Baseline) -> None:
    fuzz(baseline, bodies, lambda body: baseline.post("/v1/batch", encode(body)))


def test_garbage_headers(baseline: Baseline) -> None:
    header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60)
    authorization = (header_text | header_text.map(lambda t: "Basic " + t)
                     | st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()))
    encoding = header_text | st.sampled_from(["gzip", "GZIP", " gzip ", "identity", "deflate", "br"])

    def send(headers: tuple[str, str]) -> None:
        values = {"Authorization": headers[0].encode("latin-1"), "Content-Encoding": headers[1].encode("latin-1")}
        baseline.post("/v1/batch", encode({"batch": [{"type": "track", "userId": "h", "event": "E"}]}), values,
                      auth=None)

    fuzz(baseline, st.tuples(authorization, encoding), send)


def test_garbage_reads(baseline: Baseline) -> None:
    text = st.text(max_size=30)
    big_ints = st.integers() | st.integers(2**63 - 2, 2**64) | st.integers(-(2**64), -(2**63) + 1)
    path = st.one_of(
        st.tuples(st.sampled_from(["user_id:", "anonymous_id:", "email:", "", "phone:", ":"]), text).map(
            lambda p: "/v1/profiles/" + quote(p[0] + p[1], safe="")),
        st.tuples(st.sampled_from(["", "/events", "/merges"]), text).map(
            lambda p: f"/v1/profiles/user_id:{OWNER}{p[0]}"),
    )
    params = st.dictionaries(st.sampled_from(["limit", "cursor", "source"]),
                             text | st.integers().map(str) | st.tuples(big_ints, big_ints).map(
                                 lambda t: f"{t[0]}_{t[1]}"), max_size=2)
    fuzz(baseline, st.tuples(path, params), lambda v: baseline.answer(read(baseline.client, v[0], **v[1])))


DEPTH = 10_000


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/batch", "[" * DEPTH + "]" * DEPTH),
    ("/v1/batch", '{"a":' * DEPTH + "1" + "}" * DEPTH),
    ("/v1/batch", '{"batch":' + "[" * DEPTH + "]" * DEPTH + "}"),
    ("/v1/batch", '{"batch":[], "context":' + '{"a":' * DEPTH + "1" + "}" * DEPTH + "}"),
    ("/v1/batch", '{"batch":[{"type":"track","userId":"d","event":"E","properties":'
                  + '{"a":' * DEPTH + "1" + "}" * DEPTH + "}]}"),
    ("/v1/batch", '{"batch":[{"type":"identify","userId":"d","traits":{"t":' + "[" * DEPTH + "]" * DEPTH + "}}]}"),
    ("/v1/batch", '{"batch":[{"type":' + "[" * DEPTH + "]" * DEPTH + ',"userId":"d"}]}'),
    ("/v1/identify", '{"userId":"d","traits":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"),
    ("/v1/track", "[" * DEPTH + "]" * DEPTH),
])
def test_deeply_nested_json(baseline: Baseline, path: str, body: str) -> None:
    answer = baseline.post(path, body.encode())
    assert "error" in answer
    gzipped = baseline.post(path, gzip.compress(body.encode()), {"Content-Encoding": "gzip"})
    assert gzipped["error"] == answer["error"]
    baseline.assert_untouched()


@pytest.mark.parametrize("depth", [50, MAX_DEPTH - 3])  # message, traits, deep: three levels more
def test_nesting_that_is_accepted_can_be_processed_and_read(baseline: Baseline, depth: int) -> None:
    nested = "{" + '"a":{' * depth + "}" * depth + "}"
    raw = (f'{{"batch":[{{"type":"identify","userId":"deep-{depth}","traits":{{"deep":{nested}}},'
           f'"context":{{"x":{nested}}},"properties":{nested}}}]}}')
    assert baseline.post("/v1/batch", raw.encode())["accepted"] == 1
    baseline.assert_untouched()
    profile = read(baseline.client, f"/v1/profiles/user_id:deep-{depth}")
    assert profile.status_code == 200
    assert profile.json()["traits"]["deep"] == json.loads(nested)
    [event] = read(baseline.client, f"/v1/profiles/user_id:deep-{depth}/events").json()["data"]
    assert event["properties"] == json.loads(nested)


@pytest.mark.parametrize("depth", [MAX_DEPTH, 400, 950])
def test_nesting_over_the_limit_is_refused_alone_whatever_the_stack(baseline: Baseline, depth: int) -> None:
    """Validated on a worker thread, read on the event loop: both must agree on what fits."""
    nested = '{"a":' * depth + "1" + "}" * depth
    pad = "x" * 20_000  # big enough to be validated off the event loop
    raw = (f'{{"batch":[{{"type":"track","userId":"deep","event":"E","properties":{nested},'
           f'"context":{{"pad":"{pad}"}}}}, {{"type":"track","userId":"flat","event":"E"}}]}}')
    answer = baseline.post("/v1/batch", raw.encode())
    assert answer["accepted"] == 1
    [rejected] = answer["rejected"]
    assert rejected["field"] == "properties" and f"deeper than {MAX_DEPTH} levels" in rejected["reason"]
    quarantine = read(baseline.client, "/v1/quarantine")
    assert quarantine.status_code == 200
    assert quarantine.json()["data"][0]["field"] == "properties"
    baseline.assert_untouched()


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/track", {"userId": "x" * 600, "event": "E"}),
    ("/v1/track", {"userId": "u", "event": "E" * 40_000}),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "E" * 40_000}]}),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "m" * 10_000}]}),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"k" * 40_000: 1}}]}),
    ("/v1/batch", {"batch": [], "context": {"s": "x" * 2_000_000}}),
    ("/v1/identify", {"userId": "u", "traits": {"bio": "\u00e9" * 20_000}}),
])
def test_huge_strings(baseline: Baseline, path: str, body: dict[str, Any]) -> None:
    answer = baseline.post(path, encode(body))
    assert answer.get("accepted", 0) == 0
    assert "error" in answer or answer.get("rejected")
    baseline.assert_untouched()


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E+400", "1" * 400, "1" * 400 + ".5", "1" * 250 + "e60",
                                    "1.5e-400", "-0"], ids=lambda n: n[:12] + f"…{len(n)}")
def test_numbers_out_of_range(baseline: Baseline, number: str) -> None:
    base = {"anonymousId": '"n"', "event": '"E"', "properties": '{"v":1}'}
    for field in ("userId", "anonymousId", "messageId", "timestamp", "event", "properties"):
        fields = {**base, field: number if field != "properties" else f'{{"v":{number}}}'}
        message = ",".join(f'"{k}":{v}' for k, v in fields.items())
        baseline.post("/v1/track", f"{{{message}}}".encode())
        baseline.post("/v1/batch", f'{{"batch":[{{"type":"track",{message}}}]}}'.encode())
    baseline.post("/v1/batch", f'{{"batch":[], "sentAt":{number}}}'.encode())
    for deep in (f'"traits":{{"a":{{"b":[{number}]}}}}', f'"context":{{"traits":{{"email":{number}}}}}',
                 f'"event":"Order Completed","properties":{{"revenue":{number}}}'):
        baseline.post("/v1/identify", f'{{"userId":"n",{deep}}}'.encode())
        baseline.post("/v1/batch", f'{{"batch":[{{"type":"track","userId":"n","event":"E",{deep}}}]}}'.encode())
    baseline.assert_untouched()


@pytest.mark.parametrize("where", ["userId", "properties", "traits", "context", "key"])
def test_invalid_utf8_anywhere(baseline: Baseline, where: str) -> None:
    bad = b'"caf\xe9 \xff"'
    fields = {"userId": b'"u"', "event": b'"E"', "properties": b"{}", "traits": b"{}", "context": b"{}"}
    if where == "key":
        fields["properties"] = b"{" + bad + b": 1}"
    else:
        fields[where] = bad if where == "userId" else b'{"a": ' + bad + b"}"
    message = b",".join(b'"' + k.encode() + b'":' + v for k, v in fields.items())
    for path, body in (("/v1/track", b"{" + message + b"}"), ("/v1/batch", b'{"batch":[{"type":"track",'
                                                                          + message + b"}]}")):
        answer = baseline.post(path, body)
        assert answer["error"] == "invalid_json" and "UTF-8" in answer["message"], answer
    baseline.assert_untouched()


def test_the_baseline_check_notices_a_change(baseline: Baseline) -> None:
    baseline.post("/v1/track", encode({"userId": OWNER, "event": "Order Completed",
                                       "properties": {"revenue": 1.0}, "timestamp": "2026-09-02T00:00:00Z"}))
    with pytest.raises(AssertionError):
        baseline.assert_untouched()


@pytest.mark.parametrize("revenue", ["1e308", "1" * 400, "-1e308", "123456789012345678901234567890"])
def test_absurd_order_amounts_do_not_stop_the_processor(baseline: Baseline, revenue: str) -> None:
    orders = ",".join(f'{{"type":"track","userId":"big-spender","event":"Order Completed","messageId":"o{i}",'
                      f'"properties":{{"revenue":{revenue},"products":[{{"price":{revenue},"quantity":1e300}}]}}}}'
                      for i in range(3))
    assert baseline.post("/v1/batch", f'{{"batch":[{orders}]}}'.encode())["accepted"] == 3
    baseline.assert_untouched()
    profile = read(baseline.client, "/v1/profiles/user_id:big-spender")
    assert profile.status_code == 200
    assert profile.json()["orders"]["count"] == 3
    assert profile.json()["orders"]["revenue"] == 0
