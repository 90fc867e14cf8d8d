"""Interactions from events: which events count, weighted by kind, decayed by age."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from persona.engine import Engine
from persona.log.events import to_micros
from persona.recommend.interactions import (
    ADD,
    CLICK,
    PURCHASE,
    RATING,
    VIEW,
    InteractionWeights,
    collect_interactions,
    interactions_from,
)
from tests.support.events import BASE, event

NOW = to_micros(BASE + timedelta(days=30))


def test_weights_by_kind_and_decay_by_age_are_exact() -> None:
    pairs = [
        ("p1", event("track", user="u1", event="Product Viewed", properties={"product_id": "a"},
                     minutes=30 * 24 * 60)),  # now: no decay
        ("p1", event("track", user="u1", event="Product Clicked", properties={"sku": "b"})),  # 30 days old
        ("p2", event("track", user="u2", event="Product Added", properties={"product_id": "a"},
                     minutes=15 * 24 * 60)),  # 15 days old
        ("p2", event("track", user="u2", event="Order Completed", minutes=30 * 24 * 60,
                     properties={"products": [{"product_id": "a"}, {"sku": "c"}, {"name": "no id"}]})),
        ("p1", event("track", user="u1", event="Product Reviewed", properties={"product_id": "c", "rating": 5},
                     minutes=30 * 24 * 60)),
        ("p1", event("track", user="u1", event="Product Reviewed", properties={"product_id": "c"})),  # no rating
        ("p1", event("track", user="u1", event="Checkout Started", properties={"product_id": "a"})),
        ("p1", event("page", user="u1", properties={"product_id": "a"})),
    ]
    got = interactions_from(pairs, NOW, InteractionWeights(half_life_days=30))
    assert (got.user_ids, got.item_ids) == (["p1", "p2"], ["a", "b", "c"])
    assert got.users.tolist() == [0, 0, 1, 1, 1, 0]
    assert got.items.tolist() == [0, 1, 0, 0, 2, 2]
    assert got.kinds.tolist() == [VIEW, CLICK, ADD, PURCHASE, PURCHASE, RATING]
    assert got.baskets.tolist() == [-1, -1, -1, 0, 0, -1]
    np.testing.assert_allclose(got.weights, [1.0, 0.5, 3 * 2 ** -0.5, 5.0, 5.0, 2.0], rtol=1e-6)
    assert got.timestamps[0] == NOW
    np.testing.assert_allclose(got.matrix().toarray(), [[1.0, 0.5, 2.0], [3 * 2 ** -0.5 + 5, 0, 5.0]], rtol=1e-6)


def test_weights_are_configurable_and_the_vocabulary_can_be_seeded() -> None:
    pairs = [("p1", event("track", user="u1", event="Product Viewed", properties={"product_id": "a"},
                          minutes=20 * 24 * 60))]  # 10 days old
    got = interactions_from(pairs, NOW, InteractionWeights(view=2.0, half_life_days=10), items=["z", "a"])
    assert got.item_ids == ["z", "a"] and got.items.tolist() == [1]
    np.testing.assert_allclose(got.weights, [1.0], rtol=1e-6)
    with pytest.raises(ValueError):
        InteractionWeights(half_life_days=0)


def test_events_count_for_the_profile_they_belong_to_now(engine: Engine) -> None:
    engine.log.append([
        event("track", anon="a1", event="Product Viewed", properties={"product_id": "x"}),
        event("track", user="u1", event="Product Viewed", properties={"product_id": "y"}),
        event("identify", user="u1", anon="a1"),  # merges the anonymous visitor into u1
    ])
    engine.processor.run_until_caught_up()
    got = collect_interactions(engine.log, engine.state, NOW)
    assert len(got.user_ids) == 1 and got.users.tolist() == [0, 0]
    assert got.user_ids[0] == engine.profiles.find("user_id:u1").id
