"""The decision API (secret key): `POST /v1/decide`, the content each placement shows a profile,
chosen by the placement's ordered variants, rendered, with recommendations where configured.

Async and decoded straight into a struct: latency is the product here, and the exposure's
commit is awaited without holding a thread (concurrent requests share a group commit)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from persona.activation.decide import Decider
from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.errors import RequestError
from persona.log.events import now_micros

router = APIRouter(tags=["decisions"])


class DecideRequest(msgspec.Struct, forbid_unknown_fields=True):
    placements: list[str]
    identifier: str | None = None       # user_id:…, anonymous_id:…, email:… or a profile id; none: anonymous
    context: dict[str, Any] = msgspec.field(default_factory=dict)  # device, page, …: what `context:` rules read
    log_exposure: bool = True           # append a `Content Shown` event per decision


_decode = msgspec.json.Decoder(DecideRequest).decode
_AT = re.compile(r"at `\$\.?([^`]*)`$")
_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": msgspec.json.schema(DecideRequest)["$defs"]["DecideRequest"],
    "example": {"identifier": "user_id:u1", "placements": ["home_banner"], "context": {"device": "mobile"}}}}}}


@router.post("/v1/decide", summary="The content for each placement, chosen for the profile, with the reason",
             openapi_extra=_BODY)
async def decide(request: Request) -> Response:
    engine = require_secret(request)
    try:
        body = _decode(await request.body())
    except msgspec.ValidationError as exc:  # "Expected `array`, got `str` - at `$.placements`"
        where = _AT.search(str(exc))
        raise RequestError(str(exc), field=where.group(1) if where and where.group(1) else "body") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}", field="body", code="invalid_json") from None
    decider = Decider(find=engine.profiles.find, state=engine.state, audiences=engine.audiences,
                      model_traits=engine.model_traits, recommender=engine.recommender, catalog=engine.catalog,
                      placements=lambda: engine.placements)
    answer, exposures = decider.decide(body.identifier, body.placements, body.context, now_micros(),
                                       body.log_exposure)
    if exposures:
        await engine.log.append_async(exposures)
    return json_response(answer)
