"""`persona profiles export`: every profile, with its segments, computed and model traits, as Parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.jobs.rfm import refresh_rfm
from tests.segments.test_verify import DEFINITIONS
from tests.support.audiences import shop_stream

pytestmark = pytest.mark.backends


def test_every_profile_with_its_audiences_and_scores(engine: Engine, config: Config, tmp_path: Path) -> None:
    engine.definitions.apply(DEFINITIONS)
    engine.log.append(shop_stream(random.Random(9), 800))
    engine.processor.run_until_caught_up()
    refresh_rfm(engine.state, engine.model_traits)
    out = tmp_path / "out" / "profiles.parquet"

    exported = CliRunner().invoke(app, ["profiles", "export", "--out", str(out), "--store", config.store_url])
    assert exported.exit_code == 0, exported.output
    rows = {r["profile_id"]: r for r in pq.read_table(out).to_pylist()}
    profiles = {p.id: p for p in engine.state.all_profiles()}
    assert rows.keys() == profiles.keys()
    states = engine.audiences.states(list(profiles))
    for pid, row in rows.items():
        profile = profiles[pid]
        assert json.loads(row["traits"]) == profile.traits
        assert json.loads(row["identifiers"]) == profile.identifiers
        assert (row["event_count"], row["orders"]) == (profile.event_count, profile.orders.count)
        assert row["segments"] == sorted(engine.audiences.memberships(pid))
        assert json.loads(row["computed_traits"]) == states[pid].computed
        assert json.loads(row["model_traits"]) == engine.model_traits.of_profile(pid)
    assert any("buyers" in r["segments"] for r in rows.values())
    assert any("rfm_segment" in json.loads(r["model_traits"]) for r in rows.values())
