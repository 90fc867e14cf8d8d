"""Trained model sets in the state store, on both backends; the service swaps in newer ones."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.errors import ModelNotTrained
from persona.recommend.modelset import train
from persona.recommend.store import KEEP, Recommender
from tests.recommend.shop import end_of, fill_shop

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_model_sets_round_trip_and_only_the_newest_are_kept(engine: Engine) -> None:
    workload = fill_shop(engine, customers=120, days=20)
    models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    ids = [engine.rec_models.save(models) for _ in range(KEEP + 2)]
    assert ids == list(range(1, KEEP + 3)) and engine.rec_models.ids() == ids[-KEEP:]
    stored = engine.rec_models.newest()
    assert stored is not None and stored.id == ids[-1] and stored.summary == models.summary
    loaded = engine.recommender.current()
    assert loaded.summary["id"] == ids[-1]
    user = models.histories.user_ids[0]
    assert loaded.for_user(user, 10) == models.for_user(user, 10)
    assert loaded.for_user(None, 10) == models.for_user(None, 10)


def test_the_service_picks_up_a_newer_model_without_pausing(engine: Engine) -> None:
    clock = Clock()
    recommender = Recommender(engine.rec_models, check_every=5, clock=clock)
    with pytest.raises(ModelNotTrained, match="persona recs train"):
        recommender.current()
    workload = fill_shop(engine, customers=60, days=10)
    first = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
    engine.rec_models.save(first)
    served = recommender.current()  # nothing served yet: it loads at once
    assert served.summary["id"] == 1
    engine.rec_models.save(first)
    clock.now = 4.9
    assert recommender.current() is served  # not due: not even a look
    clock.now = 5.0
    assert recommender.current() is served  # due: this request is served at once, the newer set loads aside
    deadline = time.monotonic() + 30
    while (newer := recommender.current()) is served and time.monotonic() < deadline:
        time.sleep(0.02)
    assert newer is not served and newer.summary["id"] == 2
    clock.now = 10.0
    assert recommender.current() is newer  # looked, nothing newer


def test_persona_recs_train_stores_a_model(config: Config) -> None:
    with Engine.open(config) as engine:
        fill_shop(engine, customers=40, days=5)
    store = config.store or f"sqlite:///{config.data_dir}"
    result = CliRunner().invoke(app, ["recs", "train", "--store", store])
    assert result.exit_code == 0, result.output
    assert "users" in result.output and "interactions" in result.output and "blend weights:" in result.output
    again = CliRunner().invoke(app, ["recs", "train", "--no-tune", "--half-life", "7", "--store", store])
    assert again.exit_code == 0, again.output
    assert "(not tuned)" in again.output
    with Engine.open(config) as engine:
        assert engine.rec_models.ids() == [1, 2]
        summary = engine.rec_models.newest().summary  # type: ignore[union-attr]
    assert summary["half_life_days"] == 7 and summary["tuning"] == [] and not summary["hyperparameters"]["tuned"]
