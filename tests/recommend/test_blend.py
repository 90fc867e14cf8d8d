"""The learned blend: weights tuned on a validation split, stored with the set, used by `for_user`."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from persona.config import load_config
from persona.engine import Engine
from persona.recommend.blend import DEFAULT_WEIGHTS, MODELS, grid, learn_weights
from persona.recommend.modelset import ModelSet, train
from tests.recommend.shop import end_of, fill_shop


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelSet:
    with Engine.open(load_config(env={}, data_dir=tmp_path_factory.mktemp("blend"))) as engine:
        workload = fill_shop(engine, customers=200, days=30)
        return train(engine.log, engine.state, engine.catalog, now=end_of(workload))


def test_the_grid_is_the_simplex_in_fifths_with_every_corner() -> None:
    points = grid(5, len(MODELS))
    assert (points.sum(axis=1) == 5).all() and len(points) == 462 and len({tuple(p) for p in points}) == 462
    assert {tuple(row) for row in 5 * np.eye(len(MODELS), dtype=int)} <= {tuple(row) for row in points}


def test_training_learns_weights_no_worse_than_any_single_model_on_validation(models: ModelSet) -> None:
    blend = models.summary["blend"]
    assert blend["users"] > 0 and blend["validation_days"] == 7
    assert set(blend["weights"]) == set(MODELS) and sum(blend["weights"].values()) == pytest.approx(1.0)
    assert models.weights == blend["weights"]
    assert set(blend["single"]) == set(MODELS)
    assert all(blend["ndcg"] >= single for single in blend["single"].values())
    assert all(round(10 * w) == pytest.approx(10 * w) for w in blend["weights"].values())  # in tenths


def test_the_weights_favour_the_model_that_is_clearly_best(models: ModelSet) -> None:
    histories = [h for user in models.histories.user_ids[:80] if (h := models.history(user)) is not None]
    # What each user "will touch" is exactly what bought-together would recommend them.
    users = [(h, {s.item_id for s in models.bought_together.recommend(h, 3)}) for h in histories]
    users = [(h, relevant) for h, relevant in users if relevant]
    learned = learn_weights(models.base_models(), users)
    assert max(learned.weights, key=lambda name: learned.weights[name]) == "bought_together"
    assert learned.single["bought_together"] == pytest.approx(1.0)
    assert learned.ndcg == pytest.approx(1.0)


def _saved_without(models: ModelSet, dropped: Callable[[str], bool]) -> ModelSet:
    with np.load(io.BytesIO(models.to_bytes())) as archive:
        arrays = {name: archive[name] for name in archive.files if not dropped(name)}
    out = io.BytesIO()
    np.savez(out, **arrays)
    return ModelSet.from_bytes(out.getvalue(), {})


def test_weights_are_saved_and_loaded_and_an_old_set_gets_the_defaults(models: ModelSet) -> None:
    again = ModelSet.from_bytes(models.to_bytes(), models.summary)
    assert again.weights == pytest.approx(models.weights)
    user = models.histories.user_ids[0]
    assert again.for_user(user, 10) == models.for_user(user, 10)
    old = _saved_without(models, lambda name: name.startswith("blend."))  # saved before weights were learned
    assert old.weights == DEFAULT_WEIGHTS


def test_a_set_saved_before_the_sequential_and_factor_models_serves_with_the_five_it_has(models: ModelSet) -> None:
    old = _saved_without(models, lambda name: name.split(".")[0] in ("next_item", "factors", "blend"))
    assert [m.name for m in old.base_models()] == list(MODELS[:5])
    user = models.histories.user_ids[0]
    served = old.for_user(user, 10)
    assert len(served) == 10 and all(s.reason for s in served)


def test_all_weight_on_one_model_serves_that_models_list(models: ModelSet) -> None:
    user = next(u for u in models.histories.user_ids if (h := models.history(u)) and h.purchased)
    history = models.history(user)
    assert history is not None
    models_weights = models.weights
    try:
        models.weights = {name: float(name == "popularity") for name in MODELS}
        served = models.for_user(user, 10)
    finally:
        models.weights = models_weights
    expected = models.popularity.recommend(history, 10)
    assert [s.item_id for s in served] == [s.item_id for s in expected]
    assert [s.reason for s in served] == [s.reason for s in expected]
    assert not {s.item_id for s in served} & history.purchased


def test_a_visitor_unknown_to_the_models_gets_a_list_from_their_session(models: ModelSet) -> None:
    item = max(models.items.ids, key=lambda i: len(models.also_viewed.similar(i, 50)))
    served = models.for_user(None, 10, recent=[item])
    assert [s.item_id for s in served] != [s.item_id for s in models.for_user(None, 10)]  # not the cold start
    related = {s.item_id for name in ("also_viewed", "next_item", "bought_together", "content")
               for s in models.models[name].similar(item, 50)}  # type: ignore[attr-defined]
    assert len({s.item_id for s in served} & related) >= 5
