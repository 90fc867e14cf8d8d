"""RFM from the store as model traits, on both backends: equal to `rfm()` over the orders read
back from the log independently, replaced wholesale by every refresh, shown on the profile."""

from __future__ import annotations

import random
from datetime import date

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.jobs.rfm import RFM_JOB, refresh_rfm, traits_of
from persona.log.events import from_micros
from persona.profiles.history import folded_events
from persona.profiles.profile import ORDER_COMPLETED, order_amount
from persona.segments.rfm import Order, rfm
from tests.support.audiences import shop_stream
from tests.support.events import event

pytestmark = pytest.mark.backends

TODAY = date(2027, 2, 1)  # after all of shop_stream's traffic


def orders_in_log(engine: Engine) -> list[Order]:
    """Every completed order, for the profile its event belongs to now: the log, not the profiles' counters."""
    return [Order(pid, from_micros(e.timestamp).date(), order_amount(e.body.get("properties") or {}))
            for batch in folded_events(engine.log, engine.state) for pid, e in batch
            if e.type == "track" and e.name == ORDER_COMPLETED]


def test_traits_equal_rfm_over_the_orders_in_the_log(engine: Engine) -> None:
    engine.log.append(shop_stream(random.Random(11), 1500))  # merges included: alias and shared devices
    engine.processor.run_until_caught_up()
    run = refresh_rfm(engine.state, engine.model_traits, TODAY)
    expected = {s.customer: traits_of(s) for s in rfm(orders_in_log(engine), TODAY)}
    assert len(expected) > 50 and run.as_of == TODAY and len(run.scores) == len(expected)
    profiles = engine.state.all_profiles()
    for profile in profiles:
        traits = engine.model_traits.of_profile(profile.id)
        assert traits == expected.get(profile.id, {}), profile.id
    assert sum(run.segments.values()) == len(expected)
    assert engine.model_traits.count(RFM_JOB) == len(expected)
    assert set(engine.model_traits.values("rfm_segment").values()) <= set(run.segments)


def test_a_refresh_replaces_every_trait_of_the_one_before(engine: Engine) -> None:
    engine.log.append([event("track", user="u1", event=ORDER_COMPLETED, properties={"revenue": 10}),
                       event("track", user="u2", event=ORDER_COMPLETED, properties={"total": 99.5}, minutes=60)])
    engine.processor.run_until_caught_up()
    refresh_rfm(engine.state, engine.model_traits, TODAY)
    first = engine.model_traits.values("rfm_monetary")
    assert sorted(first.values()) == [10.0, 99.5]
    # the two merge (u1 is u2's previous id): one customer with both orders
    engine.log.append([event("alias", user="u2", previousId="u1", minutes=120)])
    engine.processor.run_until_caught_up()
    run = refresh_rfm(engine.state, engine.model_traits, TODAY)
    assert [(s.frequency, s.monetary) for s in run.scores] == [(2, 109.5)]
    survivor = run.scores[0].customer
    assert engine.model_traits.values("rfm_monetary") == {survivor: 109.5}  # the merged-away id has none left
    alone = engine.model_traits.of_profile(survivor)  # nobody scores worse than a population of one
    assert (alone["rfm_frequency"], alone["rfm_code"], alone["rfm_segment"]) == (2, "111", "Lost")


def test_as_of_is_the_newest_order_when_it_is_later_than_today(engine: Engine) -> None:
    engine.log.append([event("track", user="u1", event=ORDER_COMPLETED, properties={"revenue": 10}, minutes=3000)])
    engine.processor.run_until_caught_up()
    run = refresh_rfm(engine.state, engine.model_traits, date(2020, 1, 1))
    assert run.as_of == date(2026, 9, 3) and run.scores[0].recency_days == 0


def test_rfm_refresh_command(engine: Engine, config: Config) -> None:
    engine.log.append([event("track", user="u1", event=ORDER_COMPLETED, properties={"revenue": 10})])
    engine.processor.run_until_caught_up()
    store = config.store or f"sqlite:///{config.data_dir}"
    result = CliRunner().invoke(app, ["rfm", "refresh", "--store", store, "--as-of", "2026-12-01"])
    assert result.exit_code == 0, result.output
    assert "RFM as of 2026-12-01" in result.output and "1 customers scored" in result.output
    assert engine.model_traits.values("rfm_recency_days") == {engine.state.all_profiles()[0].id: 91}
