"""Recommendations on both backends: the same shop trains the same models and evaluates the same on
SQLite and PostgreSQL, and the CLI commands and the endpoints work on each."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config, load_config
from persona.engine import Engine
from persona.recommend.evaluation import evaluate
from persona.recommend.modelset import train
from tests.conftest import SECRET_KEY
from tests.recommend.shop import end_of, fill_shop
from tests.support.backends import postgres_schema

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def without_timings(value: Any) -> Any:
    """The summary less how long things took (`seconds`, `fit_seconds`, ...): all that may differ."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not (k == "seconds" or k.endswith("_seconds"))}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def trained_and_evaluated(config: Config) -> dict[str, Any]:
    """What a store makes of the seeded shop: the model summary, some lists, the evaluation."""
    with Engine.open(config) as engine:
        workload = fill_shop(engine, customers=120, days=20)
        models = train(engine.log, engine.state, engine.catalog, now=end_of(workload))
        users = models.histories.user_ids[:20]
        result = evaluate(engine.log, engine.state, engine.catalog, test_days=5, k=10)
    return {"summary": without_timings(models.summary),
            "users": users, "lists": [models.for_user(user, 10) for user in [*users, None]],
            "similar": [models.similar(item, 5) for item in models.items.ids[:20]],
            "evaluation": without_timings(asdict(result))}  # every row and figure


def test_both_backends_train_the_same_models_and_evaluate_them_the_same(tmp_path: Path) -> None:
    sqlite = trained_and_evaluated(load_config(env={}, data_dir=tmp_path / "sqlite"))
    with postgres_schema() as url:
        postgres = trained_and_evaluated(load_config(env={}, data_dir=tmp_path / "pg", store=url))
    assert sqlite["summary"]["interactions"] > 0 and sqlite["evaluation"]["rows"]
    for part in ("summary", "users", "lists", "similar", "evaluation"):
        assert postgres[part] == sqlite[part], part


def test_the_cli_trains_and_evaluates_and_the_endpoints_serve(config: Config, engine: Engine,
                                                              client: TestClient) -> None:
    fill_shop(engine, customers=60, days=10)
    store = ["--store", config.store_url]
    evaluated = CliRunner().invoke(app, ["recs", "evaluate", "--test-days", "3", "--k", "5", *store])
    assert evaluated.exit_code == 0 and "NDCG@5" in evaluated.output, evaluated.output
    trained = CliRunner().invoke(app, ["recs", "train", *store])
    assert trained.exit_code == 0 and "recommendation models #1" in trained.output, trained.output
    client.auth = None
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    models = engine.recommender.current()
    user = next(p.identifiers["user_id"][0] for root in models.histories.user_ids
                if (p := engine.state.profile(root)) is not None and p.identifiers.get("user_id"))
    body = client.get(f"/v1/recommendations/user_id:{user}?k=5", headers=headers).json()
    assert body["known_user"] is True and body["model"] == 1 and len(body["data"]) == 5
    item = body["data"][0]["item_id"]
    for path in (f"/v1/recommendations/items/{item}/similar?k=3",
                 f"/v1/recommendations/items/{item}/bought-together?k=3"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["data"], list)
    assert client.get("/v1/recommendations/user_id:nobody?k=4", headers=headers).json()["known_user"] is False


def test_an_empty_model_store_has_no_newest_set(engine: Engine) -> None:
    assert engine.rec_models.newest() is None and engine.rec_models.newest_id() is None
    assert engine.rec_models.ids() == []
