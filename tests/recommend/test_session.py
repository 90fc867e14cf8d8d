"""Session-aware serving: what a shopper did a moment ago re-ranks their list, with no retrain."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.engine import Engine
from persona.recommend.modelset import ModelSet, train
from persona.recommend.session import NEIGHBOURS, Session, rerank
from tests.conftest import WRITE_KEY
from tests.recommend.shop import end_of, fill_shop


def trained(engine: Engine) -> ModelSet:
    workload = fill_shop(engine, customers=150, days=20)
    models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    engine.rec_models.save(models)
    return models


def track(client: TestClient, engine: Engine, event: str, **properties: Any) -> None:
    sent = client.post("/v1/track", json={"userId": "shopper", "event": event, "properties": properties},
                       auth=(WRITE_KEY, ""))
    assert sent.status_code == 200, sent.text
    engine.processor.run_until_caught_up()


def recommendations(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/v1/recommendations/user_id:shopper?k=8", headers=headers, auth=None)
    assert response.status_code == 200, response.text
    return response.json()


def test_adding_to_the_cart_lifts_what_goes_with_it_and_drops_the_item(
        engine: Engine, client: TestClient, reader_headers: dict[str, str]) -> None:
    models = trained(engine)
    backpack = max(models.items.ids, key=lambda i: (len(models.bought_with(i, 20)), i))
    goes_with = [s.item_id for s in models.bought_with(backpack, 20)]
    name = models.items.label(models.items.position[backpack])

    track(client, engine, "Product Viewed", product_id=backpack)
    viewed = recommendations(client, reader_headers)
    assert viewed["session"] == {"viewed": [backpack], "cart": []}
    assert viewed["data"][0]["reason"] == f"because you just viewed {name}"
    # A visitor the models never saw: the models read the session, not just popular items re-ranked.
    assert [r["item_id"] for r in viewed["data"]] == [s.item_id for s in rerank(
        models, models.for_user(None, 8 + NEIGHBOURS, recent=[backpack]), Session([backpack], [], frozenset()), 8)]
    assert [r["item_id"] for r in viewed["data"]] != [s.item_id for s in rerank(
        models, models.for_user(None, 8 + NEIGHBOURS), Session([backpack], [], frozenset()), 8)]

    track(client, engine, "Product Added", product_id=backpack, quantity=1)
    carted = recommendations(client, reader_headers)
    ids = [r["item_id"] for r in carted["data"]]
    assert backpack not in ids  # in the cart: it drops
    assert ids[0] in goes_with and carted["data"][0]["reason"] == f"goes with {name} in your cart"
    assert goes_with and sum(1 for i in ids if i in goes_with) >= min(3, len(goes_with))

    track(client, engine, "Product Removed", product_id=backpack)
    assert recommendations(client, reader_headers)["session"]["cart"] == []


def test_an_empty_session_keeps_the_trained_list(engine: Engine) -> None:
    models = trained(engine)
    user = models.histories.user_ids[0]
    trained_list = models.for_user(user, 10)
    assert rerank(models, trained_list, Session([], [], frozenset()), 10) == trained_list
    bought = trained_list[0].item_id
    after_order = rerank(models, trained_list, Session([], [], frozenset({bought})), 10)
    assert bought not in [s.item_id for s in after_order]
