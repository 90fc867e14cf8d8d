"""The catalog item, and how a loosely typed record (a CSV row, a JSON object) becomes one.

`parse_item` is the one door for every input (import files, the API, tests): it names the
field at fault, with a prefix the caller chooses (`items[3].price`), so an import can say
"line 7: price: 'abc' is not a number" and the API can answer 400 with the same field.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgspec

from persona.errors import PayloadTooLarge, RequestError

CATEGORY_SEPARATOR = " > "
FIELDS = ("id", "name", "category", "brand", "price", "currency", "tags", "text", "in_stock", "attributes")
ALIASES = {"description": "text", "sku": "id", "product_id": "id"}  # common names in shop exports
IGNORED = ("updated_at", "source", "category_levels")  # written by persona; accepted back, not taken from input
MAX_ID_CHARS = 200
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

Source = Literal["import", "api", "events"]  # events: seen in product events only, never imported


class ItemError(RequestError):
    code = "invalid_item"


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One product. `category` holds the levels of its path, top first."""

    id: str
    name: str | None = None
    category: tuple[str, ...] = ()
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    tags: tuple[str, ...] = ()
    text: str | None = None
    in_stock: bool = True
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    source: Source = "import"
    updated_at: float = 0.0  # when the store last changed it (epoch seconds)

    @property
    def category_path(self) -> str:
        return CATEGORY_SEPARATOR.join(self.category)

    @property
    def top_category(self) -> str | None:
        return self.category[0] if self.category else None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category_path or None,
                "category_levels": list(self.category), "brand": self.brand, "price": self.price,
                "currency": self.currency, "tags": list(self.tags), "text": self.text, "in_stock": self.in_stock,
                "attributes": self.attributes, "source": self.source, "updated_at": self.updated_at}


def category_levels(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """"Outdoor > Hiking > Backpacks" (or a list of levels) as its levels; blanks dropped."""
    parts = value.split(">") if isinstance(value, str) else value
    return tuple(p.strip() for p in parts if isinstance(p, str) and p.strip())


def parse_item(record: Any, *, prefix: str = "", source: Source = "import", item_id: str | None = None) -> Item:
    """A record as an Item; raises ItemError naming `prefix + field`. Keys other than the item's
    fields go to `attributes`; empty strings mean absent (as in a CSV cell). `item_id` is the
    id the caller already knows (a URL's), which the record may repeat but not contradict."""
    def bad(name: str, reason: str) -> ItemError:
        return ItemError(f"{name}: {reason}", field=prefix + name)

    if not isinstance(record, dict):
        raise ItemError("an item must be a JSON object", field=prefix.rstrip(".") or None)
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in record.items():
        # An alias stands for its field unless the record also has the field itself.
        name = ALIASES[key] if key in ALIASES and ALIASES[key] not in record else key
        if name in IGNORED:
            continue
        if name not in FIELDS:
            attributes[key] = value
        elif value is not None and value != "" and name not in values:
            values[name] = value
    raw_id = values.get("id", item_id)
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise bad("id", "required, a non-empty string")
    if len(raw_id) > MAX_ID_CHARS:
        raise bad("id", f"longer than {MAX_ID_CHARS} characters")
    if item_id is not None and raw_id != item_id:
        raise bad("id", f"{raw_id!r} is not the id in the URL, {item_id!r}")
    extra = values.get("attributes", {})
    if not isinstance(extra, dict):
        raise bad("attributes", "must be an object")
    return Item(
        id=raw_id, name=_text(values.get("name"), "name", bad), category=_category(values.get("category"), bad),
        brand=_text(values.get("brand"), "brand", bad), price=_price(values.get("price"), bad),
        currency=_currency(values.get("currency"), bad), tags=_tags(values.get("tags"), bad),
        text=_text(values.get("text"), "text", bad), in_stock=_bool(values.get("in_stock", True), bad),
        attributes={**extra, **attributes}, source=source,
    )


def _text(value: Any, name: str, bad: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a numeric name or brand in a JSON file
    if not isinstance(value, str):
        raise bad(name, f"{value!r} is not text")
    return value.strip() or None


def _category(value: Any, bad: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return category_levels(value)
    raise bad("category", f"{value!r} is neither a path like 'Outdoor > Hiking' nor a list of levels")


def _price(value: Any, bad: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad("price", f"{value!r} is not a number")
    try:
        price = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise bad("price", f"{value!r} is not a number") from None
    if not math.isfinite(price) or price < 0:
        raise bad("price", f"{value!r} is not a price (a finite number, 0 or more)")
    return price


def _currency(value: Any, bad: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise bad("currency", f"{value!r} is not a 3-letter currency code (ISO 4217, e.g. USD)")
    return value.strip().upper()


def _tags(value: Any, bad: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.replace(";", "|").split("|")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad("tags", f"{value!r} is neither a list of strings nor text separated by | or ;")
    return tuple(dict.fromkeys(t.strip() for t in value if t.strip()))  # in order, once each


def _bool(value: Any, bad: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise bad("in_stock", f"{value!r} is not true/false (or 1/0, yes/no)")


def parse_items(records: Any, *, source: Source = "api", limit: int = 10_000) -> list[Item]:
    """A JSON list of records, all valid or none: the first bad one raises, named `items[i].field`."""
    if not isinstance(records, list):
        raise ItemError("the body must be a JSON list of items", field="items")
    if len(records) > limit:
        raise PayloadTooLarge(f"at most {limit:,} items per request (got {len(records):,})", field="items")
    return [parse_item(record, prefix=f"items[{i}].", source=source) for i, record in enumerate(records)]
