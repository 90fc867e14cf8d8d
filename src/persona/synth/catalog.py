"""The product catalog of the synthetic shop and the popularity-weighted sampling over it.

A catalog is a plain list of `Product`s plus indexes the simulator needs on every event:
products per leaf category ordered by popularity, leaves per "department > subcategory"
group, and cumulative weights for fast `bisect` sampling. Popularity follows a Zipf law
over a random ranking, so a handful of bestsellers draw most of the traffic.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from persona.catalog.items import Item, category_levels
from persona.synth.vocab import (
    ADJECTIVES,
    BOOK_WORDS,
    BRANDS,
    CATEGORY_TREE,
    MODEL_SUFFIXES,
    TAG_POOL,
    Leaf,
)

ZIPF_EXPONENT = 0.8  # top 5 of 300 products draw about a quarter of views, the top 10% about half
CATEGORY_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class Product:
    """One sellable item. `id` doubles as the SKU (`sku-00042`)."""

    id: str
    name: str
    category: str  # full path, "Outdoor > Hiking > Backpacks"
    brand: str
    price: float  # USD, two decimals
    tags: list[str] = field(default_factory=list, hash=False)
    in_stock: bool = True
    popularity: float = 1.0  # relative sampling weight, only ratios matter

    @property
    def sku(self) -> str:
        return self.id

    @property
    def group(self) -> str:
        """The first two levels of the category path, the grain of customer tastes."""
        return CATEGORY_SEPARATOR.join(self.category.split(CATEGORY_SEPARATOR)[:2])


class _Weighted:
    """Items with cumulative weights, sampled in O(log n) with one random number."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, items: list[Any], weights: list[float]) -> None:
        self.items = items
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1] if self.cum else 0.0

    def pick(self, rng: random.Random) -> Any:
        return self.items[min(bisect(self.cum, rng.random() * self.total), len(self.items) - 1)]


class Catalog:
    """An immutable set of products with the sampling indexes the simulator uses."""

    def __init__(self, products: Sequence[Product]) -> None:
        if not products:
            raise ValueError("a catalog needs at least one product")
        self.products: tuple[Product, ...] = tuple(products)
        self._by_id = {p.id: p for p in self.products}
        if len(self._by_id) != len(self.products):
            raise ValueError("product ids must be unique")

        leaves: dict[str, list[Product]] = {}
        for product in self.products:
            leaves.setdefault(product.category, []).append(product)
        # Listing pages show the most popular items first, like a real "sort by relevance".
        self.leaf_products: dict[str, list[Product]] = {
            leaf: sorted(items, key=lambda p: (-p.popularity, p.id)) for leaf, items in leaves.items()
        }
        self._in_leaf = {
            leaf: _Weighted(items, [p.popularity for p in items]) for leaf, items in self.leaf_products.items()
        }
        # Where a product sits in its leaf's price range, 0 = cheapest, 1 = dearest.
        self.price_rank: dict[str, float] = {}
        for items in self.leaf_products.values():
            by_price = sorted(items, key=lambda p: (p.price, p.id))
            span = max(len(by_price) - 1, 1)
            for i, product in enumerate(by_price):
                self.price_rank[product.id] = i / span if len(by_price) > 1 else 0.5

        self.group_of: dict[str, str] = {p.id: p.group for p in self.products}
        group_leaves: dict[str, list[str]] = {}
        for leaf in self.leaf_products:
            group = CATEGORY_SEPARATOR.join(leaf.split(CATEGORY_SEPARATOR)[:2])
            group_leaves.setdefault(group, []).append(leaf)
        leaf_weight = {leaf: sum(p.popularity for p in items) for leaf, items in self.leaf_products.items()}
        self._in_group = {
            group: _Weighted(sorted(ls), [leaf_weight[leaf] for leaf in sorted(ls)])
            for group, ls in group_leaves.items()
        }
        self.groups: tuple[str, ...] = tuple(sorted(group_leaves))
        self._groups = _Weighted(list(self.groups),
                                 [sum(leaf_weight[leaf] for leaf in group_leaves[g]) for g in self.groups])

    # -- container protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._by_id

    def __getitem__(self, product_id: str) -> Product:
        return self._by_id[product_id]

    def get(self, product_id: str) -> Product | None:
        return self._by_id.get(product_id)

    @property
    def categories(self) -> tuple[str, ...]:
        """Every leaf category path that holds at least one product."""
        return tuple(sorted(self.leaf_products))

    def bestsellers(self, n: int = 10) -> list[Product]:
        return sorted(self.products, key=lambda p: (-p.popularity, p.id))[:n]

    # -- sampling used by the simulator ---------------------------------------------------
    def pick_group(self, rng: random.Random) -> str:
        """A category group, weighted by how much popular stock it holds."""
        return self._groups.pick(rng)

    def pick_leaf(self, group: str, rng: random.Random) -> str:
        return self._in_group[group].pick(rng)

    def pick_product(self, leaf: str, rng: random.Random) -> Product:
        return self._in_leaf[leaf].pick(rng)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def generate(cls, seed: int = 0, n_products: int = 300) -> Catalog:
        """A deterministic catalog: same seed and size give the same products."""
        if n_products < 1:
            raise ValueError("n_products must be at least 1")
        rng = random.Random(f"persona.synth.catalog:{seed}")
        leaves = [(dept, sub, leaf) for dept, subs in CATEGORY_TREE.items()
                  for sub, ls in subs.items() for leaf in ls]
        rng.shuffle(leaves)
        # Zipf popularity over a random ranking, so bestsellers land in random categories.
        ranks = list(range(n_products))
        rng.shuffle(ranks)
        bestseller_cut = max(1, n_products // 30)
        products = []
        for i in range(n_products):
            dept, sub, leaf = leaves[i % len(leaves)]  # round-robin keeps every leaf stocked
            rank = ranks[i]
            products.append(_make_product(rng, i, dept, sub, leaf, rank, bestseller_cut))
        return cls(products)


def _make_product(rng: random.Random, i: int, dept: str, sub: str, leaf: Leaf, rank: int,
                  bestseller_cut: int) -> Product:
    brand = rng.choice(BRANDS[dept])
    adjective = rng.choice(ADJECTIVES[dept])
    if dept == "Books":
        name = f"{adjective} {rng.choice(BOOK_WORDS)}"
    else:
        name = f"{brand} {adjective} {leaf.noun}"
        if rng.random() < 0.3:
            name += f" {rng.choice(MODEL_SUFFIXES)}"
    tags = [leaf.name.lower()]
    if rank < bestseller_cut:
        tags.append("bestseller")
    if rng.random() < 0.1:
        tags.append("sale")
    if rng.random() < 0.08:
        tags.append("new")
    if rng.random() < 0.2:
        tags.append(rng.choice(TAG_POOL))
    return Product(
        id=f"sku-{i:05d}",
        name=name,
        category=CATEGORY_SEPARATOR.join((dept, sub, leaf.name)),
        brand=brand,
        price=_charm_price(leaf.low * (leaf.high / leaf.low) ** rng.random()),
        tags=tags,
        in_stock=rng.random() >= 0.06,
        popularity=round(1.0 / (rank + 1) ** ZIPF_EXPONENT, 9),
    )


def _charm_price(raw: float) -> float:
    """Shop-style prices: 49.99 above ten dollars, 6.49 or 6.99 below."""
    if raw >= 10:
        return round(max(round(raw), 1) - 0.01, 2)
    return round(max(round(raw * 2) / 2, 1.0) - 0.01, 2)


def catalog_items(catalog: Catalog, currency: str = "USD") -> list[Item]:
    """The shop's products as catalog items, to write with `persona.catalog.files.write_catalog` and
    import: the catalog the workload's events refer to. Popularity, the simulator's hidden truth,
    stays out."""
    return [Item(id=p.id, name=p.name, category=category_levels(p.category), brand=p.brand, price=p.price,
                 currency=currency, tags=tuple(p.tags), in_stock=p.in_stock) for p in catalog]
