"""Segments and computed traits (secret key): definitions (create, read, replace, delete),
members (paged JSON, or every member as CSV), size over time, overlap."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response, StreamingResponse

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.log.events import to_micros
from persona.segments.store import Kind, StoredDefinition

router = APIRouter(tags=["audiences"])
Secret = Annotated[Engine, Depends(require_secret)]
Definition = Annotated[dict[str, Any], Body(description="The definition, as in docs/segments.md")]
AllowUnseen = Annotated[bool, Query(description="Accept events the log has not seen yet (by default a 400: "
                                                "most likely a typo)")]


def _json(d: StoredDefinition) -> dict[str, Any]:
    return {"id": d.id, "definition": d.body, "created_at": d.created_at, "updated_at": d.updated_at}


@router.get("/v1/segments/overlap", summary="Members shared by each pair of segments")
def overlap(engine: Secret,
            segments: Annotated[str, Query(description="Segment ids, comma-separated (2 to 20)")]) -> Response:
    return json_response(engine.segments.overlap([s for s in segments.split(",") if s]))


@router.get("/v1/segments/{segment_id}/members", summary="A segment's members, by profile id, paged; or all as CSV")
def members(
    segment_id: str, engine: Secret,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next` from the previous page")] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="csv: every member, streamed")] = "json",
) -> Response:
    if format == "csv":
        return StreamingResponse(engine.segments.members_csv(segment_id), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{segment_id}.csv"'})
    return json_response(engine.segments.members(segment_id, limit=limit, cursor=cursor))


@router.get("/v1/segments/{segment_id}/size", summary="A segment's size now and over time")
def size(segment_id: str, engine: Secret,
         since: Annotated[datetime | None, Query(description="History from this time (ISO 8601)")] = None) -> Response:
    since_us = to_micros(since if since.tzinfo else since.replace(tzinfo=UTC)) if since else 0
    return json_response(engine.segments.size(segment_id, since_us))


def _routes(path: str, kind: Kind, noun: str) -> None:
    @router.get(f"/v1/{path}", summary=f"Every {noun}")
    def list_all(engine: Secret) -> Response:
        return json_response({"data": [_json(d) for d in engine.definitions.list(kind)]})

    @router.post(f"/v1/{path}", status_code=201, summary=f"Create a {noun} (checked first: 400 says where)")
    def create(engine: Secret, body: Definition, allow_unseen_events: AllowUnseen = False) -> Response:
        saved = engine.definitions.save(kind, body, check_events=not allow_unseen_events)
        return json_response(_json(saved), status=201)

    @router.get(f"/v1/{path}/{{definition_id}}", summary=f"One {noun}")
    def get(definition_id: str, engine: Secret) -> Response:
        return json_response(_json(engine.definitions.get(kind, definition_id)))

    @router.put(f"/v1/{path}/{{definition_id}}", summary=f"Replace a {noun}")
    def replace(definition_id: str, engine: Secret, body: Definition, allow_unseen_events: AllowUnseen = False
                ) -> Response:
        saved = engine.definitions.save(kind, body, replace=definition_id, check_events=not allow_unseen_events)
        return json_response(_json(saved))

    @router.delete(f"/v1/{path}/{{definition_id}}", status_code=204,
                   summary=f"Delete a {noun} (409 while a segment refers to it)")
    def delete(definition_id: str, engine: Secret) -> Response:
        engine.definitions.delete(kind, definition_id)
        return Response(status_code=204)


_routes("segments", "segment", "segment")
_routes("computed-traits", "computed_trait", "computed trait")
