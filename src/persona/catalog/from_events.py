"""Products as the events describe them, to fill what the imported catalog lacks.

Segment's e-commerce events carry product properties: `Product Viewed`, `Product Added`,
`Product Clicked` (product_id or sku, name, category, brand, price) and the `products[]`
lines of `Order Completed`. `SeenItems` folds events into items, the latest event (by
timestamp) winning per field. The import stays the authority: `merged` only fills the
items and fields an imported item does not have, and items known only from events are
marked `source: "events"`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from persona.catalog.items import Item, ItemError, parse_item
from persona.catalog.store import CatalogStore
from persona.log.events import Event
from persona.log.store import EventLog

PRODUCT_EVENTS = frozenset({"Product Viewed", "Product Added", "Product Clicked"})
ORDER_EVENTS = frozenset({"Order Completed"})
_TAKEN = ("name", "category", "brand", "price", "currency")  # what an event says about a product
_FILLABLE = ("name", "category", "brand", "price", "currency", "tags", "text")


class SeenItems:
    """Items described by events, folded in one event at a time (`update`, then `get`)."""

    def __init__(self) -> None:
        self._fields: dict[str, dict[str, tuple[int, Any]]] = {}  # id -> field -> (timestamp, value)

    def update(self, event: Event) -> None:
        if event.type != "track" or event.name not in PRODUCT_EVENTS | ORDER_EVENTS:
            return
        properties = event.body.get("properties")
        if not isinstance(properties, dict):
            return
        if event.name in PRODUCT_EVENTS:
            self._product(properties, event.timestamp, properties.get("currency"))
            return
        lines = properties.get("products")
        for line in lines if isinstance(lines, list) else []:
            if isinstance(line, dict):
                self._product(line, event.timestamp, properties.get("currency"))

    def _product(self, properties: dict[str, Any], timestamp: int, currency: Any) -> None:
        record: dict[str, Any] = {k: properties.get(k) for k in _TAKEN}
        record["currency"] = record["currency"] or currency
        record["id"] = properties.get("product_id") or properties.get("sku")
        try:
            item = parse_item({k: v for k, v in record.items() if v is not None}, source="events")
        except ItemError:
            return  # no usable id, or a field we cannot read: this event says nothing reliable
        fields = self._fields.setdefault(item.id, {})
        for name in _TAKEN:
            value = getattr(item, name)
            if value not in (None, ()) and (name not in fields or fields[name][0] <= timestamp):
                fields[name] = (timestamp, value)

    def get(self) -> dict[str, Item]:
        return {item_id: Item(id=item_id, source="events", **{k: v for k, (_, v) in fields.items()})
                for item_id, fields in self._fields.items()}


def items_from_events(events: Iterable[Event]) -> dict[str, Item]:
    seen = SeenItems()
    for event in events:
        seen.update(event)
    return seen.get()


def merged(imported: Item | None, seen: Item) -> Item:
    """The item to store when events describe `seen`: the imported one with only its gaps filled,
    or the seen one (`source: "events"`) if nothing was imported."""
    if imported is None or imported.source == "events":
        return seen
    gaps = {name: getattr(seen, name) for name in _FILLABLE
            if getattr(imported, name) in (None, ()) and getattr(seen, name) not in (None, ())}
    return msgspec.structs.replace(imported, **gaps) if gaps else imported


@dataclass(frozen=True)
class Synced:
    events: int   # events read
    seen: int     # products the events describe
    created: int  # items new to the store (source: events)
    filled: int   # stored items given fields they lacked, or events-only items brought up to date


def sync_from_events(log: EventLog, store: CatalogStore, *, batch: int = 10_000,
                     progress: Callable[[int], object] | None = None) -> Synced:
    """Read the whole log and store what it says about products without overriding imported fields."""
    seen = SeenItems()
    after = events = 0
    while True:
        chunk = log.read(after, batch)
        if not chunk:
            break
        for event in chunk:
            seen.update(event)
        after = chunk[-1].seq
        events += len(chunk)
        if progress is not None:
            progress(len(chunk))
    described = seen.get()
    stored = store.get_many(described)
    changed = [new for item_id, item in described.items()
               if _unstamped(new := merged(stored.get(item_id), item)) != _unstamped(stored.get(item_id))]
    store.upsert(changed)
    created = sum(1 for item in changed if item.id not in stored)
    return Synced(events=events, seen=len(described), created=created, filled=len(changed) - created)


def _unstamped(item: Item | None) -> Item | None:
    """The item without its store timestamp, to compare with what events would make of it."""
    return None if item is None else msgspec.structs.replace(item, updated_at=0.0)
