"""Properties of profiles: merging is order-independent, batching does not change results."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persona.config import load_config
from persona.engine import Engine
from persona.log.events import Event
from persona.profiles.profile import Profile, apply_event, merge_profiles
from tests.support.events import event
from tests.support.state import snapshot
from tests.support.streams import random_stream

trait_names = st.sampled_from(["plan", "city", "age"])
event_specs = st.lists(
    st.tuples(st.sampled_from(["identify", "track"]), st.integers(0, 500), trait_names, st.integers(0, 9)),
    min_size=1, max_size=12)


def build(pid: str, specs: list[tuple[str, int, str, int]], seq_base: int) -> Profile:
    events = []
    for i, (kind, minute, trait, value) in enumerate(specs):
        e = event(kind, user=pid, minutes=minute, traits={trait: value},
                  context={"traits": {"last": value}}, event="Order Completed",
                  properties={"revenue": value})
        events.append(Event(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "seq": seq_base + i}))
    profile = Profile.new(pid, events[0])
    for e in events:
        apply_event(profile, e)
    return profile


@given(event_specs, event_specs, event_specs)
@settings(max_examples=150, deadline=None)
def test_merge_is_commutative_and_associative(a: list, b: list, c: list) -> None:
    def fresh() -> tuple[Profile, Profile, Profile]:
        return build("pa", a, 0), build("pb", b, 100), build("pc", c, 200)

    x, y, z = fresh()
    left, _ = merge_profiles(merge_profiles(x, y)[0], z)
    x, y, z = fresh()
    right, _ = merge_profiles(x, merge_profiles(z, y)[0])
    assert left == right


@given(st.integers(0, 10_000), st.sampled_from([1, 3, 17, 1000]))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_batching_and_replay_do_not_change_the_result(tmp_path: Path, seed: int, batch_size: int) -> None:
    events = random_stream(random.Random(seed), 150)
    results = []
    # separate stages through the assignments queue, and fused, in batches of every size
    for run, (size, interval, fuse) in enumerate([(batch_size, 0.0, True), (1, 10.0, True), (batch_size, 0.0, False)]):
        config = load_config(env={}, data_dir=tmp_path / f"{seed}-{batch_size}-{run}")
        with Engine.open(config) as engine:
            engine.processor.fuse = fuse
            engine.processor.batch_size = size
            engine.processor.commit_interval = interval
            engine.log.append(events)
            engine.processor.run_until_caught_up()
            results.append(snapshot(engine))
            engine.rebuild()
            assert snapshot(engine) == results[-1]
    assert results[0] == results[1] == results[2]
