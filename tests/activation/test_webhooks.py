"""Standard Webhooks signing and verification, and destinations read from YAML."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from persona.activation.delivery import RETRY, outcome
from persona.activation.webhooks import (
    Destination,
    DestinationError,
    SignatureError,
    new_secret,
    parse_destinations,
    read_destinations_file,
    sign,
    signed_headers,
    verify,
)

# The reference libraries' own test vector (standard-webhooks, libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_matches_the_specs_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.encode()) == SPEC_SIGNATURE


def test_sign_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    secret = new_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    body = b'{"event": "\xc3\xa9t\xc3\xa9"}'
    mac = hmac.new(key, b"abc.1700000000." + body, hashlib.sha256).digest()
    assert sign(secret, "abc", 1700000000, body) == "v1," + base64.b64encode(mac).decode()
    assert len(key) == 32


def test_verify_accepts_a_signed_delivery_and_rejects_the_rest() -> None:
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    now = SPEC_TIMESTAMP + 10
    verify(SPEC_SECRET, headers, SPEC_BODY, now=now)
    verify(SPEC_SECRET, {k.title(): v for k, v in headers.items()}, SPEC_BODY.encode(), now=now)  # any case
    # several signatures (a secret being rotated): one that matches is enough
    verify(SPEC_SECRET, headers | {"webhook-signature": f"v1,bm9wZQ== v2,x {SPEC_SIGNATURE}"}, SPEC_BODY, now=now)
    bad = [
        (headers, SPEC_BODY + " ", now),                                          # body changed
        (headers | {"webhook-id": "msg_other"}, SPEC_BODY, now),                  # id changed
        (headers, SPEC_BODY, SPEC_TIMESTAMP + 301),                               # too old
        (headers, SPEC_BODY, SPEC_TIMESTAMP - 301),                               # from the future
        (headers | {"webhook-timestamp": "soon"}, SPEC_BODY, now),
        ({k: v for k, v in headers.items() if k != "webhook-signature"}, SPEC_BODY, now),
        (headers | {"webhook-signature": SPEC_SIGNATURE.replace("v1,", "v2,")}, SPEC_BODY, now),
    ]
    for given, body, at in bad:
        with pytest.raises(SignatureError):
            verify(SPEC_SECRET, given, body, now=at)
    with pytest.raises(SignatureError):
        verify(new_secret(), headers, SPEC_BODY, now=now)


def test_signed_headers_verify() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "journey:welcome:p1:1", b"{}")
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    verify(secret, headers, b"{}")


def test_outcomes_of_http_statuses() -> None:
    assert [outcome(c) for c in (200, 201, 204)] == ["delivered"] * 3
    assert [outcome(c) for c in (408, 409, 425, 429, 500, 502, 503, 504)] == [RETRY] * 8
    assert [outcome(c) for c in (301, 307, 400, 401, 403, 404, 410, 413, 422)] == ["dead"] * 9


def test_destinations_parse_with_defaults_and_durations() -> None:
    secret = new_secret()
    found = parse_destinations({
        "crm": {"url": "https://crm.example.com/hooks", "secret": secret},
        "warehouse": {"url": "http://10.0.0.5:8080/in", "secret_env": "WAREHOUSE_SECRET", "timeout": "30s",
                      "max_concurrency": 16, "max_attempts": 3, "backoff_base": 0.5, "backoff_max": "15m"},
    }, env={"WAREHOUSE_SECRET": secret})
    assert found["crm"] == Destination("crm", "https://crm.example.com/hooks", secret)
    assert found["warehouse"] == Destination("warehouse", "http://10.0.0.5:8080/in", secret, 30.0, 16, 3, 0.5, 900.0)
    assert [found["warehouse"].backoff_ceiling(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert found["crm"].backoff_ceiling(20) == 3600.0


@pytest.mark.parametrize(("raw", "field"), [
    ([], "destinations"),
    ({"crm": "https://x"}, "destinations.crm"),
    ({"bad name": {}}, "destinations.bad name"),
    ({"crm": {"secret": "S"}}, "destinations.crm.url"),
    ({"crm": {"url": "ftp://x/", "secret": "S"}}, "destinations.crm.url"),
    ({"crm": {"url": "https://x/"}}, "destinations.crm.secret"),
    ({"crm": {"url": "https://x/", "secret": "whsec_not base64!"}}, "destinations.crm.secret"),
    ({"crm": {"url": "https://x/", "secret": "whsec_c2hvcnQ="}}, "destinations.crm.secret"),
    ({"crm": {"url": "https://x/", "secret_env": "NOPE"}}, "destinations.crm.secret_env"),
    ({"crm": {"url": "https://x/", "secret": "S", "timeout": 0}}, "destinations.crm.timeout"),
    ({"crm": {"url": "https://x/", "secret": "S", "timeout": "soon"}}, "destinations.crm.timeout"),
    ({"crm": {"url": "https://x/", "secret": "S", "max_attempts": 0}}, "destinations.crm.max_attempts"),
    ({"crm": {"url": "https://x/", "secret": "S", "max_concurrency": 2.5}}, "destinations.crm.max_concurrency"),
    ({"crm": {"url": "https://x/", "secret": "S", "backoff_base": "1h", "backoff_max": "1m"}},
     "destinations.crm.backoff_max"),
    ({"crm": {"url": "https://x/", "secret": "S", "retries": 3}}, "destinations.crm.retries"),
])
def test_destination_errors_name_the_field(raw: object, field: str) -> None:
    secret = new_secret()

    def with_secret(value: object) -> object:
        if isinstance(value, dict):
            return {k: with_secret(v) for k, v in value.items()}
        return secret if value == "S" else value

    with pytest.raises(DestinationError) as caught:
        parse_destinations(with_secret(raw), env={})
    assert caught.value.field == field


def test_destinations_file(tmp_path: Path) -> None:
    file = tmp_path / "destinations.yaml"
    file.write_text(f"crm:\n  url: https://crm.example.com/hooks\n  secret: {new_secret()}\n  timeout: 5\n")
    assert read_destinations_file(file)["crm"].timeout == 5.0
    file.write_text("crm: [unclosed\n")
    with pytest.raises(DestinationError, match="not valid YAML"):
        read_destinations_file(file)


def test_the_documented_receiver_snippet_verifies_our_signatures() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "activation.md").read_text()
    section = doc.split("## Webhooks: verifying a delivery", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/activation.md", "exec"), namespace)
    verify_webhook, invalid = namespace["verify_webhook"], namespace["InvalidWebhook"]
    assert callable(verify_webhook) and isinstance(invalid, type)
    secret, body = new_secret(), b'{"event": "Order Completed"}'
    headers = signed_headers(secret, "journey:welcome:p1:1", body)
    verify_webhook(secret, {k.title(): v for k, v in headers.items()}, body)
    for wrong_secret, wrong_body in ((new_secret(), body), (secret, body + b" ")):
        with pytest.raises(invalid):
            verify_webhook(wrong_secret, headers, wrong_body)
    with pytest.raises(invalid):
        verify_webhook(secret, headers | {"webhook-timestamp": "1614265330"}, body)
