"""Lifetime value over the store, on both backends: CDNOW's calibration orders sent as events,
folded into profiles, and the models trained from the profiles' order counters reproduce the
published estimates; scores become model traits with the version that made them; versions are
registered, listed and rolled back through the CLI and the API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from persona.api import create_app
from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.errors import NotEnoughData
from persona.log.events import now_micros, to_micros
from persona.predict.lifecycle import refresh
from persona.predict.lifetime import CLV, score_clv, train_clv
from tests.conftest import SECRET_KEY
from tests.support.cdnow import CALIBRATION_END, cdnow_events

pytestmark = pytest.mark.backends

AS_OF = to_micros(datetime.combine(CALIBRATION_END, time(), UTC))  # T counts whole days to 1997-09-30


def calibration_orders(engine: Engine) -> None:
    """CDNOW's calibration period, sent as events and folded."""
    events = cdnow_events(until=CALIBRATION_END)
    for start in range(0, len(events), 2000):
        engine.log.append(events[start:start + 2000])
    engine.processor.run_until_caught_up()


def test_training_on_profiles_reproduces_the_papers_estimates_and_scores_every_customer(engine: Engine) -> None:
    with pytest.raises(NotEnoughData, match="at least 20 customers"):
        train_clv(engine.state, engine.models, AS_OF)
    calibration_orders(engine)
    version = train_clv(engine.state, engine.models, AS_OF)
    bgnbd = version.params["bgnbd"]
    assert (round(bgnbd["r"], 3), round(bgnbd["alpha"], 3), round(bgnbd["a"], 3), round(bgnbd["b"], 3)) == (
        0.243, 4.414, 0.793, 2.426)
    assert version.metrics["customers"] == 2357 and version.metrics["repeat_customers"] == 946
    assert version.active and version.label == "clv@1" and version.trained_on["customers"] == 2357

    scored = score_clv(engine.state, engine.model_traits, version, AS_OF)
    assert scored.customers == 2357
    first = engine.profiles.find("user_id:c1")  # 2 repeat orders, the last at 30.43 weeks, T 38.86
    traits = engine.model_traits.of_profile(first.id)
    assert traits["clv_model"] == "clv@1"
    assert 0 < traits["p_alive"] <= 1 and traits["expected_orders_90d"] > 0 and traits["predicted_clv_12m"] > 0
    values, ranks = engine.model_traits.values("predicted_clv_12m"), engine.model_traits.values(
        "predicted_clv_12m_percentile")
    assert set(ranks.values()) <= set(range(1, 101)) and max(ranks.values()) == 100
    top = sorted(values, key=values.__getitem__)[-236:]  # the top tenth by value is the 91st to 100th percentile
    assert all(ranks[pid] > 90 for pid in top)
    once = engine.profiles.find("user_id:c2")  # one repeat order, early: less likely alive than c1
    assert engine.model_traits.of_profile(once.id)["p_alive"] < traits["p_alive"]
    assert engine.model_traits.count(CLV) == 2357


def test_versions_roll_back_and_a_rollback_is_pinned(config: Config) -> None:
    with Engine.open(replace(config, models_retrain=60.0)) as engine, TestClient(create_app(engine)) as client:
        calibration_orders(engine)
        first = train_clv(engine.state, engine.models, AS_OF)
        second = train_clv(engine.state, engine.models, AS_OF + 7 * 86_400 * 1_000_000)
        assert engine.models.active(CLV).id == second.id and not engine.models.get(first.id).active

        def call(method: str, path: str) -> Any:
            return client.request(method, path, headers={"Authorization": f"Bearer {SECRET_KEY}"})

        listed = call("GET", "/v1/models?kind=clv").json()["data"]
        assert [v["label"] for v in listed] == ["clv@2", "clv@1"] and listed[0]["active"] is True
        assert call("GET", "/v1/models/1").json()["params"]["bgnbd"] == first.params["bgnbd"]
        assert call("GET", "/v1/models/99").status_code == 404
        rolled = call("POST", f"/v1/models/{first.id}/activate").json()
        assert rolled["active"] is True and engine.models.active(CLV).id == first.id

        # The scheduled refresh scores with the pinned version and trains nothing over it, however old;
        # the classifiers say why they cannot train on orders alone over 39 weeks.
        line = refresh(engine, now=AS_OF + 400 * 86_400 * 1_000_000)
        assert line.startswith("clv: 2,357 customers scored by clv@1") and len(engine.models.versions(CLV)) == 2
        assert "propensity: skipped: " in line and "churn: skipped: " in line
        # Back on the newest, an active version older than models_retrain is retrained first.
        engine.models.activate(second.id)
        line = refresh(engine, now=now_micros() + 61 * 1_000_000)
        assert line.startswith("clv: trained clv@3") and engine.models.active(CLV).label == "clv@3"
        c1 = engine.profiles.find("user_id:c1")
        assert engine.model_traits.of_profile(c1.id)["clv_model"] == "clv@3"
        # A scoring that finds the customers moved flags the version; the next refresh retrains it at once.
        assert not call("GET", "/v1/models/3/drift").json()["data"][0]["flagged"]
        engine.models.record_drift(3, {"flagged": True, "score_psi": 0.4, "features": {}, "drifted_features": [],
                                       "customers": 2357, "reference_customers": 2357})
        line = refresh(engine, now=now_micros() + 62 * 1_000_000)
        assert line.startswith("clv: trained clv@4")
        assert call("GET", "/v1/models/99/drift").status_code == 404


def test_the_models_cli(engine: Engine) -> None:
    store = engine.config.store or f"sqlite:///{engine.config.data_dir}"
    empty = CliRunner().invoke(app, ["models", "train", "clv", "--store", store])
    assert empty.exit_code == 1 and "not trained" in empty.output
    assert CliRunner().invoke(app, ["models", "score", "clv", "--store", store]).exit_code == 1
    calibration_orders(engine)
    trained = CliRunner().invoke(app, ["models", "train", "clv", "--store", store])
    assert trained.exit_code == 0, trained.output
    assert "clv@1" in trained.output and "2,357 customers scored by clv@1" in trained.output
    CliRunner().invoke(app, ["models", "train", "clv", "--no-score", "--store", store])
    listed = CliRunner().invoke(app, ["models", "list", "--store", store])
    assert listed.exit_code == 0 and "clv@2" in listed.output and "clv@1" in listed.output
    rolled = CliRunner().invoke(app, ["models", "activate", "1", "--store", store])
    assert rolled.exit_code == 0 and "clv@1 is active" in rolled.output
    scored = CliRunner().invoke(app, ["models", "score", "clv", "--store", store])
    assert scored.exit_code == 0 and "scored by clv@1" in scored.output
    assert CliRunner().invoke(app, ["models", "train", "lifetime", "--store", store]).exit_code == 2


def test_a_retraining_that_cannot_happen_leaves_the_version_in_use_scoring(config: Config) -> None:
    with Engine.open(replace(config, models_retrain=60.0)) as engine:
        calibration_orders(engine)
        first = train_clv(engine.state, engine.models, AS_OF)
        engine.models.record_drift(first.id, {"flagged": True, "score_psi": 0.5, "features": {},
                                              "drifted_features": [], "customers": 1, "reference_customers": 1})
        engine.model_traits.reset()
        engine.state.reset()  # the profiles are gone (a rebuild under way, say): nothing to train on
        line = refresh(engine, now=now_micros() + 61 * 1_000_000)
        assert line.startswith("clv: not retrained (BG/NBD needs at least 20 customers") and "by clv@1" in line
        assert engine.models.active(CLV).id == first.id


def test_a_segment_on_p_alive_follows_each_scoring(engine: Engine) -> None:
    engine.definitions.apply({"segment": [
        {"id": "slipping", "where": {"trait": "p_alive", "lt": 0.5}},
        {"id": "slipping_valuable", "where": {"all": [{"segment": "slipping"},
                                                      {"trait": "predicted_clv_12m", "gt": 20}]}}]})
    calibration_orders(engine)
    version = train_clv(engine.state, engine.models, AS_OF)
    sizes = []
    for weeks in (0, 26):  # half a year on, with no new orders, fewer customers are likely alive
        score_clv(engine.state, engine.model_traits, version, AS_OF + weeks * 7 * 86_400 * 1_000_000)
        engine.processor.run_until_caught_up()
        scores = engine.model_traits.values("p_alive")
        clv = engine.model_traits.values("predicted_clv_12m")
        slipping = {pid for pid, p in scores.items() if p < 0.5}
        assert {pid for pid, _ in engine.audiences.members("slipping", "", 10_000)} == slipping
        assert engine.audiences.sizes()["slipping_valuable"] == sum(1 for pid in slipping if clv[pid] > 20)
        sizes.append(len(slipping))
    assert 0 < sizes[0] < sizes[1]
    assert engine.model_traits.changes(10) == []


def test_a_young_shop_is_refused_with_the_reason_not_an_overflow(engine: Engine) -> None:
    from tests.recommend.shop import end_of, fill_shop

    workload = fill_shop(engine, seed=3, customers=150, days=20)  # where the fit once ran off to e^1800
    with pytest.raises(NotEnoughData, match="Gamma-Gamma needs at least 20 customers"):
        train_clv(engine.state, engine.models, end_of(workload))
