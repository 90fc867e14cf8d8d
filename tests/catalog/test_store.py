"""The catalog on both backends: files imported and exported, rejects, upserts, what events add, a rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.catalog.files import import_catalog, write_catalog
from persona.catalog.from_events import sync_from_events
from persona.catalog.items import Item
from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.errors import NotFound
from persona.synth.catalog import Catalog, catalog_items
from tests.support.events import event

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL

CSV = """id,name,category,brand,price,currency,tags,description,in_stock,color
sku-1,Trail Pack,Outdoor > Hiking > Backpacks,Acme,89.99,USD,hiking|sale,"A pack, light",true,red
sku-2,Boots,Outdoor > Hiking > Boots,Acme,abc,USD,,,yes,
sku-3,Socks,Apparel > Socks,,4.5,,wool;warm,,0,blue
sku-4,Hat,Apparel > Hats,,5,USD,,,maybe,
"""


def test_a_synthetic_catalog_round_trips_through_csv_and_jsonl(engine: Engine, tmp_path: Path) -> None:
    items = catalog_items(Catalog.generate(seed=3, n_products=40))
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"catalog.{fmt}"
        assert write_catalog(items, path) == 40
        result = import_catalog(path, engine.catalog, chunk_rows=15)
        assert (result.rows, result.rejected, result.rejects_path) == (40, 0, None)
        assert (result.created, result.updated) == ((40, 0) if fmt == "csv" else (0, 40))
        stored = engine.catalog.get_many(i.id for i in items)
        assert [stored[i.id].to_json() | {"updated_at": 0} for i in items] == [i.to_json() for i in items]
    assert engine.catalog.count() == 40


def test_bad_rows_are_rejected_with_line_and_field_and_the_good_ones_stored(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    result = import_catalog(path, engine.catalog)
    assert (result.rows, result.created, result.rejected) == (4, 2, 2)
    assert [str(r) for r in result.first_rejects] == [
        "line 3: price: 'abc' is not a number", "line 5: in_stock: 'maybe' is not true/false (or 1/0, yes/no)"]
    rejects = [json.loads(line) for line in (tmp_path / "shop.csv.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"], r["raw"]["id"]) for r in rejects] == [
        (3, "price", "sku-2"), (5, "in_stock", "sku-4")]
    pack = engine.catalog.get("sku-1")
    assert (pack.text, pack.tags, pack.attributes, pack.top_category) == (
        "A pack, light", ("hiking", "sale"), {"color": "red"}, "Outdoor")
    assert engine.catalog.get("sku-3").in_stock is False

    path.write_text(CSV.splitlines()[0] + "\nsku-2,Boots,Outdoor > Hiking > Boots,Acme,120,USD,,,yes,\n")
    again = import_catalog(path, engine.catalog)
    assert (again.created, again.rejected) == (1, 0) and not (tmp_path / "shop.csv.rejects.jsonl").exists()


def test_jsonl_with_a_mapping_and_a_broken_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"sku": "a", "title": "A", "category": ["X", "Y"], "tags": ["t"]}\n\n{not json\n'
                    '{"sku": "b", "title": "B", "price": "1e400"}\n')
    result = import_catalog(path, engine.catalog, mapping={"title": "name"})
    assert (result.created, result.rejected) == (1, 2)
    assert [r.line for r in result.first_rejects] == [3, 4] and result.first_rejects[1].field == "price"
    assert engine.catalog.get("a").name == "A" and engine.catalog.get("a").category_path == "X > Y"


def test_upserts_replace_page_and_delete(engine: Engine) -> None:
    first = engine.catalog.upsert([Item(id=f"i{n}", name=f"v1 {n}") for n in range(5)])
    assert (first.created, first.updated) == (5, 0)
    second = engine.catalog.upsert([Item(id="i1", name="v2"), Item(id="i1", name="v3"), Item(id="i9")])
    assert (second.created, second.updated) == (1, 1)
    assert engine.catalog.get("i1").name == "v3"  # the last of the batch wins
    page = engine.catalog.page(4)
    assert [i.id for i in page.items] == ["i0", "i1", "i2", "i3"] and page.next == "i3"
    rest = engine.catalog.page(4, page.next)
    assert [i.id for i in rest.items] == ["i4", "i9"] and rest.next is None
    engine.catalog.delete("i9")
    with pytest.raises(NotFound, match="no catalog item 'i9'"):
        engine.catalog.get("i9")
    with pytest.raises(NotFound):
        engine.catalog.delete("i9")
    assert engine.catalog.count() == 5


def test_serving_reads_come_from_memory_for_a_few_seconds_and_local_changes_at_once(engine: Engine,
                                                                                   config: Config) -> None:
    engine.catalog.upsert([Item(id="a", price=10.0), Item(id="b", price=20.0)])
    assert set(engine.catalog.get_many(["a", "b", "zz"], fresh_within=60)) == {"a", "b"}
    with Engine.open(config) as other_node:  # a change elsewhere: served from memory until it is stale
        other_node.catalog.upsert([Item(id="a", price=11.0)])
    assert engine.catalog.get_many(["a"], fresh_within=60)["a"].price == 10.0
    assert engine.catalog.get_many(["a"])["a"].price == 11.0  # a plain read is always current
    assert engine.catalog.get_many(["a"], fresh_within=1e-9)["a"].price == 11.0
    engine.catalog.upsert([Item(id="b", price=21.0), Item(id="zz")])  # a change here: at once
    assert {i: item.price for i, item in engine.catalog.get_many(["b", "zz"], fresh_within=60).items()} == {
        "b": 21.0, "zz": None}
    engine.catalog.delete("b")
    assert "b" not in engine.catalog.get_many(["b"], fresh_within=60)


def test_paging_returns_every_item_once_whatever_the_ids(engine: Engine) -> None:
    """Cursor paging by id holds for ids that sort differently by byte and by language (case, accents,
    punctuation, digits): each item once. The order itself is the database's collation's."""
    ids = ["B-2", "a-1", "a-10", "a-2", "Z", "é-1", "e-1", "a_1", "a 1", "0", "sku-ÄÖ", "sku-ao"]
    engine.catalog.upsert([Item(id=i) for i in ids])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = engine.catalog.page(3, cursor)
        seen += [i.id for i in page.items]
        if (cursor := page.next) is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids) == engine.catalog.count()
    assert set(engine.catalog.get_many([*ids, "missing"])) == set(ids)


def test_events_fill_gaps_without_overriding_the_import(engine: Engine) -> None:
    engine.catalog.upsert([Item(id="p1", name="Imported Pack", price=None)])
    engine.log.append([
        event("track", user="u", minutes=1, event="Product Viewed",
              properties={"product_id": "p1", "name": "Event Name", "price": 80, "brand": "Acme"}),
        event("track", user="u", minutes=2, event="Order Completed",
              properties={"products": [{"sku": "p2", "name": "Socks", "price": 3}]}),
    ])
    synced = sync_from_events(engine.log, engine.catalog, batch=1)
    assert (synced.events, synced.seen, synced.created, synced.filled) == (2, 2, 1, 1)
    p1, p2 = engine.catalog.get("p1"), engine.catalog.get("p2")
    assert (p1.name, p1.price, p1.brand, p1.source) == ("Imported Pack", 80.0, "Acme", "import")
    assert (p2.name, p2.source) == ("Socks", "events")
    assert sync_from_events(engine.log, engine.catalog).created == 0  # nothing new: nothing written
    assert sync_from_events(engine.log, engine.catalog).filled == 0


def test_the_catalog_survives_a_rebuild_and_the_cli_imports_and_exports(config: Config, tmp_path: Path) -> None:
    store = ["--store", config.store or f"sqlite:///{config.data_dir}"]
    runner = CliRunner()
    shop = tmp_path / "shop.csv"
    exported = runner.invoke(app, ["catalog", "export", str(shop), "--synthetic"])
    assert exported.exit_code == 0 and "wrote 300 items" in exported.output, exported.output
    imported = runner.invoke(app, ["catalog", "import", str(shop), *store])
    assert imported.exit_code == 0 and "300 rows, 300 imported, 0 updated, 0 rejected" in imported.output
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV)
    refused = runner.invoke(app, ["catalog", "import", str(bad), *store])
    assert refused.exit_code == 1 and "line 3: price: 'abc' is not a number" in refused.output
    assert runner.invoke(app, ["rebuild", *store]).exit_code == 0
    synced = runner.invoke(app, ["catalog", "sync-from-events", *store])
    assert synced.exit_code == 0 and "0 events" in synced.output, synced.output
    back = tmp_path / "back.jsonl"
    assert runner.invoke(app, ["catalog", "export", str(back), *store]).exit_code == 0
    assert len(back.read_text().splitlines()) == 302  # the shop's 300 and bad.csv's two good rows
