"""Placements: each business rule on hand-made lists, the YAML's errors, and over HTTP."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from persona.api import create_app
from persona.catalog.items import Item, category_levels
from persona.config import Config
from persona.engine import Engine
from persona.recommend.models import Scored
from persona.recommend.modelset import ModelSet
from persona.recommend.placements import Placement, PlacementError, apply_rules, parse_placements
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.recommend.test_session import trained
from tests.segments.test_store import eventually
from tests.support.live import start_server

DAY = 86_400 * 1_000_000
NOW = 100 * DAY


def item(item_id: str, category: str = "Outdoor > Hiking", brand: str | None = "Summit", price: float | None = 50.0,
         in_stock: bool = True) -> Item:
    return Item(id=item_id, category=category_levels(category), brand=brand, price=price, in_stock=in_stock)


ITEMS = {i.id: i for i in [
    item("boots", "Outdoor > Hiking > Boots", price=120.0),
    item("tent", "Outdoor > Camping", brand="Alpine", price=300.0),
    item("socks", "Outdoor > Hiking > Socks", price=8.0, in_stock=False),
    item("shirt", "Apparel > Shirts", brand="Urban", price=25.0),
    item("cap", "Apparel > Hats", brand=None, price=None),
]}
SCORED = [Scored(i, 1.0 - n / 10, "r") for n, i in enumerate(["boots", "tent", "socks", "shirt", "cap", "ghost"])]


def rules(**raw: Any) -> Placement:
    return parse_placements({"p": raw})["p"]


def ids(placement: Placement, purchased_at: dict[str, int] | None = None, k: int = 10,
        scored: list[Scored] = SCORED) -> list[str]:
    return [s.item_id for s in apply_rules(placement, scored, ITEMS, purchased_at, NOW, k)]


def test_in_stock_only_is_the_default_and_drops_items_missing_from_the_catalog() -> None:
    assert ids(rules()) == ["boots", "tent", "shirt", "cap"]
    assert ids(rules(in_stock_only=False)) == ["boots", "tent", "socks", "shirt", "cap", "ghost"]


def test_categories_by_top_level_or_path_prefix() -> None:
    assert ids(rules(categories={"include": ["outdoor"]})) == ["boots", "tent"]
    assert ids(rules(categories={"include": ["Outdoor > Hiking"]}, in_stock_only=False)) == ["boots", "socks"]
    assert ids(rules(categories={"exclude": ["Outdoor > Hiking"]}, in_stock_only=False)) == \
        ["tent", "shirt", "cap", "ghost"]


def test_brands_include_and_exclude() -> None:
    assert ids(rules(brands={"include": ["summit"]})) == ["boots"]
    assert ids(rules(brands={"exclude": ["Summit", "Alpine"]})) == ["shirt", "cap"]


def test_price_range_drops_items_without_a_price() -> None:
    assert ids(rules(price_min=20, price_max=150)) == ["boots", "shirt"]
    assert ids(rules(price_max=100, in_stock_only=False)) == ["socks", "shirt"]


def test_diversity_caps_each_top_level_category_and_still_fills_k() -> None:
    assert ids(rules(max_per_category=1, in_stock_only=False)) == ["boots", "shirt", "ghost"]
    assert ids(rules(max_per_category=2), k=3) == ["boots", "tent", "shirt"]


def test_boost_and_bury_reorder_by_item_and_category() -> None:
    placement = rules(boost=[{"items": ["cap"], "factor": 10}], bury=[{"categories": ["Outdoor"], "factor": 0.1}])
    assert ids(placement) == ["cap", "shirt", "boots", "tent"]
    boosted = apply_rules(placement, SCORED, ITEMS, None, NOW, 1)[0]
    assert boosted.item_id == "cap" and boosted.score == pytest.approx(6.0)


def test_purchased_items_never_come_back_unless_a_repurchase_window_has_passed() -> None:
    bought = {"boots": NOW - 40 * DAY, "tent": NOW - 5 * DAY}
    assert ids(rules(), bought) == ["shirt", "cap"]
    assert ids(rules(repurchase_after="30d"), bought) == ["boots", "shirt", "cap"]
    assert ids(rules(exclude_purchased=False), bought) == ["boots", "tent", "shirt", "cap"]


@pytest.mark.parametrize(("raw", "field"), [
    ({"home": {"in_stock_only": "yes"}}, "placements.home.in_stock_only"),
    ({"home": {"max_per_category": 0}}, "placements.home.max_per_category"),
    ({"home": {"price_min": 50, "price_max": 10}}, "placements.home.price_min"),
    ({"home": {"price_max": "cheap"}}, "placements.home.price_max"),
    ({"home": {"categories": ["Outdoor"]}}, "placements.home.categories"),
    ({"home": {"brands": {"include": [3]}}}, "placements.home.brands.include"),
    ({"home": {"repurchase_after": "a month"}}, "placements.home.repurchase_after"),
    ({"home": {"boost": [{"items": ["a"], "factor": 0.5}]}}, "placements.home.boost[0].factor"),
    ({"home": {"bury": [{"factor": 0.5}]}}, "placements.home.bury[0]"),
    ({"home": {"colour": "red"}}, "placements.home.colour"),
    ({"home": ["in_stock_only"]}, "placements.home"),
    (["home"], "placements"),
])
def test_invalid_rules_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(PlacementError) as error:
        parse_placements(raw)
    assert error.value.field == field and error.value.status == 400


# -- over HTTP ------------------------------------------------------------------------------------
@pytest.fixture
def placed(config: Config, tmp_path: Path) -> Iterator[tuple[Engine, TestClient]]:
    file = tmp_path / "placements.yaml"
    file.write_text("home:\n  in_stock_only: true\n  max_per_category: 1\nall: {in_stock_only: false}\n")
    with Engine.open(replace(config, placements=file)) as engine, TestClient(create_app(engine)) as client:
        yield engine, client


def test_a_placement_returns_items_in_stock_from_distinct_categories(
        placed: tuple[Engine, TestClient], reader_headers: dict[str, str]) -> None:
    engine, client = placed
    models = trained(engine)
    user = next(f"user_id:{p.identifiers['user_id'][0]}" for u in models.histories.user_ids
                if (p := engine.state.profile(u)) is not None and p.identifiers.get("user_id"))
    item_id = models.items.ids[0]
    for path in (f"/v1/recommendations/{user}", "/v1/recommendations/user_id:nobody",
                 f"/v1/recommendations/items/{item_id}/similar"):
        response = client.get(f"{path}?k=5&placement=home", headers=reader_headers)
        assert response.status_code == 200, response.text
        found = [engine.catalog.get(r["item_id"]) for r in response.json()["data"]]
        assert found and all(i.in_stock for i in found)
        tops = [i.top_category for i in found]
        assert len(tops) == len(set(tops))
    plain = client.get(f"/v1/recommendations/{user}?k=5", headers=reader_headers).json()["data"]
    assert len(plain) == 5


def test_an_unknown_placement_is_a_400_naming_placement(
        placed: tuple[Engine, TestClient], reader_headers: dict[str, str]) -> None:
    engine, client = placed
    trained(engine)
    for path in ("/v1/recommendations/user_id:nobody", f"/v1/recommendations/items/{engine.catalog.page(1).items[0].id}"
                 "/bought-together"):
        response = client.get(f"{path}?placement=nowhere", headers=reader_headers)
        assert response.status_code == 400, path
        assert response.json()["field"] == "placement" and "home" in response.json()["message"]


def test_a_placements_file_that_does_not_parse_stops_the_start(config: Config, tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("home: {max_per_category: many}\n")
    with pytest.raises(PlacementError) as error:
        Engine.open(replace(config, placements=file))
    assert error.value.field == "placements.home.max_per_category"


def test_the_model_set_keeps_when_each_item_was_last_bought(engine: Engine) -> None:
    models = trained(engine)
    root = next(u for u in models.histories.user_ids if (h := models.history(u)) is not None and h.purchased)
    history = models.history(root)
    assert history is not None
    purchases = models.purchases(root)
    assert set(purchases) == history.purchased
    assert all(0 < at <= models.summary["now"] for at in purchases.values())
    loaded = ModelSet.from_bytes(models.to_bytes(), models.summary)
    assert loaded.purchases(root) == purchases
    allowed = next(iter(purchases))
    assert allowed not in {s.item_id for s in models.for_user(root, 200)}
    assert models.for_user(root, 200, allow_purchased={allowed}) != models.for_user(root, 200)


def test_serve_reads_the_placements_file_again_on_sighup(tmp_path: Path) -> None:
    path = tmp_path / "placements.yaml"
    path.write_text(yaml.safe_dump({"home": {"max_per_category": 2}}))
    server = start_server(tmp_path / "serve", WRITE_KEY, SECRET_KEY, extra_env={"PERSONA_PLACEMENTS": str(path)})
    try:
        with server.reader() as reader:
            def asked(placement: str) -> httpx.Response:
                return reader.get("/v1/recommendations/user_id:u1", params={"placement": placement})

            refused = asked("cart")
            assert refused.status_code == 400 and "known: home" in refused.json()["message"]
            assert asked("home").status_code == 503  # known; no model trained yet
            path.write_text(yaml.safe_dump({"home": {}, "cart": {"max_per_category": 1}}))
            server.process.send_signal(signal.SIGHUP)
            eventually(lambda: asked("cart").status_code == 503)
            path.write_text(yaml.safe_dump({"home": {"max_per_category": 0}}))  # does not parse
            server.process.send_signal(signal.SIGHUP)
            eventually(lambda: "placements from" in server.log_path.read_text())
            assert "placements.home.max_per_category" in server.log_path.read_text()
            assert asked("cart").status_code == 503  # what ran stays
            assert server.process.poll() is None
    finally:
        server.stop()
