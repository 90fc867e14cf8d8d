"""The log read back by profile, on both backends: `folded_rows` pairs the same events with the same
roots as `folded_events`, and both give each event the root of the profile it was folded into."""

from __future__ import annotations

import random

import msgspec
import pytest

from persona.engine import Engine
from persona.profiles.history import folded_events, folded_rows
from tests.support.audiences import shop_stream

pytestmark = pytest.mark.backends


def test_rows_and_events_pair_every_folded_event_with_its_root_now(engine: Engine) -> None:
    engine.log.append(shop_stream(random.Random(5), 600))  # merges included: alias and shared devices
    engine.processor.run_until_caught_up()
    through = engine.state.folded_through()
    assigned = engine.state.assigned(0, through)
    roots = engine.state.roots(set(assigned.values()))
    expected = [(roots.get(pid, pid), seq) for seq, pid in sorted(assigned.items())]
    assert len({root for root, _ in expected}) < len(set(assigned.values()))  # some profiles were merged
    events = [(pid, e) for batch in folded_events(engine.log, engine.state, batch=97) for pid, e in batch]
    rows = [(pid, row) for batch in folded_rows(engine.log, engine.state, batch=97) for pid, row in batch]
    assert [(pid, e.seq) for pid, e in events] == expected
    assert [(pid, row[0]) for pid, row in rows] == expected
    for (_, e), (_, (seq, source, kind, name, timestamp, body)) in zip(events, rows, strict=True):
        assert (e.seq, e.source_id, e.type, e.name, e.timestamp, e.body) == (
            seq, source, kind, name, timestamp, msgspec.json.decode(body))


def test_a_scan_stops_at_its_bound(engine: Engine) -> None:
    engine.log.append(shop_stream(random.Random(6), 10))
    assert [row[0] for row in engine.log.scan(2, 7, 100)] == [3, 4, 5, 6, 7]
    assert [row[0] for row in engine.log.scan(2, 7, 2)] == [3, 4]
