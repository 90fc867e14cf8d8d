"""Segments on model traits (scores written by scheduled jobs) follow every scoring: the job
queues what it changed, the audience stage re-evaluates those profiles, on both backends."""

from __future__ import annotations

import random

import pytest

from persona.engine import Engine
from persona.segments.stage import SEGMENT_EXITED
from tests.segments.test_live import NOW, Clock, check_sizes, processor, run, stored
from tests.support.audiences import announcements, check_announcements, check_batch, reference, shop_stream
from tests.support.events import event

pytestmark = pytest.mark.backends

DEFINITIONS: dict = {"segment": [
    {"id": "at_risk", "where": {"trait": "churn_probability", "gte": 0.7}},
    {"id": "at_risk_buyers", "where": {"all": [
        {"segment": "at_risk"}, {"event": "Order Completed", "count": True, "gte": 1}]}},
    {"id": "pro_and_valuable", "where": {"all": [
        {"trait": "plan", "eq": "pro"}, {"trait": "predicted_clv_12m", "gt": 100}]}},
]}


def scores(rng: random.Random, ids: list[str]) -> dict[str, dict[str, float]]:
    return {pid: {"churn_probability": round(rng.random(), 3)} for pid in ids}


def test_segments_on_scores_follow_each_scoring(engine: Engine) -> None:
    rng = random.Random(3)
    engine.definitions.apply(DEFINITIONS)
    clock = Clock(NOW)
    proc = processor(engine, clock)
    engine.log.append(shop_stream(rng, 800))
    run(engine, proc)
    assert not engine.audiences.sizes().get("at_risk")  # no scores yet

    def check() -> None:
        assert stored(engine) == reference(engine, clock.now)
        check_announcements(engine, stored(engine)[0])
        check_batch(engine, clock.now)
        check_sizes(engine)
        assert engine.model_traits.changes(10) == []  # every queued change evaluated

    ids = sorted(p.id for p in engine.state.all_profiles())
    engine.model_traits.replace("churn", scores(rng, ids))
    engine.model_traits.replace("clv", {pid: {"predicted_clv_12m": rng.choice([50, 150])} for pid in ids})
    run(engine, proc)
    check()
    first = stored(engine)[0]
    at_risk = {pid for pid, segments in first.items() if "at_risk" in segments}
    assert at_risk == {pid for pid, v in engine.model_traits.values("churn_probability").items() if v >= 0.7}
    assert at_risk and any("pro_and_valuable" in s for s in first.values())

    # The next scoring moves some customers out and others in; a customer it no longer scores loses the trait.
    engine.model_traits.replace("churn", scores(rng, ids[: len(ids) // 2]))
    run(engine, proc)
    check()
    again = stored(engine)[0]
    left = {pid for pid in at_risk if "at_risk" not in again[pid]}
    assert left and {pid for pid in left if pid in ids[len(ids) // 2:]} == at_risk & set(ids[len(ids) // 2:])
    exits = {(s, pid) for s, pid, _, name in announcements(engine) if name == SEGMENT_EXITED}
    assert {("at_risk", pid) for pid in left} <= exits

    # Traits set by events take precedence over scores of the same name.
    engine.log.append([event("identify", user="u1", minutes=10, traits={"churn_probability": 0.1})])
    engine.model_traits.replace("churn", {pid: {"churn_probability": 0.9} for pid in ids})
    run(engine, proc)
    check()
    own = engine.profiles.find("user_id:u1").id
    assert [pid for pid, segments in stored(engine)[0].items() if "at_risk" not in segments] == [own]


def test_changes_to_traits_no_segment_reads_are_dropped_without_evaluating(engine: Engine) -> None:
    rng = random.Random(5)
    engine.definitions.apply(DEFINITIONS)
    proc = processor(engine, Clock(NOW))
    engine.log.append(shop_stream(rng, 300))
    run(engine, proc)
    before = announcements(engine)
    ids = [p.id for p in engine.state.all_profiles()]
    engine.model_traits.replace("rfm", {pid: {"rfm_segment": "champions"} for pid in ids})
    assert len(engine.model_traits.changes(100_000)) == len(ids)
    run(engine, proc)
    assert engine.model_traits.changes(10) == [] and announcements(engine) == before
    engine.model_traits.replace("rfm", {pid: {"rfm_segment": "champions"} for pid in ids})  # the same again
    assert engine.model_traits.changes(10) == []
