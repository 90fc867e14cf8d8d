"""The learned blend: weights tuned on a validation split, stored with the set, used by `for_user`."""

from __future__ import annotations

import io

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


def test_the_grid_is_the_simplex_in_tenths_with_every_corner() -> None:
    points = grid()
    assert np.allclose(points.sum(axis=1), 1.0) and len(points) == 1001
    assert {tuple(row) for row in np.eye(len(MODELS))} <= {tuple(row) for row in points}


def test_training_learns_weights_no_worse_than_any_single_model_on_validation(models: ModelSet) -> None:
    blend = models.summary["blend"]
    assert blend["users"] > 0 and blend["validation_days"] == 7
    assert set(blend["weights"]) == set(MODELS) and sum(blend["weights"].values()) == pytest.approx(1.0)
    assert models.weights == blend["weights"]
    assert set(blend["single"]) == set(MODELS)
    assert all(blend["ndcg"] >= single for single in blend["single"].values())


def test_the_weights_favour_the_model_that_is_clearly_best(models: ModelSet) -> None:
    histories = [h for user in models.histories.user_ids[:80] if (h := models.history(user)) is not None]
    # What each user "will touch" is exactly what bought-together would recommend them.
    users = [(h, {s.item_id for s in models.bought_together.recommend(h, 3)}) for h in histories]
    users = [(h, relevant) for h, relevant in users if relevant]
    learned = learn_weights(models.base_models(), users)
    assert max(learned.weights, key=lambda name: learned.weights[name]) == "bought_together"
    assert learned.single["bought_together"] == pytest.approx(1.0)
    assert learned.ndcg == pytest.approx(1.0)


def test_weights_are_saved_and_loaded_and_an_old_set_gets_the_defaults(models: ModelSet) -> None:
    again = ModelSet.from_bytes(models.to_bytes(), models.summary)
    assert again.weights == pytest.approx(models.weights)
    user = models.histories.user_ids[0]
    assert again.for_user(user, 10) == models.for_user(user, 10)
    with np.load(io.BytesIO(models.to_bytes())) as archive:  # as saved before weights were learned
        arrays = {name: archive[name] for name in archive.files if name != "blend.weights"}
    out = io.BytesIO()
    np.savez(out, **arrays)
    old = ModelSet.from_bytes(out.getvalue(), {})
    assert old.weights == DEFAULT_WEIGHTS


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
