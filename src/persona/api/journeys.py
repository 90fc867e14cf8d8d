"""Journeys (secret key): definitions (create, read, replace, delete; checked on save, 400 says
where) and how many profiles are at each step."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from persona.activation.journeys import parse_journey
from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine

router = APIRouter(tags=["journeys"])
Secret = Annotated[Engine, Depends(require_secret)]
Definition = Annotated[dict[str, Any], Body(description="The journey, as in docs/activation.md")]


@router.get("/v1/journeys", summary="Every journey")
def list_all(engine: Secret) -> Response:
    return json_response({"data": engine.journeys.list()})


@router.post("/v1/journeys", status_code=201, summary="Create a journey (checked first: 400 says where)")
def create(engine: Secret, body: Definition) -> Response:
    engine.journeys.save(body)
    return json_response(engine.journeys.get(body["id"]), status=201)


@router.get("/v1/journeys/{journey_id}", summary="One journey")
def get(journey_id: str, engine: Secret) -> Response:
    return json_response(engine.journeys.get(journey_id))


@router.put("/v1/journeys/{journey_id}", summary="Replace a journey (instances of the old version end)")
def replace(journey_id: str, engine: Secret, body: Definition) -> Response:
    engine.journeys.save(body, replace=journey_id)
    return json_response(engine.journeys.get(journey_id))


@router.delete("/v1/journeys/{journey_id}", status_code=204, summary="Delete a journey (its instances end)")
def delete(journey_id: str, engine: Secret) -> Response:
    engine.journeys.delete(journey_id)
    return Response(status_code=204)


@router.get("/v1/journeys/{journey_id}/stats", summary="Entered, converted, exited; per step: reached, waiting")
def stats(journey_id: str, engine: Secret) -> Response:
    return json_response(engine.journey_store.stats(parse_journey(engine.journeys.get(journey_id))))
