"""Segment and computed-trait definitions (secret key): create, read, replace, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.segments.store import Kind, StoredDefinition

router = APIRouter(tags=["audiences"])
Secret = Annotated[Engine, Depends(require_secret)]
Definition = Annotated[dict[str, Any], Body(description="The definition, as in docs/segments.md")]


def _json(d: StoredDefinition) -> dict[str, Any]:
    return {"id": d.id, "definition": d.body, "created_at": d.created_at, "updated_at": d.updated_at}


def _routes(path: str, kind: Kind, noun: str) -> None:
    @router.get(f"/v1/{path}", summary=f"Every {noun}")
    def list_all(engine: Secret) -> Response:
        return json_response({"data": [_json(d) for d in engine.definitions.list(kind)]})

    @router.post(f"/v1/{path}", status_code=201, summary=f"Create a {noun} (checked first: 400 says where)")
    def create(engine: Secret, body: Definition) -> Response:
        return json_response(_json(engine.definitions.save(kind, body)), status=201)

    @router.get(f"/v1/{path}/{{definition_id}}", summary=f"One {noun}")
    def get(definition_id: str, engine: Secret) -> Response:
        return json_response(_json(engine.definitions.get(kind, definition_id)))

    @router.put(f"/v1/{path}/{{definition_id}}", summary=f"Replace a {noun}")
    def replace(definition_id: str, engine: Secret, body: Definition) -> Response:
        return json_response(_json(engine.definitions.save(kind, body, replace=definition_id)))

    @router.delete(f"/v1/{path}/{{definition_id}}", status_code=204,
                   summary=f"Delete a {noun} (409 while a segment refers to it)")
    def delete(definition_id: str, engine: Secret) -> Response:
        engine.definitions.delete(kind, definition_id)
        return Response(status_code=204)


_routes("segments", "segment", "segment")
_routes("computed-traits", "computed_trait", "computed trait")
