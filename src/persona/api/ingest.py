"""Segment HTTP Tracking API: /v1/identify, /track, /page, /screen, /group, /alias, /batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from persona.api.auth import engine_of
from persona.api.responses import json_response

router = APIRouter(tags=["ingest (Segment HTTP Tracking API)"])

_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Segment message (https://segment.com/docs/connections/spec/common/).",
    "properties": {
        "userId": {"type": "string"}, "anonymousId": {"type": "string"}, "messageId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "context": {"type": "object"}, "integrations": {"type": "object"},
        "properties": {"type": "object"}, "traits": {"type": "object"},
        "event": {"type": "string"}, "name": {"type": "string"}, "previousId": {"type": "string"},
        "groupId": {"type": "string"}, "writeKey": {"type": "string"},
    },
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "maxItems": 2500,
                  "items": {**_MESSAGE_SCHEMA, "required": ["type"],
                            "properties": {**_MESSAGE_SCHEMA["properties"], "type": {"type": "string"}}}},
        "context": {"type": "object"}, "integrations": {"type": "object"},
        "sentAt": {"type": "string", "format": "date-time"}, "writeKey": {"type": "string"},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored durably (or a duplicate of a stored messageId)."},
    400: {"description": "Invalid body or message; the JSON error names the field and the rule."},
    401: {"description": "Missing or invalid write key."},
    413: {"description": "Over the 32 KB message or 500 KB batch limit."},
}


async def _ingest(request: Request, endpoint_type: str | None) -> Response:
    engine = engine_of(request)
    result = await engine.ingest.handle(
        await request.body(),
        content_encoding=request.headers.get("content-encoding"),
        authorization=request.headers.get("authorization"),
        endpoint_type=endpoint_type,
    )
    return json_response(result.to_json())


def _route(kind: str):
    async def endpoint(request: Request) -> Response:
        return await _ingest(request, kind)

    endpoint.__name__ = kind
    return endpoint


for _kind in ("identify", "track", "page", "screen", "group", "alias"):
    router.add_api_route(
        f"/v1/{_kind}", _route(_kind), methods=["POST"], summary=f"Send one {_kind} message",
        responses=_RESPONSES,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _MESSAGE_SCHEMA}}}},
    )


@router.post("/v1/batch", summary="Send up to 2,500 messages (500 KB)", responses=_RESPONSES,
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/json": {"schema": _BATCH_SCHEMA}}}})
async def batch(request: Request) -> Response:
    return await _ingest(request, None)


@router.post("/v1/import", summary="Alias of /v1/batch, as in Segment", responses=_RESPONSES, include_in_schema=False)
async def import_(request: Request) -> Response:
    return await _ingest(request, None)
