"""Profile reads (secret key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine

# Routes are `async def` on purpose: a profile read is one indexed SQLite lookup (~50 µs), cheaper
# than the two GIL handoffs a trip through the thread pool costs under ingest load.
router = APIRouter(tags=["profiles"])
Secret = Annotated[Engine, Depends(require_secret)]


@router.get("/v1/profiles", summary="All profiles, ordered by id, paged (for exports and notebooks)")
async def list_profiles(
    engine: Secret,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next` from the previous page")] = None,
) -> Response:
    return json_response(engine.profiles.page(limit=limit, cursor=cursor))


@router.get("/v1/profiles/{identifier}", summary="A unified profile by user_id:, anonymous_id:, email: or id")
async def get_profile(identifier: str, engine: Secret) -> Response:
    profile = engine.profiles.show(identifier)
    return json_response({**profile, **engine.segments.of_profile(profile["id"]),
                          "model_traits": engine.model_traits.of_profile(profile["id"])})


@router.get("/v1/profiles/{identifier}/events", summary="The profile's events, newest first, paged")
async def get_profile_events(
    identifier: str, engine: Secret,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next` from the previous page")] = None,
) -> Response:
    return json_response(engine.profiles.events(identifier, limit=limit, cursor=cursor))


@router.get("/v1/profiles/{identifier}/merges", summary="Profiles merged into this one, and why")
async def get_profile_merges(identifier: str, engine: Secret) -> Response:
    profile = engine.profiles.find(identifier)
    merges = engine.state.merges(profile.id)
    return json_response({"profile_id": profile.id, "data": [
        {"merged": m.merged, "reason": m.reason, "seq": m.seq} for m in merges]})
