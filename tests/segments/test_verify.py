"""`persona segments verify`: the batch evaluation of the log against the live state, from the CLI."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.storage.sql import Connection
from tests.support.audiences import shop_stream

pytestmark = pytest.mark.backends

DEFINITIONS = {
    "segment": [{"id": "buyers", "where": {"event": "Order Completed", "sum": "revenue", "gt": 100}},
                {"id": "pros", "where": {"trait": "plan", "eq": "pro"}}],
    "computed_trait": [{"id": "views", "event": "Product Viewed", "count": True}],
}


def test_verify_agrees_then_finds_what_the_live_state_lost(engine: Engine, config: Config) -> None:
    engine.definitions.apply(DEFINITIONS)
    engine.log.append(shop_stream(random.Random(5), 600))
    engine.processor.run_until_caught_up()
    verify = ["segments", "verify", "--store", config.store_url]

    agreed = CliRunner().invoke(app, verify)
    assert agreed.exit_code == 0, agreed.output
    assert "agrees with the batch evaluation" in agreed.output
    buyers = sorted(pid for pid, _ in engine.audiences.members("buyers", "", 1000))
    assert buyers, "the stream has big buyers"

    lost = buyers[0]
    engine.audiences.db.write(lambda conn: _forget(conn, lost))
    disagreed = CliRunner().invoke(app, verify)
    assert disagreed.exit_code == 1
    assert f"buyers: {lost} is a member in batch, not live" in disagreed.output
    assert "1 memberships and 0 computed traits disagree" in disagreed.output


def _forget(conn: Connection, profile_id: str) -> None:
    conn.execute("DELETE FROM memberships WHERE segment_id = 'buyers' AND profile_id = ?", (profile_id,))
