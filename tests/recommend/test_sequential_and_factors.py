"""The sequential next-item model, matrix factorization (ALS, BPR) and the hyperparameter tuning."""

from __future__ import annotations

import numpy as np
import pytest

from persona.recommend.factors import FactorParams, Factors
from persona.recommend.interactions import MICROS_PER_DAY, Interactions
from persona.recommend.models import ItemIndex, NextItem, UserHistory
from persona.recommend.modelset import with_recent
from persona.recommend.tuning import tune
from tests.recommend.test_models import NOW, fitted, viewed


def test_next_item_learns_what_follows_within_a_day_in_order() -> None:
    pairs = []
    for n in range(6):  # a -> b -> c, each a few minutes apart
        pairs += [viewed(f"u{n}", "a", day=30 + 0.001), viewed(f"u{n}", "b", day=30 + 0.002),
                  viewed(f"u{n}", "c", day=30 + 0.003)]
    pairs += [viewed("v", "a", day=20), viewed("v", "e", day=25)]  # five days apart: not "next"
    interactions, items = fitted(pairs)
    model = NextItem()
    model.fit(interactions, items)
    assert [s.item_id for s in model.similar("a", 5)] == ["b", "c"]  # c two steps on weighs half
    assert [s.item_id for s in model.similar("b", 5)] == ["c"]  # order matters: b is not followed by a
    assert model.similar("c", 5) == [] and model.similar("e", 5) == []
    assert model.similar("a", 1)[0].reason == "often next after Item A"


def test_next_item_follows_the_latest_item_most() -> None:
    pairs = []
    for n in range(5):
        pairs += [viewed(f"x{n}", "a", day=30), viewed(f"x{n}", "c", day=30.001)]  # a is followed by c
        pairs += [viewed(f"y{n}", "b", day=30), viewed(f"y{n}", "d", day=30.001)]  # b is followed by d
    interactions, items = fitted(pairs)
    model = NextItem()
    model.fit(interactions, items)
    latest_b = UserHistory(items=("b", "a"), weights=(1.0, 1.0))
    latest_a = UserHistory(items=("a", "b"), weights=(1.0, 1.0))
    assert [s.item_id for s in model.recommend(latest_b, 2)] == ["d", "c"]
    assert [s.item_id for s in model.recommend(latest_a, 2)] == ["c", "d"]
    assert model.recommend(latest_a, 2)[0].reason == "often next after Item A"


def clustered(users_per_group: int = 40, seed: int = 3) -> tuple[Interactions, ItemIndex]:
    """Two groups of users with two disjoint sets of items: each user touches a few of their group's."""
    rng = np.random.default_rng(seed)
    groups = [[f"g0_{i}" for i in range(10)], [f"g1_{i}" for i in range(10)]]
    rows = [(u, g, rng.choice(10, 4, replace=False)) for g in (0, 1) for u in range(users_per_group)]
    users = np.asarray([g * users_per_group + u for u, g, picks in rows for _ in picks], dtype=np.int32)
    items = np.asarray([g * 10 + int(i) for _, g, picks in rows for i in picks], dtype=np.int32)
    n = len(users)
    item_ids = groups[0] + groups[1]
    interactions = Interactions(users, items, np.ones(n, np.float32), np.full(n, NOW - MICROS_PER_DAY, np.int64),
                                np.zeros(n, np.int8), np.full(n, -1, np.int32),
                                [f"user{u}" for u in range(2 * users_per_group)], item_ids, NOW)
    return interactions, ItemIndex(item_ids, [i.upper() for i in item_ids], [""] * len(item_ids))


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
def test_factors_recommend_from_the_users_own_group(algorithm: str) -> None:
    interactions, items = clustered()
    model = Factors(FactorParams(algorithm, factors=4, regularization=0.1, iterations=20))  # two groups: rank 2
    model.fit(interactions, items)
    history = UserHistory(items=("g1_0", "g1_1", "g1_2"), weights=(1.0, 1.0, 1.0), purchased=frozenset({"g1_3"}))
    found = model.recommend(history, 5, exclude={"g1_4"})
    assert len(found) == 5 and all(s.item_id.startswith("g1_") for s in found)
    assert not {s.item_id for s in found} & {"g1_3", "g1_4"}  # purchased and excluded stay out
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    assert found[0].reason.startswith("matches your interest in G1_")


def test_factors_fold_in_a_history_the_model_never_saw_and_save_as_arrays() -> None:
    interactions, items = clustered()
    model = Factors(FactorParams(factors=4, regularization=0.1, iterations=10))
    model.fit(interactions, items)
    again = Factors()
    again.load(model.arrays(), items)
    assert again.params == model.params
    fresh = UserHistory(items=("g0_9",), weights=(3.0,))  # one item: a user who arrived after training
    assert [s.item_id for s in again.recommend(fresh, 3)] == [s.item_id for s in model.recommend(fresh, 3)]
    assert all(s.item_id.startswith("g0_") for s in model.recommend(fresh, 3))
    assert model.recommend(UserHistory(items=("unknown",), weights=(1.0,)), 3) == []


def test_factors_fit_on_nothing_recommends_nothing() -> None:
    interactions, items = fitted([])
    model = Factors()
    model.fit(interactions, items)
    assert model.recommend(UserHistory(items=("a",), weights=(1.0,)), 3) == []


def test_factor_params_are_checked() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        FactorParams("svd")
    with pytest.raises(ValueError, match="positive"):
        FactorParams(factors=0)


def test_tuning_keeps_the_setting_that_scores_best_on_validation() -> None:
    interactions, items = clustered()
    # Validation: each user of group 1 later touches an item of their group they had not touched.
    users = []
    for u in range(40, 80):
        touched = [items.ids[i] for i in interactions.items[interactions.users == u].tolist()]
        users.append((UserHistory(tuple(touched), (1.0,) * len(touched)),
                      {i for i in items.ids[10:] if i not in touched}))
    grid = [FactorParams(factors=8, regularization=0.01, iterations=10), FactorParams(factors=1, iterations=1)]
    chosen, fitted_models, trials = tune(interactions, items, users, factor_grid=grid, damping_grid=(0.0, 0.5))
    by_setting = {(t.model, str(t.setting)): t.ndcg for t in trials}
    assert len(trials) == 4 and all(0.0 <= t.ndcg <= 1.0 for t in trials)
    factor_trials = [t for t in trials if t.model == "factors"]
    best = max(factor_trials, key=lambda t: t.ndcg)
    assert chosen.factors.factors == best.setting["factors"]
    assert by_setting[("factors", str(best.setting))] > min(t.ndcg for t in factor_trials)
    assert isinstance(fitted_models["factors"], Factors) and fitted_models["factors"].params == chosen.factors
    assert fitted_models["next_item"].popularity_damping == chosen.next_item_damping  # type: ignore[attr-defined]


def test_next_item_fits_on_nothing_and_on_one_interaction() -> None:
    for pairs in ([], [viewed("u", "a")]):
        interactions, items = fitted(pairs)
        model = NextItem()
        model.fit(interactions, items)
        assert model.similar("a", 3) == []


def test_recent_items_lead_the_history_the_models_read() -> None:
    history = UserHistory(items=("a", "b", "c"), weights=(1.0, 5.0, 2.0), purchased=frozenset({"c"}))
    moved = with_recent(history, ["c", "x", "c"])
    assert moved.items == ("c", "x", "a", "b") and moved.weights == (3.0, 3.0, 1.0, 5.0)
    assert moved.purchased == {"c"}
    assert with_recent(UserHistory(), ["x"]).items == ("x",)
