"""JSON responses encoded with msgspec, and errors turned into JSON the same way everywhere."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from persona.errors import PersonaError, error_body

_encode = msgspec.json.Encoder().encode


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


async def persona_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PersonaError)
    headers = {"WWW-Authenticate": 'Basic realm="persona"'} if exc.status == 401 else None
    response = json_response(exc.to_json(), exc.status)
    if headers:
        response.headers.update(headers)
    return response


async def validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")) or None
    return json_response(error_body("invalid_request", f"{field}: {first.get('msg', 'invalid')}", field), 400)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response(error_body(code, str(exc.detail)), exc.status_code)
