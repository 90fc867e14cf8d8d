"""Placements (secret key): business rules and content variants per placement, as the
`placements` file writes them; checked on save (400 says where), served within a second."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine

router = APIRouter(tags=["placements"])
Secret = Annotated[Engine, Depends(require_secret)]
Rules = Annotated[dict[str, Any], Body(description="The placement's rules and variants, as in docs/activation.md")]


@router.get("/v1/placements", summary="Every placement: name -> rules")
def list_all(engine: Secret) -> Response:
    return json_response({"data": engine.placement_store.bodies()})


@router.get("/v1/placements/{name}", summary="One placement's rules")
def get(name: str, engine: Secret) -> Response:
    return json_response(engine.placement_store.get(name))


@router.put("/v1/placements/{name}", summary="Create (201) or replace (200) a placement, checked first")
def put(name: str, engine: Secret, body: Rules) -> Response:
    created = engine.placement_store.save(name, body)
    return json_response(engine.placement_store.get(name), status=201 if created else 200)


@router.delete("/v1/placements/{name}", status_code=204, summary="Delete a placement")
def delete(name: str, engine: Secret) -> Response:
    engine.placement_store.delete(name)
    return Response(status_code=204)
