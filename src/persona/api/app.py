"""The FastAPI application over one Engine."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from persona.api import (
    admin,
    catalog,
    decide,
    ingest,
    journeys,
    messaging,
    models,
    placements,
    profiles,
    recommendations,
    segments,
)
from persona.api.responses import http_error, persona_error, validation_error
from persona.engine import Engine
from persona.errors import PersonaError


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(
        title="persona",
        version="0.1.0",
        description="Segment-compatible ingest, identity resolution and unified customer profiles. "
                    "Send events with a source's write key (HTTP Basic username); read with a secret key "
                    "(Authorization: Bearer).",
    )
    app.state.engine = engine
    app.add_exception_handler(PersonaError, persona_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(ingest.router)
    app.include_router(profiles.router)
    app.include_router(segments.router)
    app.include_router(catalog.router)
    app.include_router(recommendations.router)
    app.include_router(journeys.router)
    app.include_router(decide.router)
    app.include_router(messaging.router)
    app.include_router(placements.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    return app
