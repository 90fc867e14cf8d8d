"""Ranking metrics on hand-computed examples, and the temporal split on the synthetic shop."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.recommend.blend import MODELS
from persona.recommend.evaluation import average_precision, evaluate, hit_rate, ndcg, recall
from tests.recommend.shop import fill_shop

RANKED = ["a", "b", "c", "d"]


def test_hit_rate_and_recall() -> None:
    assert hit_rate(RANKED, {"c"}, 3) == 1.0
    assert hit_rate(RANKED, {"d"}, 3) == 0.0  # beyond k
    assert recall(RANKED, {"b", "d", "z"}, 4) == pytest.approx(2 / 3)
    assert recall(RANKED, {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert recall([], {"a"}, 10) == 0.0


def test_ndcg() -> None:
    assert ndcg(RANKED, {"a"}, 4) == pytest.approx(1.0)
    assert ndcg(RANKED, {"b"}, 4) == pytest.approx(1 / math.log2(3))
    # hits at ranks 2 and 4; ideal: ranks 1 and 2
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg(RANKED, {"b", "d"}, 4) == pytest.approx(expected)
    # more relevant items than k: the ideal fills all k ranks
    assert ndcg(["a", "b"], {"a", "b", "c"}, 2) == pytest.approx(1.0)
    assert ndcg(["x", "y"], {"a"}, 2) == 0.0


def test_average_precision() -> None:
    assert average_precision(RANKED, {"a", "c"}, 4) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(RANKED, {"b", "z"}, 4) == pytest.approx((1 / 2) / 2)
    assert average_precision(RANKED, {"a", "b", "c", "d", "e"}, 2) == pytest.approx(1.0)  # over min(5, k)
    assert average_precision(RANKED, {"z"}, 4) == 0.0


def test_evaluation_on_the_synthetic_shop_splits_by_time(engine: Engine) -> None:
    fill_shop(engine, customers=200)
    result = evaluate(engine.log, engine.state, engine.catalog, test_days=7, k=10)
    assert {row.model for row in result.rows} == {"blend (for_user)", *MODELS}
    assert result.test_users > 20
    assert result.latest_trained is not None and result.latest_trained < result.cut
    for row in result.rows:
        for value in (row.ndcg, row.recall, row.hit_rate, row.map, row.coverage):
            assert 0.0 <= value <= 1.0
    assert [row.ndcg for row in result.rows] == sorted((row.ndcg for row in result.rows), reverse=True)
    assert max(row.ndcg for row in result.rows) > 0


def test_persona_recs_evaluate_prints_the_table(config: Config) -> None:
    with Engine.open(config) as engine:
        fill_shop(engine, customers=60, days=10)
    store = config.store or f"sqlite:///{config.data_dir}"
    result = CliRunner().invoke(app, ["recs", "evaluate", "--test-days", "3", "--k", "5", "--store", store])
    assert result.exit_code == 0, result.output
    assert "NDCG@5" in result.output and "popularity" in result.output and "test users" in result.output
    with Engine.open(config) as engine:
        assert engine.rec_models.ids() == []  # evaluating stores nothing


def test_evaluating_an_empty_log_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ValueError, match="no interactions"):
        evaluate(engine.log, engine.state, engine.catalog)
