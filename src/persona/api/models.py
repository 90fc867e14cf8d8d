"""Predictive models (secret key): the registry's versions, and activating one (a rollback)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine

router = APIRouter(tags=["models"])
Secret = Annotated[Engine, Depends(require_secret)]


@router.get("/v1/models", summary="Every trained model version, newest first (?kind=clv)")
def list_versions(engine: Secret, kind: str | None = None) -> Response:
    return json_response({"data": [v.to_json() for v in engine.models.versions(kind)]})


@router.get("/v1/models/{version}", summary="One version: when, by whom, on what, its metrics and parameters")
def get_version(version: int, engine: Secret) -> Response:
    return json_response(engine.models.get(version).to_json())


@router.get("/v1/models/{version}/drift", summary="Drift measured by its scorings, newest first: PSI of the "
                                                 "scores and of each feature, and whether it is flagged for retraining")
def drift(version: int, engine: Secret, limit: int = 10) -> Response:
    engine.models.get(version)  # 404 if there is no such version
    return json_response({"data": engine.models.drift(version, max(1, min(limit, 100)))})


@router.post("/v1/models/{version}/activate", summary="Make this version the one in use (a rollback pins it)")
def activate(version: int, engine: Secret) -> Response:
    return json_response(engine.models.activate(version).to_json())
