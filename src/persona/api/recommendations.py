"""Recommendations (secret key): for a user, items similar to an item, items bought with it.

Each answer lists `item_id`, `score`, `reason`, and the item's name and category from the
catalog when it is there. No model trained yet answers 503; an unknown item 404; an unknown
user gets popular and trending items. A user's list is re-ranked by what they did in the last
minutes (`recommend/session.py`), with no retrain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from persona.api.auth import require_secret
from persona.api.responses import json_response
from persona.engine import Engine
from persona.errors import NotFound
from persona.log.events import now_micros
from persona.recommend.models import Scored
from persona.recommend.modelset import ModelSet
from persona.recommend.session import NEIGHBOURS, current_session, rerank

router = APIRouter(tags=["recommendations"])
Secret = Annotated[Engine, Depends(require_secret)]
K = Annotated[int, Query(ge=1, le=100, description="How many items")]


@router.get("/v1/recommendations/{identifier}",
            summary="Items for a user (user_id:, anonymous_id:, email: or a profile id); popular ones if unknown")
def for_user(identifier: str, engine: Secret, k: K = 10) -> Response:
    models = engine.recommender.current()
    try:
        root: str | None = engine.profiles.find(identifier).id
    except NotFound:
        root = None
    session = current_session(engine.state, engine.log, root, now_micros()) if root is not None else None
    if session is None or session.empty:
        found = models.for_user(root, k)
    else:  # room for what the session removes and adds
        found = rerank(models, models.for_user(root, k + len(session.cart) + NEIGHBOURS), session, k)
    return _answer(engine, models, found, known_user=models.history(root) is not None,
                   session={"viewed": session.viewed[:10], "cart": session.cart} if session else None)


@router.get("/v1/recommendations/items/{item_id}/similar", summary="Items viewed with this one")
def similar(item_id: str, engine: Secret, k: K = 10) -> Response:
    models = engine.recommender.current()
    return _answer(engine, models, models.similar(item_id, k))


@router.get("/v1/recommendations/items/{item_id}/bought-together", summary="Items often bought with this one")
def bought_together(item_id: str, engine: Secret, k: K = 10) -> Response:
    models = engine.recommender.current()
    return _answer(engine, models, models.bought_with(item_id, k))


def _answer(engine: Engine, models: ModelSet, found: list[Scored], **extra: Any) -> Response:
    items = engine.catalog.get_many(s.item_id for s in found)
    data = []
    for s in found:
        item = items.get(s.item_id)
        data.append({"item_id": s.item_id, "score": round(s.score, 6), "reason": s.reason,
                     "name": item.name if item else None, "category": (item.category_path or None) if item else None})
    return json_response({"data": data, "model": models.summary.get("id"), **extra})
