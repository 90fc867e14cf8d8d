"""Secret-key authentication for every read and admin route."""

from __future__ import annotations

from fastapi import Request

from persona.access.keys import KeyKind
from persona.engine import Engine
from persona.errors import AuthError, Forbidden


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def require_secret(request: Request) -> Engine:
    """FastAPI dependency: the request carries `Authorization: Bearer <secret key>`."""
    engine = engine_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("reading needs a secret key: Authorization: Bearer <secret key>", code="missing_secret_key")
    key = engine.keys.lookup(token.strip())
    if key is None:
        raise AuthError("the secret key is not valid", code="invalid_secret_key")
    if key.kind is not KeyKind.SECRET:
        raise Forbidden("a write key can only send events; reading needs a secret key")
    return engine
