"""Helpers for tests that drive the HTTP API in-process through the `client` fixture."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

from persona.engine import Engine

SECRET_KEY = "ps_test_secret_key"  # the same as tests.conftest seeds
READ_HEADERS = {"Authorization": f"Bearer {SECRET_KEY}"}


def read(client: Any, path: str, *, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    """GET with the secret key. `auth=None` because the `client` fixture's Basic auth would replace it."""
    return client.get(path, params=params, headers=headers or READ_HEADERS, auth=None)


def gzipped(body: Any) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def stored(engine: Engine) -> list[dict[str, Any]]:
    """Every body in the log, in log order."""
    return [{"seq": e.seq, "source": e.source_id, **e.body} for e in engine.log.read(0, 1_000_000)]


def assert_error(response: httpx.Response, status: int, error: str, *, field: str | None = None,
                 says: str = "") -> dict[str, Any]:
    """A JSON error body with the status, code, field and (part of the) message expected."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"], body
    assert says.lower() in body["message"].lower(), body
    if field is not None:
        assert body.get("field") == field, body
    return body
