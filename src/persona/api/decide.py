"""The decision API (secret key): `POST /v1/decide`, the content each placement shows a profile,
chosen by the placement's ordered variants, rendered, with recommendations where configured."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from persona.activation.decide import Decider
from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.errors import RequestError
from persona.log.events import now_micros

router = APIRouter(tags=["decisions"])
Secret = Annotated[Engine, Depends(require_secret)]


class DecideRequest(msgspec.Struct, forbid_unknown_fields=True):
    placements: list[str]
    identifier: str | None = None       # user_id:…, anonymous_id:…, email:… or a profile id; none: anonymous
    context: dict[str, Any] = msgspec.field(default_factory=dict)  # device, page, …: what `context:` rules read
    log_exposure: bool = True           # append a `Content Shown` event per decision


@router.post("/v1/decide", summary="The content for each placement, chosen for the profile, with the reason")
def decide(raw: Annotated[dict[str, Any], Body(description="placements: [names]; identifier (user_id:…, "
                                                           "anonymous_id:…, email:…; none: anonymous); context: "
                                                           "what `context:` rules read; log_exposure (true)")],
           engine: Secret) -> Response:
    try:
        body = msgspec.convert(raw, DecideRequest)
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc), field="body") from None
    decider = Decider(find=engine.profiles.find, state=engine.state, audiences=engine.audiences,
                      model_traits=engine.model_traits,
                      recommender=engine.recommender, catalog=engine.catalog, log=engine.log,
                      placements=lambda: engine.placements)
    return json_response(decider.decide(body.identifier, body.placements, body.context, now_micros(),
                                        body.log_exposure))
