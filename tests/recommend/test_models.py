"""The baseline models on hand-made interactions, and a model set trained on the synthetic shop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from persona.engine import Engine
from persona.log.events import to_micros
from persona.recommend.interactions import Interactions, interactions_from
from persona.recommend.models import (
    AlsoViewed,
    BoughtTogether,
    ItemIndex,
    Popularity,
    Scored,
    Trending,
    UserHistory,
    top_n,
)
from persona.recommend.modelset import ModelSet, train
from tests.recommend.shop import end_of, fill_shop
from tests.support.events import BASE, event

NOW = to_micros(BASE + timedelta(days=40))
CATEGORIES = {"a": "Outdoor", "b": "Outdoor", "c": "Books", "d": "Books", "e": "Books"}


def viewed(user: str, item: str, day: float = 39) -> tuple[str, Any]:
    return user, event("track", user=user, event="Product Viewed", properties={"product_id": item},
                       minutes=day * 24 * 60)


def ordered(user: str, *items: str, day: float = 39) -> tuple[str, Any]:
    return user, event("track", user=user, event="Order Completed", minutes=day * 24 * 60,
                       properties={"products": [{"product_id": i} for i in items]})


def fitted(pairs: list[tuple[str, Any]]) -> tuple[Interactions, ItemIndex]:
    interactions = interactions_from(pairs, NOW, items=list(CATEGORIES))
    index = ItemIndex(interactions.item_ids, [f"Item {i.upper()}" for i in interactions.item_ids],
                      [CATEGORIES.get(i, "") for i in interactions.item_ids])
    return interactions, index


def test_popularity_ranks_by_decayed_weight_overall_and_per_category() -> None:
    interactions, items = fitted([viewed("u1", "a"), viewed("u2", "a"), viewed("u3", "c"), viewed("u3", "c"),
                                  viewed("u4", "c", day=0), ordered("u5", "d")])
    popularity = Popularity()
    popularity.fit(interactions, items)
    assert [s.item_id for s in popularity.top(5)] == ["d", "c", "a"]  # 5, 2 + 1/2 decayed, 2
    assert [s.reason for s in popularity.top(5)] == ["popular in Books", "popular in Books", "popular in Outdoor"]
    assert [s.item_id for s in popularity.top(5, category="Books")] == ["d", "c"]
    assert [s.item_id for s in popularity.recommend(UserHistory(purchased=frozenset({"d"})), 5, {"a"})] == ["c"]


def test_trending_prefers_recent_growth_to_steady_volume() -> None:
    steady = [viewed(f"s{n}", "a", day=10 + n % 25) for n in range(40)]  # spread over the 35 days
    rising = [viewed(f"r{n}", "b", day=38) for n in range(6)]
    interactions, items = fitted(steady + rising + [viewed("old", "c", day=1)])
    trending = Trending()
    trending.fit(interactions, items)
    assert [(s.item_id, s.reason) for s in trending.top(5)] == [("b", "trending")]


def test_also_viewed_returns_items_viewed_by_the_same_people() -> None:
    pairs = [viewed("u1", "a"), viewed("u1", "b"), viewed("u2", "a"), viewed("u2", "b"), viewed("u3", "a"),
             viewed("u3", "c"), viewed("u4", "d"), viewed("u4", "e")]
    interactions, items = fitted(pairs)
    model = AlsoViewed()
    model.fit(interactions, items)
    similar = model.similar("a", 5)
    assert [s.item_id for s in similar] == ["b", "c"] and similar[0].score > similar[1].score
    assert similar[0].reason == "viewed with Item A"
    assert model.similar("zzz", 5) == []


def test_bought_together_comes_from_orders_only() -> None:
    pairs = [ordered("u1", "a", "b"), ordered("u2", "a", "b", "c"), viewed("u3", "a"), viewed("u3", "d")]
    interactions, items = fitted(pairs)
    model = BoughtTogether()
    model.fit(interactions, items)
    assert [s.item_id for s in model.similar("a", 5)] == ["b", "c"]
    assert model.similar("a", 5)[0].reason == "often bought with Item A"
    assert model.similar("d", 5) == []


def test_a_user_gets_items_like_their_recent_ones_not_what_they_bought() -> None:
    pairs = [viewed("u1", "a"), viewed("u1", "b"), viewed("u2", "a"), viewed("u2", "c"),
             viewed("u3", "d"), viewed("u3", "e")]
    interactions, items = fitted(pairs)
    model = AlsoViewed()
    model.fit(interactions, items)
    history = UserHistory(items=("a",), weights=(1.0,))
    assert [(s.item_id, s.reason) for s in model.recommend(history, 5)] == [
        ("b", "because you viewed Item A"), ("c", "because you viewed Item A")]
    bought_b = UserHistory(items=("a", "b"), weights=(1.0, 5.0), purchased=frozenset({"b"}))
    # Viewed but not bought stays a candidate ("a", through "b"); bought ("b") does not.
    assert [s.item_id for s in model.recommend(bought_b, 5)] == ["a", "c"]
    assert [s.item_id for s in model.recommend(bought_b, 5, exclude={"a", "c"})] == []


def test_a_model_set_on_the_synthetic_shop(engine: Engine) -> None:
    workload = fill_shop(engine)
    models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    assert models.summary["users"] > 100 and models.summary["orders"] > 10
    assert len(models.items) == len(workload.catalog)  # every catalog item, touched or not
    matrix_of = {}
    for user, history in ((u, models.history(u)) for u in models.histories.user_ids):
        assert history is not None
        matrix_of[user] = set(history.items)
        recs = models.for_user(user, 10)
        assert len(recs) == 10 and not {s.item_id for s in recs} & history.purchased
    # Every item-to-item neighbour was interacted with by someone who also touched the item.
    item = max(models.items.ids, key=lambda i: len(models.similar(i, 10)))
    for s in models.also_viewed.similar(item, 10):
        assert any(item in seen and s.item_id in seen for seen in matrix_of.values())
    assert [s.reason for s in models.for_user("nobody", 4)].count("trending") >= 1
    again = ModelSet.from_bytes(models.to_bytes(), models.summary)
    some_user = models.histories.user_ids[0]
    assert again.for_user(some_user, 10) == models.for_user(some_user, 10)
    assert again.similar(item, 10) == models.similar(item, 10)


def test_top_n_orders_by_score_then_position_whether_or_not_it_partitions() -> None:
    assert top_n(np.asarray([5, 3, 9, 1]), np.asarray([1.0, 2.0, 2.0, 0.0]), 2).tolist() == [1, 2]
    rng = np.random.default_rng(0)
    for n in (1, 5, 50):
        indices = rng.permutation(1000)
        scores = rng.integers(0, 20, 1000).astype(float)  # many ties, at the cut too
        expected = np.lexsort((indices, -scores))[:n]
        assert top_n(indices, scores, n).tolist() == expected.tolist()


def test_a_reason_is_worked_out_only_when_read_and_once() -> None:
    calls: list[int] = []
    scored = Scored("i1", 1.0, lambda: calls.append(1) or "because")
    rescored = scored.rescored(2.0)
    assert calls == [] and rescored.score == 2.0
    assert rescored.reason == "because" and rescored.reason == "because" and calls == [1]
    assert scored == Scored("i1", 1.0, "because") and scored != rescored
