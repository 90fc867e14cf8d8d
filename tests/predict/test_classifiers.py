"""Churn and purchase propensity on the synthetic shop, on both backends: features as of a
cut-off never see what came after it, training is backtested on two past cut-offs and beats
recency alone, scores become model traits, guard rails refuse what cannot be learned, and the
CLI trains, evaluates (with an HTML report) and lists versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.errors import NotEnoughData
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, from_micros
from persona.predict import lifecycle
from persona.predict.classifiers import DAY_US, TARGETS, dataset
from persona.predict.features import features_as_of, labels, read_events
from tests.recommend.shop import end_of, fill_shop

pytestmark = pytest.mark.backends


def track(user: str, at: int, name: str = "Order Completed", **properties: object) -> Event:
    body = {"type": "track", "userId": user, "event": name, "properties": properties,
            "messageId": f"planted-{user}-{name}-{at}", "timestamp": from_micros(at).isoformat()}
    event = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
    assert isinstance(event, Event)
    return event


def test_features_never_see_past_the_cutoff(engine: Engine) -> None:
    """A future order is planted for a customer who did not order after the cut-off: the label
    flips, the features as of the cut-off do not move by a bit."""
    workload = fill_shop(engine, customers=150, days=60)
    now = end_of(workload)
    cutoff = now - 20 * DAY_US
    events = read_events(engine.log, engine.state, now)
    before = features_as_of(events, cutoff)
    ordered, _ = labels(events, before.customers, cutoff, now)
    quiet = next(i for i, o in enumerate(ordered) if not o)
    pid = before.customers[quiet]
    user = engine.state.combined([pid])[pid].identifiers["user_id"][0]
    engine.log.append([track(user, cutoff + 5 * DAY_US, revenue=20.0)])
    engine.processor.run_until_caught_up()
    events = read_events(engine.log, engine.state, now)
    after = features_as_of(events, cutoff)
    assert after.customers == before.customers and np.array_equal(after.values, before.values, equal_nan=True)
    assert labels(events, after.customers, cutoff, now)[0][quiet]  # the label did change
    assert features_as_of(events, now).column("orders")[after.customers.index(pid)] == \
        before.column("orders")[quiet] + 1  # and the order counts once the cut-off passes it


def test_propensity_and_churn_train_beat_recency_and_score_every_customer(config: Config, tmp_path: Path) -> None:
    with Engine.open(replace(config, churn_days=30)) as engine:
        workload = fill_shop(engine, customers=1200, days=120)
        now = end_of(workload)
        propensity = lifecycle.train(engine, "propensity", now)
        m = propensity.metrics
        assert propensity.label == "propensity@1" and propensity.params["trait"] == "purchase_propensity_30d"
        assert m["roc_auc"] > 0.65 and m["roc_auc"] > m["recency_roc_auc"] - 0.02, m
        assert 0 < m["base_rate"] < 1 and m["pr_auc"] > m["base_rate"] and 0 < m["brier"] < 0.25
        assert [d["decile"] for d in m["lift"]] == list(range(1, 11)) and m["lift"][-1]["cumulative_gain"] == 1.0
        assert m["lift"][0]["lift"] > 1.5  # the top tenth orders far more often than the average customer
        calibration = m["calibration"]
        assert abs(np.mean([c["mean_score"] for c in calibration]) - np.mean([c["observed"] for c in calibration])) \
            < 0.05  # calibrated: scores mean what they say on average
        def day(days_ago: int) -> str:
            return from_micros(now - days_ago * DAY_US).strftime("%Y-%m-%dT%H:%M:%S.000Z")

        trained_on = propensity.trained_on
        assert trained_on["training_cutoffs"] == [day(60), day(90)]  # day 120 is the shop's first: nobody yet
        assert trained_on["validation_cutoff"] == day(30)
        assert trained_on["training_rows"] > trained_on["customers"]  # the same customers at two ages
        line = lifecycle.score(engine, propensity, now)
        assert "1,200 customers scored by propensity@1" in line
        scores = engine.model_traits.values("purchase_propensity_30d")
        assert len(scores) == 1200 and all(0 <= p <= 1 for p in scores.values())
        assert set(engine.model_traits.values("propensity_model").values()) == {"propensity@1"}
        ranks = engine.model_traits.values("purchase_propensity_30d_percentile")
        most, least = max(scores, key=scores.__getitem__), min(scores, key=scores.__getitem__)
        assert set(ranks) == set(scores) and ranks[most] == 100 and ranks[least] < 10
        [drift] = engine.models.drift(propensity.id)  # measured by the scoring, against the training customers
        assert set(drift["features"]) == set(propensity.params["columns"]) and drift["customers"] == 1200
        assert 0 <= drift["score_psi"] < 1 and isinstance(drift["flagged"], bool)

        churn = lifecycle.train(engine, "churn", now)
        assert churn.params["label"] == "no order in the next 30 days (customers with an order)"
        assert churn.metrics["roc_auc"] > 0.6, churn.metrics
        lifecycle.score(engine, churn, now)
        churners = engine.model_traits.values("churn_probability")
        buyers = {p.id for p in engine.state.all_profiles() if p.orders.count > 0}
        assert set(churners) == buyers  # churn is for customers who ordered

        store = engine.config.store or f"sqlite:///{engine.config.data_dir}"
        report = tmp_path / "report.html"
        shown = CliRunner().invoke(app, ["models", "evaluate", "propensity", "--report", str(report), "--store", store])
        assert shown.exit_code == 0, shown.output
        assert "roc_auc" in shown.output and "cumulative gain" in shown.output
        assert report.read_text().count("data:image/png;base64") == 2 and report.with_suffix(".json").exists()
        listed = CliRunner().invoke(app, ["models", "list", "--store", store])
        assert "propensity@1" in listed.output and "churn@2" in listed.output
        shown = CliRunner().invoke(app, ["models", "drift", "propensity", "--store", store])
        assert shown.exit_code == 0 and "score PSI" in shown.output and "recency_days" in shown.output
        day = from_micros(now).date().isoformat()
        trained = CliRunner().invoke(app, ["models", "train", "propensity", "--as-of", day, "--store", store])
        assert trained.exit_code == 0, trained.output
        assert "propensity@3" in trained.output and "1,200 customers scored by propensity@3" in trained.output
        assert engine.models.get(3).metrics == propensity.metrics  # the same data as of the same day
        bad = CliRunner().invoke(app, ["models", "score", "churn", "--as-of", "yesterday", "--store", store])
        assert bad.exit_code == 2 and "not a date" in bad.output


def test_what_cannot_be_learned_is_refused_with_the_reason(engine: Engine) -> None:
    workload = fill_shop(engine, customers=40, days=90)
    with pytest.raises(NotEnoughData, match=r"only \d+ customers as of the training cut-off"):
        lifecycle.train(engine, "propensity", end_of(workload))
    # Enough customers, but nobody ever orders: one class only.
    engine.log.append([track(f"b{i}", end_of(workload) - 70 * DAY_US, "Product Viewed", product_id="p1")
                       for i in range(250)])
    engine.processor.run_until_caught_up()
    events = read_events(engine.log, engine.state, end_of(workload))
    assert dataset(events, TARGETS["propensity"], end_of(workload) - 60 * DAY_US, 30).y.mean() < 0.2
    with pytest.raises(NotEnoughData, match="positive"):
        lifecycle.train(engine, "propensity", end_of(workload) + 365 * DAY_US)  # a year on: nobody orders after


def test_a_refresh_reads_the_log_once_for_every_classifier(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    from persona.predict import features

    reads: list[int] = []
    real = features.read_events

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lifecycle, "read_events", counted)
    with Engine.open(replace(config, churn_days=30)) as engine:
        workload = fill_shop(engine, customers=1200, days=120)
        line = lifecycle.refresh(engine, end_of(workload))
    assert "propensity: trained propensity@" in line and "churn: trained churn@" in line, line
    assert len(reads) == 1  # two trainings and two scorings on one read of the log
