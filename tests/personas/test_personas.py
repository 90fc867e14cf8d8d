"""Personas find planted groups of shoppers, describe them, write them as traits, and say how a refit
on a later window compares: on events that went through the real processor."""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from persona.cli import app
from persona.config import load_config
from persona.engine import Engine
from persona.errors import NotEnoughData
from persona.jobs.builtin import personas_job
from persona.log.events import to_micros
from persona.personas.features import extract_features
from persona.personas.fit import fit_personas, knee
from persona.personas.runs import PersonaOptions, PersonaRun, run_personas
from tests.support.events import BASE, event
from tests.support.personas import GROUPS, LAPSED_DAYS, planted_stream

DAY_US = 86_400_000_000


class Shop:
    def __init__(self, engine: Engine, truth: dict[str, str]) -> None:
        self.engine = engine
        self.groups = {p.id: truth[p.identifiers["user_id"][0]] for p in engine.state.all_profiles()}

    def run(self, **options: object) -> PersonaRun:
        e = self.engine
        return run_personas(e.log, e.state, e.model_traits, e.persona_runs, PersonaOptions(**options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    events, truth = planted_stream(seed=7, per_group=40, days=60)
    with Engine.open(load_config(env={}, data_dir=tmp_path_factory.mktemp("personas"))) as engine:
        engine.log.append(events)
        engine.processor.run_until_caught_up()
        yield Shop(engine, truth)


@pytest.fixture(scope="module")
def first(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> tuple[PersonaRun, dict[str, object]]:
    """The first run over all 60 days, and the persona traits as it left them."""
    run = shop.run(report=tmp_path_factory.mktemp("report") / "personas.html")
    return run, shop.engine.model_traits.values("persona")


def test_the_planted_groups_are_found(shop: Shop, first: tuple[PersonaRun, dict[str, object]]) -> None:
    run, _ = first
    assert run.fit.k == len(GROUPS)
    assert len(run.features.customers) == 40 * len(GROUPS) and run.features.left_out == 0
    planted = [shop.groups[c] for c in run.features.customers]
    assert adjusted_rand_score(planted, run.fit.labels) > 0.8
    # what sets each group apart is what its description leads with
    by_group = {}
    for persona in run.personas:
        members = [shop.groups[c] for c, label in zip(run.features.customers, run.fit.labels, strict=True)
                   if label == persona.id]
        by_group[Counter(members).most_common(1)[0][0]] = persona
    bargain = by_group["bargain"]
    assert "discount" in bargain.description and ("Bargain hunters" in bargain.name or "coupons" in bargain.name)
    big = by_group["big_spender"]
    assert "Electronics" in big.name and "average order value" in big.description
    assert "minutes per session" in by_group["window_shopper"].description
    assert "days since last seen" in by_group["lapsed"].description


def test_every_customer_clustered_gets_a_persona_trait(shop: Shop, first: tuple[PersonaRun, dict[str, object]]) -> None:
    run, traits = first
    names = [p.name for p in run.personas]
    assert traits == {c: names[label] for c, label in zip(run.features.customers, run.fit.labels, strict=True)}
    assert len(set(names)) == len(names)


def test_the_report_describes_every_persona_with_its_plots(first: tuple[PersonaRun, dict[str, object]]) -> None:
    run, _ = first
    assert run.report is not None
    page = run.report.read_text()
    for persona in run.personas:
        assert html.escape(persona.description) in page
    assert page.count('src="data:image/png;base64,') == 4  # sizes, heatmap, PCA, scores by k
    summary = json.loads(run.report.with_suffix(".json").read_text())
    assert [p["description"] for p in summary["personas"]] == [p.description for p in run.personas]
    assert summary["chosen"]["k"] == 4 and summary["customers"] == 160 and summary["stability"] is None


def test_the_same_data_and_seed_give_the_same_personas(first: tuple[PersonaRun, dict[str, object]]) -> None:
    run, _ = first
    again = fit_personas(run.features, seed=0)
    assert np.array_equal(again.labels, run.fit.labels)
    assert (again.chosen.method, again.k) == (run.fit.chosen.method, run.fit.k)


def test_a_refit_on_a_later_window_reports_agreement_and_drift(
        shop: Shop, first: tuple[PersonaRun, dict[str, object]]) -> None:
    previous, _ = first
    since = to_micros(BASE + timedelta(days=LAPSED_DAYS + 1))  # the lapsed shoppers are gone by then
    later = shop.run(since=since, k_max=6)
    assert later.stability is not None and later.stability.previous_run == previous.id
    assert later.features.since == since
    assert {shop.groups[c] for c in later.features.customers} == set(GROUPS) - {"lapsed"}
    assert later.stability.common_customers == len(later.features.customers) > 110
    assert later.stability.ari is not None and later.stability.ari > 0.8
    shares = {s["name"]: s for s in later.stability.shares}
    lapsed = next(p.name for p in previous.personas if "Books" in p.name)
    assert shares[lapsed]["then"] == pytest.approx(0.25) and shares[lapsed]["now"] < 0.05
    assert later.stability.psi > 0.25  # a quarter of the population left: a large shift
    # the lapsed lose their persona trait; the rest have this run's
    traits = shop.engine.model_traits.values("persona")
    assert set(traits) == set(later.features.customers)
    assert shop.engine.persona_runs.latest().id == later.id  # type: ignore[union-attr]


def test_dbscan_picks_eps_at_the_knee() -> None:
    flat_then_steep = np.array([1.0] * 90 + [1.0 + i for i in range(1, 11)])
    assert knee(flat_then_steep) == 1.0  # the last point before the rise
    assert knee(np.sort(np.concatenate([np.full(50, 0.5), [5.0, 9.0]]))) == 0.5


def test_sessions_shares_and_the_activity_floor(tmp_path: Path) -> None:
    with Engine.open(load_config(env={}, data_dir=tmp_path)) as engine:
        mobile = {"device": {"type": "mobile"}}
        engine.log.append([
            event("track", user="a", minutes=0, event="Product Viewed", context=mobile,
                  properties={"category": "Outdoor > Hiking"}),
            event("track", user="a", minutes=10, event="Product Added", context=mobile),
            event("track", user="a", minutes=20, event="Order Completed", context=mobile,
                  properties={"revenue": 50, "coupon": "FALL15"}),
            # 40 minutes later: a second session, on a desktop
            event("track", user="a", minutes=60, event="Product Viewed", context={"device": {"type": "desktop"}},
                  properties={"category": "Books > Crime"}),
            event("track", user="a", minutes=75, event="Order Completed", properties={"total": 30}),
            event("track", user="b", minutes=5, event="Product Viewed"),  # one event: left out
        ])
        engine.processor.run_until_caught_up()
        features = extract_features(engine.log, engine.state, now=to_micros(BASE + timedelta(days=3)))
    assert features.left_out == 1 and len(features.customers) == 1
    value = {c.name: float(features.values[0, i]) for i, c in enumerate(features.columns)}
    assert value["sessions"] == 2 and value["session_minutes"] == pytest.approx((20 + 15) / 2)
    assert value["orders"] == 2 and value["revenue"] == 80 and value["avg_order_value"] == 40
    assert value["discount_share"] == 0.5 and value["cart_to_order"] == 1.0
    assert value["views_per_session"] == 1.0
    assert value["recency_days"] == pytest.approx(3 - 75 / 1440)
    assert value["device=mobile"] == 0.75 and value["device=desktop"] == 0.25  # of the events with a device
    assert value["category=Outdoor"] == 0.5 and value["category=Books"] == 0.5


def test_too_few_customers_is_a_clear_error(tmp_path: Path) -> None:
    with Engine.open(load_config(env={}, data_dir=tmp_path)) as engine:
        engine.log.append([event("track", user="a", minutes=m, event="Product Viewed") for m in (0, 1)])
        engine.processor.run_until_caught_up()
        with pytest.raises(NotEnoughData, match="only 1 customers"):
            run_personas(engine.log, engine.state, engine.model_traits, engine.persona_runs)
        assert personas_job(engine).startswith("skipped: only 1 customers")  # the scheduled job


def test_fit_and_show_from_the_command_line(tmp_path: Path) -> None:
    events, _ = planted_stream(seed=3, per_group=15)
    data = tmp_path / "data"
    with Engine.open(load_config(env={}, data_dir=data)) as engine:
        engine.log.append(events)
        engine.processor.run_until_caught_up()
    runner = CliRunner()
    report = tmp_path / "out" / "personas.html"
    fitted = runner.invoke(app, ["personas", "fit", "--data-dir", str(data), "--k-max", "5", "--report", str(report),
                                 "--until", (BASE + timedelta(days=59)).date().isoformat()])
    assert fitted.exit_code == 0, fitted.output
    assert "60 customers in 4 personas" in fitted.output
    assert report.exists() and report.with_suffix(".json").exists()
    shown = runner.invoke(app, ["personas", "show", "--json", "--data-dir", str(data)])
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert summary["chosen"]["k"] == 4 and summary["report"] == str(report)
    assert summary["personas"] == json.loads(report.with_suffix(".json").read_text())["personas"]
    assert any("Apparel" in p["name"] for p in summary["personas"])
    kept = tmp_path / "kept" / "report.html"  # the report is kept with the run, wherever it ran
    assert runner.invoke(app, ["personas", "show", "--report", str(kept), "--data-dir", str(data)]).exit_code == 0
    assert kept.read_text() == report.read_text()
