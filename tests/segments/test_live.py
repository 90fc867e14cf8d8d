"""Live audiences: what the audience stage keeps equals the reference evaluator over the log.

Random shop traffic (merges, late and future events) and random definitions of every kind;
the stage runs behind the real processor on both backends, with a clock the test moves.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from persona.engine import Engine
from persona.log.events import to_micros
from persona.profiles.processor import Processor
from persona.segments.stage import AudienceStage
from persona.synth.definitions import random_definitions
from tests.support.audiences import announcements, check_announcements, check_batch, reference, shop_stream
from tests.support.events import BASE

pytestmark = pytest.mark.backends

SEEDS = [int(s) for s in os.environ.get("PERSONA_TEST_AUDIENCE_SEEDS", "1,2,3,4,5,6,7,8").split(",")]
NOW = to_micros(BASE + timedelta(days=100))  # some of the traffic is still in the future


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def processor(engine: Engine, clock: Clock) -> Processor:
    """The real processor, with an audience stage on the test's clock that checks time on every batch."""
    def stage() -> list[Any]:
        return [AudienceStage(engine.log, engine.state, engine.audiences, engine.definitions, engine.config.identity,
                              model_traits=engine.model_traits, batch_size=300, check_every=0, clock=clock)]

    return Processor(engine.log, engine.state, engine.config.identity, batch_size=300, partitions=4,
                     followers=stage)


def stored(engine: Engine) -> tuple[dict[str, set[str]], dict[str, dict[str, Any]]]:
    roots = [p.id for p in engine.state.all_profiles()]
    states = engine.audiences.states(roots)
    members = {pid: set(engine.audiences.memberships(pid)) for pid in roots}
    return members, {pid: states[pid].computed if pid in states else {} for pid in roots}


def check_sizes(engine: Engine) -> None:
    """Every membership row belongs to a profile that exists (not one merged away), and each
    segment's kept size is its number of rows."""
    rows = engine.state_db.query("SELECT segment_id, profile_id FROM memberships")
    roots = {p.id for p in engine.state.all_profiles()}
    assert {pid for _, pid in rows} <= roots
    counts = _counts({pid: {s for s, p in rows if p == pid} for pid in {p for _, p in rows}})
    assert {s: n for s, n in engine.audiences.sizes().items() if n} == counts


def run(engine: Engine, proc: Processor) -> None:
    proc.run_until_caught_up()
    for stage in proc.followers:  # let the 1 s look at the definitions come round
        stage._plan_read_at = float("-inf")  # type: ignore[attr-defined]
    proc.run_until_caught_up()


@pytest.mark.parametrize("seed", SEEDS)
def test_live_memberships_equal_the_reference(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    engine.definitions.apply(random_definitions(rng))
    clock = Clock(NOW)
    proc = processor(engine, clock)
    stream = shop_stream(rng, 1500)
    for start in range(0, len(stream), 400):  # arriving in several bursts, each processed
        engine.log.append(stream[start:start + 400])
        run(engine, proc)
    assert stored(engine) == reference(engine, clock.now)
    check_announcements(engine, stored(engine)[0])
    check_batch(engine, clock.now)
    check_sizes(engine)

    for days in (1, 6, 25, 60):  # time alone moves profiles in and out of windows
        clock.now += days * 86_400 * 1_000_000
        run(engine, proc)
        assert stored(engine) == reference(engine, clock.now), f"after {days} more days"
        check_announcements(engine, stored(engine)[0])
        check_batch(engine, clock.now)
        check_sizes(engine)


def test_definitions_added_later_backfill_from_the_log(engine: Engine) -> None:
    rng = random.Random(7)
    clock = Clock(NOW)
    proc = processor(engine, clock)
    engine.log.append(shop_stream(rng, 1200))
    run(engine, proc)
    assert not announcements(engine)  # nothing defined yet
    engine.definitions.apply(random_definitions(rng))
    run(engine, proc)
    assert stored(engine) == reference(engine, clock.now)
    check_announcements(engine, stored(engine)[0])
    check_batch(engine, clock.now)

    # replaced by other definitions: the new ones read other inputs, the old segments' members go
    engine.definitions.apply(random_definitions(random.Random(8), segments=5, computed=2), prune=True)
    engine.log.append(shop_stream(rng, 300))
    run(engine, proc)
    assert stored(engine) == reference(engine, clock.now)
    check_sizes(engine)
    sizes = engine.audiences.sizes()
    assert set(sizes) <= {f"s{i}" for i in range(5)}
    assert sizes == {s: n for s, n in _counts(stored(engine)[0]).items() if n} | {
        s: 0 for s in sizes if not _counts(stored(engine)[0]).get(s)}


def test_a_replay_announces_nothing_again(engine: Engine) -> None:
    rng = random.Random(11)
    engine.definitions.apply(random_definitions(rng))
    clock = Clock(NOW)
    engine.log.append(shop_stream(rng, 1000))
    run(engine, processor(engine, clock))
    before = stored(engine)
    announced = announcements(engine)
    assert announced

    engine.state.reset()
    engine.audiences.reset()
    run(engine, processor(engine, clock))
    assert stored(engine) == before
    assert announcements(engine) == announced  # the log already says all of it


def _counts(members: dict[str, set[str]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for segments in members.values():
        for segment in segments:
            counts[segment] += 1
    return dict(counts)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_stage_killed_between_announcing_and_committing_is_corrected_by_the_next(
        engine: Engine, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The announcements reached the log, the state that counts them did not; the next stage runs
    later, when some of those memberships no longer hold. Reading them back it learns what was
    announced, and re-evaluates the profile rather than keep a membership nobody would give it now."""
    rng = random.Random(seed)
    engine.definitions.apply(random_definitions(rng))
    engine.log.append(shop_stream(rng, 1000))
    commit = engine.audiences.commit

    def killed(changes: Any) -> Any:
        if changes.joined:
            raise RuntimeError("killed before the commit")
        return commit(changes)

    monkeypatch.setattr(engine.audiences, "commit", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run(engine, processor(engine, Clock(NOW)))
    assert announcements(engine)
    monkeypatch.setattr(engine.audiences, "commit", commit)

    clock = Clock(NOW + 45 * 86_400 * 1_000_000)
    run(engine, processor(engine, clock))
    assert stored(engine) == reference(engine, clock.now)
    check_announcements(engine, stored(engine)[0])
    check_sizes(engine)
