"""The synthetic product catalog: deterministic, well-formed, with skewed popularity."""

from __future__ import annotations

import random
import re

import pytest

from persona.synth import Catalog, Product


def test_same_seed_same_catalog_different_seed_different() -> None:
    a = Catalog.generate(seed=7, n_products=300)
    b = Catalog.generate(seed=7, n_products=300)
    c = Catalog.generate(seed=8, n_products=300)
    assert a.products == b.products
    assert [p.name for p in a] != [p.name for p in c]


def test_products_are_well_formed() -> None:
    catalog = Catalog.generate(seed=7, n_products=300)
    assert len(catalog) == 300
    ids = [p.id for p in catalog]
    assert len(set(ids)) == 300
    assert ids[42] == "sku-00042"
    for product in catalog:
        assert isinstance(product, Product)
        assert re.fullmatch(r"sku-\d{5}", product.id)
        assert product.sku == product.id
        parts = product.category.split(" > ")
        assert len(parts) == 3 and all(parts)
        assert product.group == " > ".join(parts[:2])
        assert product.name and product.brand
        assert isinstance(product.price, float) and product.price > 0
        assert round(product.price, 2) == product.price
        assert isinstance(product.tags, list) and all(isinstance(t, str) for t in product.tags)
        assert isinstance(product.in_stock, bool)
        assert catalog[product.id] is product and product.id in catalog
    assert 0.85 < sum(p.in_stock for p in catalog) / len(catalog) < 1.0
    assert len(catalog.categories) > 20  # every leaf of the tree is stocked at this size


def test_popularity_is_skewed_towards_a_few_bestsellers() -> None:
    catalog = Catalog.generate(seed=7, n_products=300)
    weights = sorted((p.popularity for p in catalog), reverse=True)
    top_share = sum(weights[:15]) / sum(weights)  # top 5% of products
    assert top_share > 0.2
    assert all("bestseller" in p.tags for p in catalog.bestsellers(5))


def test_sampling_follows_popularity_within_a_category() -> None:
    catalog = Catalog.generate(seed=7, n_products=300)
    rng = random.Random(1)
    leaf = max(catalog.categories, key=lambda c: len(catalog.leaf_products[c]))
    ranked = catalog.leaf_products[leaf]
    picks = [catalog.pick_product(leaf, rng).id for _ in range(4000)]
    assert set(picks) <= {p.id for p in ranked}
    assert picks.count(ranked[0].id) > picks.count(ranked[-1].id)


def test_tiny_catalog_and_validation() -> None:
    tiny = Catalog.generate(seed=1, n_products=3)
    assert len(tiny) == 3 and len(tiny.groups) >= 1
    with pytest.raises(ValueError):
        Catalog.generate(seed=1, n_products=0)
    with pytest.raises(ValueError):
        Catalog([])
    product = tiny.products[0]
    with pytest.raises(ValueError):
        Catalog([product, product])
