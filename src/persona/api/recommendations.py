"""Recommendations (secret key): for a user, items similar to an item, items bought with it.

Each answer lists `item_id`, `score`, `reason`, and the item's name and category from the
catalog when it is there. No model trained yet answers 503; an unknown item 404; an unknown
user gets popular and trending items. A user's list is re-ranked by what they did in the last
minutes (`recommend/session.py`), with no retrain. `placement` names a placement of the
`placements` file: the models are asked for more candidates, its business rules
(`recommend/placements.py`) filter and re-weight them, and `k` are returned.

The routes are async (no thread hop per request): their reads are by key and short, and a newer
model set is loaded in a thread of its own (`Recommender.current`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.catalog.store import SERVING_FRESHNESS
from persona.engine import Engine
from persona.errors import NotFound, RequestError
from persona.log.events import now_micros
from persona.recommend.models import Scored
from persona.recommend.modelset import ModelSet
from persona.recommend.placements import Placement, apply_rules, candidates_for
from persona.recommend.session import NEIGHBOURS, current_session, rerank

router = APIRouter(tags=["recommendations"])
K = Annotated[int, Query(ge=1, le=100, description="How many items")]
PlacementName = Annotated[str | None, Query(description="A placement of the `placements` file: its business rules")]


@router.get("/v1/recommendations/{identifier}",
            summary="Items for a user (user_id:, anonymous_id:, email: or a profile id); popular ones if unknown")
async def for_user(identifier: str, request: Request, k: K = 10, placement: PlacementName = None) -> Response:
    engine = require_secret(request)
    rules = _placement(engine, placement)
    models = engine.recommender.current()
    try:
        root: str | None = engine.profiles.find(identifier).id
    except NotFound:
        root = None
    now = now_micros()
    session = current_session(engine.state, engine.log, root, now) if root is not None else None
    n = k if rules is None else candidates_for(k)
    purchased_at: dict[str, int] = {}
    allow: set[str] = set()
    if rules is not None:
        purchased_at = models.purchases(root) | dict.fromkeys(session.bought if session else (), now)
        if rules.repurchase_after is not None or not rules.exclude_purchased:  # old purchases may come back
            window = (rules.repurchase_after or 0) * 1_000_000
            allow = {i for i, at in purchased_at.items() if not rules.exclude_purchased or now - at >= window}
    if session is None or session.empty:
        found = models.for_user(root, n, allow_purchased=allow)
    else:  # the session leads the history the models read; room for what the re-ranking removes and adds
        recent = [*session.cart, *session.viewed]
        found = rerank(models, models.for_user(root, n + len(session.cart) + NEIGHBOURS, allow_purchased=allow,
                                               recent=recent), session, n)
    found = _apply(engine, rules, found, purchased_at, now, k)
    return _answer(engine, models, found, known_user=models.history(root) is not None,
                   session={"viewed": session.viewed[:10], "cart": session.cart} if session else None)


@router.get("/v1/recommendations/items/{item_id}/similar", summary="Items viewed with this one")
async def similar(item_id: str, request: Request, k: K = 10, placement: PlacementName = None) -> Response:
    engine = require_secret(request)
    rules = _placement(engine, placement)
    models = engine.recommender.current()
    found = models.similar(item_id, k if rules is None else candidates_for(k))
    return _answer(engine, models, _apply(engine, rules, found, None, now_micros(), k))


@router.get("/v1/recommendations/items/{item_id}/bought-together", summary="Items often bought with this one")
async def bought_together(item_id: str, request: Request, k: K = 10, placement: PlacementName = None
                          ) -> Response:
    engine = require_secret(request)
    rules = _placement(engine, placement)
    models = engine.recommender.current()
    found = models.bought_with(item_id, k if rules is None else candidates_for(k))
    return _answer(engine, models, _apply(engine, rules, found, None, now_micros(), k))


def _placement(engine: Engine, name: str | None) -> Placement | None:
    if name is None:
        return None
    if name not in engine.placements:
        known = ", ".join(sorted(engine.placements)) or "none configured (the `placements` setting)"
        raise RequestError(f"no placement {name!r} (known: {known})", field="placement", code="unknown_placement")
    return engine.placements[name]


def _apply(engine: Engine, rules: Placement | None, found: list[Scored], purchased_at: dict[str, int] | None,
           now: int, k: int) -> list[Scored]:
    if rules is None:
        return found
    items = engine.catalog.get_many((s.item_id for s in found), fresh_within=SERVING_FRESHNESS)
    return apply_rules(rules, found, items, purchased_at, now, k)


def _answer(engine: Engine, models: ModelSet, found: list[Scored], **extra: Any) -> Response:
    items = engine.catalog.get_many((s.item_id for s in found), fresh_within=SERVING_FRESHNESS)
    data = []
    for s in found:
        item = items.get(s.item_id)
        data.append({"item_id": s.item_id, "score": round(s.score, 6), "reason": s.reason,
                     "name": item.name if item else None, "category": (item.category_path or None) if item else None})
    return json_response({"data": data, "model": models.summary.get("id"), **extra})
