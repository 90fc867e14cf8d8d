"""The recommendation endpoints: a user, an unknown user, similar and bought-together items, errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine
from persona.recommend.modelset import ModelSet, train
from tests.recommend.shop import end_of, fill_shop


@pytest.fixture(autouse=True)
def secret_key_only(client: TestClient) -> None:
    client.auth = None  # the fixture's client sends the write key; these requests carry the secret key instead


def trained(engine: Engine) -> ModelSet:
    workload = fill_shop(engine, customers=150, days=20)
    models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    engine.rec_models.save(models)
    return models


def test_no_model_yet_answers_503_saying_what_to_run(client: TestClient, reader_headers: dict[str, str]) -> None:
    for path in ("/v1/recommendations/user_id:u1", "/v1/recommendations/items/sku-00001/similar",
                 "/v1/recommendations/items/sku-00001/bought-together"):
        response = client.get(path, headers=reader_headers)
        assert response.status_code == 503, path
        assert response.json()["code"] == "model_not_trained" and "persona recs train" in response.json()["message"]


def test_the_endpoints_need_the_secret_key(client: TestClient) -> None:
    assert client.get("/v1/recommendations/user_id:u1").status_code == 401


def test_a_known_user_gets_scored_items_with_reasons_and_catalog_names(
        engine: Engine, client: TestClient, reader_headers: dict[str, str]) -> None:
    models = trained(engine)
    root, identifier = next((u, f"user_id:{p.identifiers['user_id'][0]}") for u in models.histories.user_ids
                            if (p := engine.state.profile(u)) is not None and p.identifiers.get("user_id"))
    body = client.get(f"/v1/recommendations/{identifier}?k=5", headers=reader_headers).json()
    assert body["known_user"] is True and body["model"] == 1 and len(body["data"]) == 5
    history = models.history(root)
    assert history is not None and not {r["item_id"] for r in body["data"]} & history.purchased
    first = body["data"][0]
    assert set(first) == {"item_id", "score", "reason", "name", "category"}
    assert first["name"] == engine.catalog.get(first["item_id"]).name and first["category"]


def test_an_unknown_user_gets_popular_and_trending_items(
        engine: Engine, client: TestClient, reader_headers: dict[str, str]) -> None:
    trained(engine)
    body = client.get("/v1/recommendations/user_id:nobody?k=6", headers=reader_headers).json()
    assert body["known_user"] is False and len(body["data"]) == 6
    assert {r["reason"].split(" in ")[0] for r in body["data"]} <= {"popular", "trending"}
    assert client.get("/v1/recommendations/shoe_size:9", headers=reader_headers).status_code == 400


def test_similar_and_bought_together_items(engine: Engine, client: TestClient, reader_headers: dict[str, str]
                                           ) -> None:
    models = trained(engine)
    item = max(models.items.ids, key=lambda i: len(models.bought_together.similar(i, 10)))
    similar = client.get(f"/v1/recommendations/items/{item}/similar?k=3", headers=reader_headers).json()["data"]
    assert len(similar) == 3 and item not in {r["item_id"] for r in similar}
    together = client.get(f"/v1/recommendations/items/{item}/bought-together", headers=reader_headers).json()["data"]
    assert together and all(r["reason"].startswith("often bought with ") for r in together)
    assert [r["item_id"] for r in together] == [s.item_id for s in models.bought_with(item, 10)]


def test_an_unknown_item_is_404_naming_it(engine: Engine, client: TestClient, reader_headers: dict[str, str]
                                          ) -> None:
    trained(engine)
    for suffix in ("similar", "bought-together"):
        response = client.get(f"/v1/recommendations/items/no-such-sku/{suffix}", headers=reader_headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found" and "no-such-sku" in response.json()["message"]
