"""Messaging operations (secret key): the outbox's deliveries (list, inspect, replay dead letters)
and the suppression list (identifiers never to message)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from persona.activation.guards import Suppression
from persona.activation.outbox import STATUSES, Delivery
from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.errors import NotFound, RequestError
from persona.log.events import iso

router = APIRouter(tags=["messaging"])
Secret = Annotated[Engine, Depends(require_secret)]


def delivery_json(delivery: Delivery, *, payload: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": delivery.id, "destination": delivery.destination, "idempotency_key": delivery.key,
        "status": delivery.status, "attempts": delivery.attempts, "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status in ("pending", "delivering") else None,
        "delivered_at": iso(delivery.delivered_at) if delivery.delivered_at is not None else None,
        "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
    }
    if payload:
        out["payload"] = delivery.body()
    return out


def suppression_json(entry: Suppression) -> dict[str, Any]:
    return {"kind": entry.kind, "value": entry.value, "reason": entry.reason, "added_at": entry.added_at.isoformat()}


@router.get("/v1/deliveries", summary="Deliveries in id order: filter by destination and status (dead letters: "
                                      "status=dead); page with `after`")
def list_deliveries(engine: Secret, destination: str | None = None,
                    status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100, after: Annotated[int, Query(ge=0)] = 0,
                    ) -> Response:
    if status is not None and status not in STATUSES:
        raise RequestError(f"status must be one of {', '.join(STATUSES)}", field="status")
    found = engine.outbox.deliveries(destination, status, limit, after)
    return json_response({"data": [delivery_json(d) for d in found],
                          "next": found[-1].id if len(found) == limit else None,
                          "counts": engine.outbox.counts()})


@router.get("/v1/deliveries/{delivery_id}", summary="One delivery, with the payload it sends")
def get_delivery(delivery_id: int, engine: Secret) -> Response:
    found = engine.outbox.get(delivery_id)
    if found is None:
        raise NotFound(f"no delivery {delivery_id}", field="delivery_id")
    return json_response(delivery_json(found, payload=True))


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[int] | None = None       # these deliveries, whatever their status (one in flight is left alone)
    destination: str | None = None     # or every dead letter of this destination


@router.post("/v1/deliveries/replay", summary="Send deliveries again: `ids`, or every dead letter of "
                                              "`destination`; due now, attempts reset")
def replay(engine: Secret, raw: Annotated[dict[str, Any], Body(description="{ids: [...]} or {destination: NAME}")]
           ) -> Response:
    try:
        body = msgspec.convert(raw, ReplayRequest)
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc), field="body") from None
    if (body.ids is None) == (body.destination is None):
        raise RequestError("give either ids or destination", field="body")
    return json_response({"replayed": engine.outbox.replay(ids=body.ids, destination=body.destination)})


@router.get("/v1/suppressions", summary="The suppression list in (kind, value) order; page with `after_kind` "
                                        "and `after_value`")
def list_suppressions(engine: Secret, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                      after_kind: str | None = None, after_value: str | None = None) -> Response:
    after = (after_kind, after_value) if after_kind is not None and after_value is not None else None
    found = engine.guards.suppressions.list(limit, after)
    return json_response({"data": [suppression_json(s) for s in found], "count": engine.guards.suppressions.count()})


class SuppressRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: str          # email, user_id, phone, ...; `*` matches the value under any kind
    value: str
    reason: str | None = None


@router.post("/v1/suppressions", summary="Never message this identifier (201; 200 if it already was)")
def suppress(engine: Secret, raw: Annotated[dict[str, Any], Body(description="{kind, value, reason}")]) -> Response:
    try:
        body = msgspec.convert(raw, SuppressRequest)
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc), field="body") from None
    for name in ("kind", "value"):
        if not getattr(body, name).strip():
            raise RequestError(f"{name} must not be empty", field=name)
    added = engine.guards.suppressions.add(body.kind.strip(), body.value, body.reason)
    return json_response({"kind": body.kind.strip(), "value": body.value, "added": added}, status=201 if added else 200)


@router.delete("/v1/suppressions/{kind}/{value}", status_code=204, summary="Allow messages to this identifier again")
def unsuppress(kind: str, value: str, engine: Secret) -> Response:
    if not engine.guards.suppressions.remove(kind, value):
        raise NotFound(f"{kind} {value} is not suppressed", field="value")
    return Response(status_code=204)
