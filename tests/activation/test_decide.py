"""The decision API: ordered variants per placement, rendered, with reasons, fallbacks and exposures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from persona.api import create_app
from persona.config import Config
from persona.engine import Engine
from persona.recommend.placements import PlacementError, parse_placements
from tests.activation.test_journeys import identify, in_time_order
from tests.conftest import SECRET_KEY

pytestmark = pytest.mark.backends

PLACEMENTS = {
    "home_banner": {"variants": [
        {"id": "vip", "when": {"trait": "plan", "eq": "vip"}, "content": {"title": "Welcome back, {{ traits.name }}"}},
        {"id": "mobile", "context": [{"property": "device", "eq": "mobile"}], "content": {"title": "Get the app"}},
        {"id": "default", "content": {"title": "Hello{% if profile.id %} again{% endif %}"}},
    ]},
    "cart_page": {"variants": [{"id": "only_vip", "when": {"segment": "vip"}, "content": "VIP"}]},
}


@pytest.fixture
def decide_client(config: Config, tmp_path: Any) -> Any:
    path = tmp_path / "placements.yaml"
    path.write_text(yaml.safe_dump(PLACEMENTS))
    with Engine.open(replace(config, placements=path)) as engine, TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {SECRET_KEY}"
        yield engine, client


def test_variants_are_chosen_in_order_rendered_and_explained(decide_client: Any) -> None:
    engine, client = decide_client
    now = datetime.now(UTC)
    in_time_order([identify("ada", now - timedelta(minutes=1), plan="vip", name="Ada"),
                   identify("bob", now - timedelta(minutes=1), plan="free", name="Bob")], engine)
    engine.processor.run_until_caught_up()

    def decide(**body: Any) -> dict[str, Any]:
        response = client.post("/v1/decide", json=body)
        assert response.status_code == 200, response.text
        return {d["placement"]: d for d in response.json()["decisions"]}

    ada = decide(identifier="user_id:ada", placements=["home_banner", "cart_page"], context={"device": "mobile"})
    assert ada["home_banner"]["variant"] == "vip" and ada["home_banner"]["content"] == {"title": "Welcome back, Ada"}
    assert ada["home_banner"]["reason"] == "matched variant 'vip'"
    assert ada["cart_page"]["variant"] is None and ada["cart_page"]["reason"] == "no variant applies"
    bob = decide(identifier="user_id:bob", placements=["home_banner"], context={"device": "mobile"})
    assert bob["home_banner"]["variant"] == "mobile"  # not vip; the context rule holds
    desktop = decide(identifier="user_id:bob", placements=["home_banner"], context={"device": "desktop"})
    assert desktop["home_banner"]["variant"] == "default"
    assert desktop["home_banner"]["content"] == {"title": "Hello again"}
    stranger = decide(identifier="user_id:nobody", placements=["home_banner"])
    assert stranger["home_banner"]["variant"] == "default" and stranger["home_banner"]["content"] == {"title": "Hello"}
    assert stranger["home_banner"]["reason"] == "fallback: unknown profile"
    shown = [e for e in engine.log.read(0, 1000) if e.name == "Content Shown"]
    assert {(e.body["properties"]["variant"], e.user_id) for e in shown} == {
        ("vip", "ada"), ("mobile", "bob"), ("default", "bob")}  # one per decision made for a known profile


def test_bad_requests_and_bad_placements_name_the_field(decide_client: Any) -> None:
    _, client = decide_client
    missing = client.post("/v1/decide", json={"identifier": "user_id:a", "placements": ["nope"]})
    assert missing.status_code == 404 and missing.json()["field"] == "placements[0]"
    assert client.post("/v1/decide", json={"placements": []}).json()["field"] == "placements"
    assert client.post("/v1/decide", json={"placements": ["home_banner"], "colour": 1}).status_code == 400
    wrong = client.post("/v1/decide", json={"placements": "home_banner"})
    assert wrong.status_code == 400 and wrong.json()["field"] == "placements" and "array" in wrong.json()["message"]
    assert client.post("/v1/decide", json={"identifier": "user_id:a"}).json()["field"] == "body"  # no placements
    broken = client.post("/v1/decide", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_json"
    assert client.post("/v1/decide", json={"placements": ["home_banner"]}, headers={"Authorization": ""}
                       ).status_code == 401
    with pytest.raises(PlacementError) as err:
        parse_placements({"p": {"variants": [{"id": "x", "content": "{% if %}"}]}})
    assert err.value.field == "placements.p.variants[0].content"
    with pytest.raises(PlacementError) as err:
        parse_placements({"p": {"variants": [{"id": "x", "when": {"event": "Order Completed"}, "content": 1}]}})
    assert err.value.field == "placements.p.variants[0].when"


def test_a_placement_with_recommendations_carries_them_under_its_rules(engine: Engine) -> None:
    from tests.recommend.test_session import trained

    models = trained(engine)
    engine.placement_store.apply({"home_reco": {"recommendations": 3, "max_per_category": 1, "in_stock_only": False,
                                                "variants": [{"id": "shelf", "content": "For you"}]}})
    user = models.histories.user_ids[0]
    with TestClient(create_app(engine)) as client:
        response = client.post("/v1/decide", json={"identifier": user, "placements": ["home_reco"]},
                               headers={"Authorization": f"Bearer {SECRET_KEY}"})
    assert response.status_code == 200, response.text
    [decision] = response.json()["decisions"]
    assert decision["variant"] == "shelf" and len(decision["recommendations"]) == 3
    categories = [engine.catalog.get_many([r["item_id"]])[r["item_id"]].top_category
                  for r in decision["recommendations"]]
    assert len(set(categories)) == 3 and all(r["reason"] for r in decision["recommendations"])


def test_placements_are_defined_through_the_api_and_the_cli(decide_client: Any, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from persona.cli import app

    engine, client = decide_client
    assert set(client.get("/v1/placements").json()["data"]) == {"home_banner", "cart_page"}  # the file's
    footer = {"variants": [{"id": "mobile", "context": [{"property": "device", "eq": "mobile"}], "content": "app"},
                           {"id": "all", "content": "Hi {{ traits.name | default('there') }}"}]}
    assert client.put("/v1/placements/footer", json=footer).status_code == 201
    assert client.put("/v1/placements/footer", json=footer).status_code == 200
    bad = client.put("/v1/placements/footer", json={"variants": [{"id": "x", "content": "{% if %}"}]})
    assert bad.status_code == 400 and bad.json()["field"].startswith("footer.variants[0].content")
    assert client.put("/v1/placements/bad name", json={}).status_code == 400
    assert client.get("/v1/placements/footer").json() == footer  # the bad one did not replace it
    decided = client.post("/v1/decide", json={"placements": ["footer"], "context": {"device": "tv"}}).json()
    assert decided["decisions"][0]["variant"] == "all" and decided["decisions"][0]["content"] == "Hi there"
    assert client.delete("/v1/placements/footer").status_code == 204
    assert client.get("/v1/placements/footer").status_code == 404
    assert client.post("/v1/decide", json={"placements": ["footer"]}).status_code == 404

    file = tmp_path / "more.yaml"
    file.write_text(yaml.safe_dump({"sidebar": {"recommendations": 4}}))
    store = engine.config.store or f"sqlite:///{engine.config.data_dir}"
    applied = CliRunner().invoke(app, ["placements", "apply", str(file), "--prune", "--store", store])
    assert applied.exit_code == 0, applied.output
    assert "created placement:sidebar" in applied.output and "deleted placement:cart_page" in applied.output
    listed = CliRunner().invoke(app, ["placements", "list", "--store", store])
    assert listed.exit_code == 0 and "sidebar" in listed.output and "4 recommendations" in listed.output
    assert set(engine.placement_store.refresh()) == {"sidebar"}
