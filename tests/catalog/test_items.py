"""Records become items, or an error naming the field; events describe items; merging keeps the import's fields."""

from __future__ import annotations

import pytest

from persona.catalog.from_events import items_from_events, merged
from persona.catalog.items import Item, ItemError, parse_item, parse_items
from tests.support.events import event


def test_a_csv_like_record_becomes_an_item() -> None:
    item = parse_item({"id": "sku-1", "name": " Trail Pack ", "category": "Outdoor > Hiking >Backpacks",
                       "price": "89.99", "currency": "usd", "tags": "hiking|sale; new", "description": "Light.",
                       "in_stock": "No", "color": "red", "updated_at": "ignored"})
    assert item == Item(id="sku-1", name="Trail Pack", category=("Outdoor", "Hiking", "Backpacks"), price=89.99,
                        currency="USD", tags=("hiking", "sale", "new"), text="Light.", in_stock=False,
                        attributes={"color": "red"})
    assert item.top_category == "Outdoor" and item.category_path == "Outdoor > Hiking > Backpacks"
    assert parse_item({"id": 7, "category": ["A", "B"], "tags": ["x"]}).id == "7"
    assert parse_item({"sku": "s-1", "id": "i-1"}).attributes == {"sku": "s-1"}  # an explicit id wins over sku


@pytest.mark.parametrize(("record", "field", "reason"), [
    ({"name": "no id"}, "id", "required"),
    ({"id": "a", "price": "abc"}, "price", "'abc' is not a number"),
    ({"id": "a", "price": -1}, "price", "0 or more"),
    ({"id": "a", "price": True}, "price", "not a number"),
    ({"id": "a", "in_stock": "maybe"}, "in_stock", "true/false"),
    ({"id": "a", "currency": "dollars"}, "currency", "3-letter"),
    ({"id": "a", "tags": [1]}, "tags", "list of strings"),
    ({"id": "a", "category": {"x": 1}}, "category", "path"),
    ({"id": "a", "attributes": []}, "attributes", "object"),
])
def test_a_bad_field_is_named(record: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(ItemError, match=reason) as raised:
        parse_item(record, prefix="items[3].")
    assert raised.value.field == f"items[3].{field}"
    assert raised.value.message.startswith(f"{field}: ")


def test_many_are_all_valid_or_the_first_bad_one_is_named() -> None:
    assert [i.id for i in parse_items([{"id": "a"}, {"id": "b"}])] == ["a", "b"]
    with pytest.raises(ItemError) as raised:
        parse_items([{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d", "price": "x"}])
    assert raised.value.field == "items[3].price"


def test_events_describe_items_latest_first_per_field() -> None:
    later = {"product_id": "p1", "name": "New Name", "price": 12}
    events = [
        event("track", user="u", minutes=5, event="Product Viewed", properties=later),
        event("track", user="u", minutes=1, event="Product Added",  # earlier, though read later
              properties={"sku": "p1", "name": "Old Name", "brand": "Acme", "price": 10, "category": "A > B"}),
        event("track", user="u", minutes=2, event="Order Completed", properties={
            "currency": "eur", "products": [{"product_id": "p2", "name": "Socks", "price": 3}, {"name": "no id"}]}),
        event("track", user="u", event="Signed Up", properties={"product_id": "ignored"}),
    ]
    seen = items_from_events(events)
    assert seen.keys() == {"p1", "p2"}
    assert (seen["p1"].name, seen["p1"].price, seen["p1"].brand, seen["p1"].category) == (
        "New Name", 12.0, "Acme", ("A", "B"))
    assert seen["p2"].currency == "EUR" and seen["p2"].source == "events"


def test_merging_fills_gaps_but_keeps_the_imported_fields() -> None:
    imported = Item(id="p1", name="Imported", price=None, tags=(), in_stock=False)
    seen = Item(id="p1", name="From events", price=9.5, brand="Acme", source="events")
    result = merged(imported, seen)
    assert (result.name, result.price, result.brand, result.in_stock, result.source) == (
        "Imported", 9.5, "Acme", False, "import")
    assert merged(None, seen) is seen
    assert merged(Item(id="p1", name="Older", source="events"), seen) is seen  # events-only: the latest wins
