"""The product catalog (secret key): items one at a time or many at once, paged by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.catalog.items import parse_item, parse_items
from persona.engine import Engine

router = APIRouter(tags=["catalog"])
Secret = Annotated[Engine, Depends(require_secret)]


@router.get("/v1/catalog/items", summary="Catalog items, by id, paged with `cursor`")
def list_items(engine: Secret, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               cursor: Annotated[str | None, Query(description="`next` from the previous page")] = None) -> Response:
    page = engine.catalog.page(limit, cursor)
    return json_response({"data": [item.to_json() for item in page.items], "next": page.next})


@router.post("/v1/catalog/items", summary="Create or replace many items (all valid, or 400 naming `items[i].field`)")
def upsert_items(engine: Secret, body: Annotated[Any, Body(description="A JSON list of items (docs/catalog.md)")]
                 ) -> Response:
    stored = engine.catalog.upsert(parse_items(body))
    return json_response({"created": stored.created, "updated": stored.updated})


@router.get("/v1/catalog/items/{item_id}", summary="One catalog item")
def get_item(item_id: str, engine: Secret) -> Response:
    return json_response(engine.catalog.get(item_id).to_json())


@router.put("/v1/catalog/items/{item_id}", summary="Create or replace one item")
def put_item(item_id: str, engine: Secret,
             body: Annotated[dict[str, Any], Body(description="The item (docs/catalog.md); `id` may be left out")]
             ) -> Response:
    engine.catalog.upsert([parse_item(body, source="api", item_id=item_id)])
    return json_response(engine.catalog.get(item_id).to_json())


@router.delete("/v1/catalog/items/{item_id}", status_code=204, summary="Delete an item")
def delete_item(item_id: str, engine: Secret) -> Response:
    engine.catalog.delete(item_id)
    return Response(status_code=204)
