"""Placements: named places a list is shown ("home", "product page", "cart"), each with business
rules applied to what the models rank, when the list is asked for.

A placement is plain data (a YAML mapping, `parse_placements`), validated when loaded with the
field at fault named. `apply_rules` then filters (stock, categories, brands, price, purchases),
re-weights (boost/bury) and caps each top-level category (diversity), keeping the models' order
otherwise. An item missing from the catalog (seen only in events) is kept unless a rule needs
an attribute it lacks: any category or brand include, a price bound, or `in_stock_only` (its
stock is unknown, so it is dropped). Excludes and boosts simply do not match it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.catalog.items import Item, category_levels
from persona.errors import RequestError
from persona.recommend.models import Scored
from persona.segments.definitions import DefinitionError, parse_duration
from persona.yamlfile import read_yaml

FIELDS = {"in_stock_only", "categories", "brands", "price_min", "price_max", "max_per_category",
          "exclude_purchased", "repurchase_after", "boost", "bury", "variants", "recommendations"}


class PlacementError(RequestError):
    code = "invalid_placement"


@dataclass(frozen=True)
class Reweight:
    """Items (by id) or categories (path prefixes) whose score is multiplied by `factor`."""

    items: frozenset[str]
    categories: tuple[tuple[str, ...], ...]
    factor: float

    def matches(self, item_id: str, item: Item | None) -> bool:
        return item_id in self.items or (item is not None and _in_any(item, self.categories))


@dataclass(frozen=True)
class Placement:
    name: str
    in_stock_only: bool = True
    include_categories: tuple[tuple[str, ...], ...] = ()
    exclude_categories: tuple[tuple[str, ...], ...] = ()
    include_brands: frozenset[str] = frozenset()
    exclude_brands: frozenset[str] = frozenset()
    price_min: float | None = None
    price_max: float | None = None
    max_per_category: int | None = None
    exclude_purchased: bool = True
    repurchase_after: int | None = None  # seconds; None: a purchased item never comes back
    reweights: tuple[Reweight, ...] = ()
    variants: tuple[Any, ...] = ()    # `activation/decide.Variant`s: what `POST /v1/decide` chooses from
    recommendations: int | None = None  # how many recommendations a decision for it carries


# -- parsing -------------------------------------------------------------------------------------
def parse_placements(raw: Any, path: str = "placements") -> dict[str, Placement]:
    """A mapping `name -> rules`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PlacementError("placements must be a mapping of placement name to rules", field=path)
    return {str(name): parse_placement(str(name), rules, f"{path}.{name}") for name, rules in raw.items()}


def parse_placement(name: str, raw: Any, path: str) -> Placement:
    body = {} if raw is None else raw
    if not isinstance(body, dict):
        raise PlacementError("a placement's rules must be a mapping", field=path)
    for key in body:
        if key not in FIELDS:
            raise PlacementError(f"unknown rule {key!r} (known: {', '.join(sorted(FIELDS))})", field=f"{path}.{key}")
    include_c, exclude_c = _include_exclude(body.get("categories"), f"{path}.categories")
    include_b, exclude_b = _include_exclude(body.get("brands"), f"{path}.brands")
    price_min, price_max = _price(body, "price_min", path), _price(body, "price_max", path)
    if price_min is not None and price_max is not None and price_min > price_max:
        raise PlacementError(f"price_min {price_min} is above price_max {price_max}", field=f"{path}.price_min")
    cap = body.get("max_per_category")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise PlacementError(f"{cap!r} is not a whole number of 1 or more", field=f"{path}.max_per_category")
    window = body.get("repurchase_after")
    variants: tuple[Any, ...] = ()
    if "variants" in body:
        from persona.activation.decide import parse_variants
        from persona.segments.definitions import DefinitionError

        try:
            variants = parse_variants(body["variants"], f"{path}.variants")
        except DefinitionError as exc:
            raise PlacementError(exc.message, field=exc.field) from None
    k = body.get("recommendations")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100):
        raise PlacementError(f"{k!r} is not a number of recommendations from 1 to 100",
                             field=f"{path}.recommendations")
    return Placement(
        name=name, in_stock_only=_bool(body, "in_stock_only", True, path),
        include_categories=tuple(category_levels(c) for c in include_c),
        exclude_categories=tuple(category_levels(c) for c in exclude_c),
        include_brands=frozenset(b.casefold() for b in include_b),
        exclude_brands=frozenset(b.casefold() for b in exclude_b),
        price_min=price_min, price_max=price_max, max_per_category=cap,
        exclude_purchased=_bool(body, "exclude_purchased", True, path),
        repurchase_after=None if window is None else _duration(window, f"{path}.repurchase_after"),
        reweights=(*_reweights(body.get("boost"), f"{path}.boost", boost=True),
                   *_reweights(body.get("bury"), f"{path}.bury", boost=False)),
        variants=variants, recommendations=k,
    )


def read_placements_file(file: Path) -> dict[str, Any]:
    """The YAML file the `placements` setting names: `placement name -> rules`, checked, as written."""
    raw = read_yaml(file, PlacementError, "placements")
    parse_placements(raw)
    return {str(name): {} if body is None else body for name, body in (raw or {}).items()}


def _bool(body: dict[str, Any], key: str, default: bool, path: str) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise PlacementError(f"{value!r} is not true or false", field=f"{path}.{key}")
    return value


def _price(body: dict[str, Any], key: str, path: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PlacementError(f"{value!r} is not a price (a number, 0 or more)", field=f"{path}.{key}")
    return float(value)


def _strings(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PlacementError(f"{value!r} is not a list of non-empty strings", field=path)
    return value


def _include_exclude(value: Any, path: str) -> tuple[list[str], list[str]]:
    if value is None:
        return [], []
    if not isinstance(value, dict) or not set(value) <= {"include", "exclude"}:
        raise PlacementError("must be a mapping with `include` and/or `exclude` lists", field=path)
    return ([] if value.get("include") is None else _strings(value["include"], f"{path}.include"),
            [] if value.get("exclude") is None else _strings(value["exclude"], f"{path}.exclude"))


def _duration(raw: Any, path: str) -> int:
    try:
        return parse_duration(raw, path)  # the audience language's durations: 90s, 15m, 12h, 30d, 2w
    except DefinitionError as exc:
        raise PlacementError(exc.message, field=path) from None


def _reweights(raw: Any, path: str, *, boost: bool) -> list[Reweight]:
    """A list of `{items: [...], categories: [...], factor: 2}`; a boost's factor is above 1, a bury's below."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PlacementError("must be a list of {items, categories, factor}", field=path)
    found = []
    for i, entry in enumerate(raw):
        at = f"{path}[{i}]"
        if not isinstance(entry, dict) or not set(entry) <= {"items", "categories", "factor"}:
            raise PlacementError("must be a mapping of items, categories and factor", field=at)
        factor = entry.get("factor")
        good = isinstance(factor, int | float) and not isinstance(factor, bool) and (
            factor > 1 if boost else 0 <= factor < 1)
        if not good:
            raise PlacementError(f"{factor!r} is not a factor {'above 1' if boost else 'from 0 to below 1'}",
                                 field=f"{at}.factor")
        items = [] if entry.get("items") is None else _strings(entry["items"], f"{at}.items")
        categories = [] if entry.get("categories") is None else _strings(entry["categories"], f"{at}.categories")
        if not items and not categories:
            raise PlacementError("names no items and no categories", field=at)
        found.append(Reweight(frozenset(items), tuple(category_levels(c) for c in categories), float(factor)))
    return found


# -- applying ------------------------------------------------------------------------------------
def candidates_for(k: int) -> int:
    """How many items to ask the models for, so that k are left after the rules."""
    return k * 5 + 20


def placed_for_user(models: Any, catalog: Any, placement: Placement, root: str | None, k: int,
                    now: int) -> list[dict[str, Any]]:
    """A user's `k` recommendations under the placement's rules, as shown (item, score, reason,
    name): what a decision carries and a journey's templates see. `models` is a `ModelSet`,
    `catalog` a `CatalogStore`."""
    from persona.catalog.store import SERVING_FRESHNESS

    found = models.for_user(root, candidates_for(k))
    items = catalog.get_many((s.item_id for s in found), fresh_within=SERVING_FRESHNESS)
    picked = apply_rules(placement, found, items, models.purchases(root), now, k)
    return [{"item_id": s.item_id, "score": round(s.score, 6), "reason": s.reason,
             "name": items[s.item_id].name if s.item_id in items else None} for s in picked]


def apply_rules(placement: Placement, scored: list[Scored], items: Mapping[str, Item],
                purchased_at: Mapping[str, int] | None, now: int, k: int) -> list[Scored]:
    """The top `k` of `scored` that pass the placement's rules, re-weighted, at most
    `max_per_category` per top-level category. `purchased_at` is each bought item's latest
    purchase (µs), `now` too."""
    window = None if placement.repurchase_after is None else placement.repurchase_after * 1_000_000
    kept = []
    for s in scored:
        item = items.get(s.item_id)
        if not _passes(placement, item):
            continue
        bought = (purchased_at or {}).get(s.item_id)
        if placement.exclude_purchased and bought is not None and (window is None or now - bought < window):
            continue
        factor = 1.0
        for rule in placement.reweights:
            if rule.matches(s.item_id, item):
                factor *= rule.factor
        kept.append(s.rescored(s.score * factor) if factor != 1.0 else s)
    if placement.reweights:
        kept.sort(key=lambda s: -s.score)  # stable: ties keep the models' order
    if placement.max_per_category is None:
        return kept[:k]
    shown: dict[str | None, int] = {}
    capped = []
    for s in kept:
        item = items.get(s.item_id)
        top = item.top_category if item is not None else None
        if top is not None and shown.get(top, 0) >= placement.max_per_category:
            continue  # an item with no category is never capped
        shown[top] = shown.get(top, 0) + 1
        capped.append(s)
        if len(capped) == k:
            break
    return capped


def _passes(placement: Placement, item: Item | None) -> bool:
    if item is None:  # not in the catalog: only rules needing an attribute drop it
        return not (placement.in_stock_only or placement.include_categories or placement.include_brands
                    or placement.price_min is not None or placement.price_max is not None)
    if placement.in_stock_only and not item.in_stock:
        return False
    if placement.include_categories and not _in_any(item, placement.include_categories):
        return False
    if _in_any(item, placement.exclude_categories):
        return False
    brand = item.brand.casefold() if item.brand else None
    if placement.include_brands and brand not in placement.include_brands:
        return False
    if brand is not None and brand in placement.exclude_brands:
        return False
    if placement.price_min is not None or placement.price_max is not None:
        if item.price is None:
            return False
        if placement.price_min is not None and item.price < placement.price_min:
            return False
        if placement.price_max is not None and item.price > placement.price_max:
            return False
    return True


def _in_any(item: Item, prefixes: tuple[tuple[str, ...], ...]) -> bool:
    """Whether the item's category path starts with one of the prefixes (case-insensitively)."""
    path = tuple(level.casefold() for level in item.category)
    return any(path[:len(p)] == tuple(level.casefold() for level in p) for p in prefixes)
