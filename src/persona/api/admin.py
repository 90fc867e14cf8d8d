"""Operations: health, status, the quarantine of rejected messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.log.events import iso
from persona.status import readiness, status_of

router = APIRouter(tags=["operations"])
Secret = Annotated[Engine, Depends(require_secret)]


@router.get("/healthz", summary="The process is up")
def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Ready for traffic: store reachable, migrations applied, processing keeping up",
            responses={503: {"description": "Not ready; `checks` says which check failed"}})
def readyz(request: Request) -> Response:
    ok, checks = readiness(request.app.state.engine)
    return json_response({"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503)


@router.get("/v1/status", summary="Log size, processor position and lag, profile counts")
def status(engine: Secret) -> Response:
    return json_response(status_of(engine))


@router.get("/v1/quarantine", summary="Messages ingest rejected, newest first, with the reason")
def quarantine(engine: Secret, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               source: str | None = None) -> Response:
    items = engine.log.quarantined(limit=limit, source_id=source)
    return json_response({"data": [
        {"id": q.id, "source_id": q.source_id, "received_at": iso(q.received_at), "field": q.field,
         "reason": q.reason, "message": q.message} for q in items]})
