"""Content-based similarity from the catalog, and how the model set uses it for new items."""

from __future__ import annotations

from persona.catalog.items import Item
from persona.engine import Engine
from persona.recommend.content import ContentBased, item_document
from persona.recommend.interactions import interactions_from
from persona.recommend.models import ItemIndex
from persona.recommend.modelset import ModelSet, train
from tests.recommend.shop import end_of, fill_shop

CATALOG = {item.id: item for item in [
    Item(id="boots-1", name="Trail Hiking Boots", category=("Outdoor", "Hiking", "Footwear"), brand="Summit",
         price=120.0, tags=("waterproof",)),
    Item(id="boots-2", name="Alpine Hiking Boots", category=("Outdoor", "Hiking", "Footwear"), brand="Summit",
         price=140.0, tags=("waterproof",)),
    Item(id="pack-1", name="Trail Backpack 30L", category=("Outdoor", "Hiking", "Packs"), brand="Summit",
         price=90.0),
    Item(id="novel-1", name="The Long Winter", category=("Books", "Fiction"), brand="Penguin", price=12.0,
         text="A novel about a hard winter"),
    Item(id="novel-2", name="Summer Stories", category=("Books", "Fiction"), brand="Penguin", price=14.0,
         text="Short stories, a novel in parts"),
]}


def fitted() -> ContentBased:
    ids = list(CATALOG)
    index = ItemIndex(ids, [CATALOG[i].name or "" for i in ids], [CATALOG[i].top_category or "" for i in ids])
    model = ContentBased(CATALOG)
    model.fit(interactions_from([], 0, items=ids), index)
    return model


def test_the_document_holds_category_levels_brand_tags_and_a_price_band() -> None:
    document = item_document(CATALOG["boots-1"])
    for token in ("Trail", "cat_outdoor", "cat_outdoor_hiking", "cat_outdoor_hiking_footwear", "brand_summit",
                  "tag_waterproof", "price_band_6"):
        assert token in document.split()


def test_items_alike_in_the_catalog_are_nearest() -> None:
    model = fitted()
    similar = model.similar("boots-1", 4)
    assert [s.item_id for s in similar][:2] == ["boots-2", "pack-1"]
    assert similar[0].reason == "similar to Trail Hiking Boots"
    assert [s.item_id for s in model.similar("novel-1", 1)] == ["novel-2"]
    assert all(s.item_id != "boots-1" for s in similar)
    assert [s.score for s in similar] == sorted((s.score for s in similar), reverse=True)


def test_a_new_item_gets_similar_items_from_the_catalog_and_survives_saving(engine: Engine) -> None:
    workload = fill_shop(engine, customers=120)
    template = next(iter(catalog_item for catalog_item in engine.catalog.page(1, None).items))
    new = Item(id="brand-new", name=template.name, category=template.category, brand=template.brand,
               price=template.price, tags=template.tags)
    engine.catalog.upsert([new])
    models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    assert models.also_viewed.similar("brand-new", 5) == []  # nobody touched it
    similar = models.similar("brand-new", 5)
    assert len(similar) == 5 and similar[0].item_id == template.id
    assert similar[0].reason == f"similar to {new.name}"
    again = ModelSet.from_bytes(models.to_bytes(), models.summary)
    assert again.similar("brand-new", 5) == similar
    some_user = models.histories.user_ids[0]
    assert again.for_user(some_user, 10) == models.for_user(some_user, 10)
