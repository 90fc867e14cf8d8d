"""Definitions as code: a YAML file applied to the store, checked as a whole, on both backends."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.segments.definitions import DefinitionError
from persona.segments.store import read_definitions_file
from tests.conftest import SECRET_KEY, WRITE_KEY
from tests.segments.test_definitions import EXAMPLES
from tests.support.live import start_server

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def write(path: Path, content: object) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def test_applying_a_file_creates_then_updates_then_prunes(engine: Engine, tmp_path: Path) -> None:
    first = engine.definitions.apply(read_definitions_file(write(tmp_path / "a.yaml", EXAMPLES)))
    assert len(first.created) == len(EXAMPLES["segments"]) + len(EXAMPLES["computed_traits"])
    again = engine.definitions.apply(read_definitions_file(tmp_path / "a.yaml"))
    assert again.created == again.updated == [] and len(again.unchanged) == len(first.created)

    changed = {"segments": [{**EXAMPLES["segments"][1], "name": "Lapsed"}], "computed_traits": []}
    kept = engine.definitions.apply(read_definitions_file(write(tmp_path / "b.yaml", changed)))
    assert kept.updated == ["segment:lapsed"] and kept.deleted == []  # the others stay without --prune
    assert engine.definitions.get("segment", "lapsed").body["name"] == "Lapsed"

    with pytest.raises(DefinitionError, match="unknown segment 'lapsed'"):
        # pruning everything but loyal_lapsed would leave it pointing at nothing: refused whole
        engine.definitions.apply({"segment": [EXAMPLES["segments"][4]], "computed_trait": []}, prune=True)
    pruned = engine.definitions.apply(read_definitions_file(tmp_path / "b.yaml"), prune=True)
    assert "segment:big_spenders" in pruned.deleted and "computed_trait:orders_90d" in pruned.deleted
    assert [d.id for d in engine.definitions.list("segment")] == ["lapsed"]


def test_a_bad_file_changes_nothing_and_says_where(engine: Engine, tmp_path: Path) -> None:
    broken = {"segments": [EXAMPLES["segments"][0], {"id": "x", "where": {"trait": "a", "bigger": 1}}]}
    with pytest.raises(DefinitionError) as caught:
        engine.definitions.apply(read_definitions_file(write(tmp_path / "bad.yaml", broken)))
    assert caught.value.field == "segments[1].where.bigger"
    assert engine.definitions.list("segment") == []
    twice = {"segments": [EXAMPLES["segments"][1], EXAMPLES["segments"][1]]}
    with pytest.raises(DefinitionError, match="defined twice") as caught:
        engine.definitions.apply(read_definitions_file(write(tmp_path / "twice.yaml", twice)))
    assert caught.value.field == "segments[1].id"
    with pytest.raises(DefinitionError, match="unknown section 'segment'"):
        read_definitions_file(write(tmp_path / "typo.yaml", {"segment": []}))


def test_the_cli_applies_and_lists(config: Config, tmp_path: Path) -> None:
    store = config.store_url
    path = write(tmp_path / "a.yaml", EXAMPLES)
    unseen = CliRunner().invoke(app, ["segments", "apply", str(path), "--store", store])
    assert unseen.exit_code != 0 and "no event named" in str(unseen.exception)  # nothing has been sent yet
    applied = CliRunner().invoke(app, ["segments", "apply", str(path), "--allow-unseen-events", "--store", store])
    assert applied.exit_code == 0, applied.output
    assert "created segment:big_spenders" in applied.output and "9 created" in applied.output
    listed = CliRunner().invoke(app, ["segments", "list", "--store", store])
    assert "big_spenders" in listed.output and "orders_90d" in listed.output
    bad = write(tmp_path / "bad.yaml", {"segments": [{"id": "x", "where": {"segment": "nope"}}]})
    refused = CliRunner().invoke(app, ["segments", "apply", str(bad), "--store", store])
    assert refused.exit_code != 0 and "unknown segment 'nope'" in str(refused.exception or refused.output)


def test_serve_reloads_the_file_on_sighup(config: Config, tmp_path: Path) -> None:
    first = {"segments": EXAMPLES["segments"][:2], "computed_traits": EXAMPLES["computed_traits"]}
    path = write(tmp_path / "a.yaml", first)
    server = start_server(tmp_path / "serve", WRITE_KEY, SECRET_KEY,
                          extra_env={"PERSONA_STORE": config.store_url, "PERSONA_DEFINITIONS": str(path)})
    try:
        with server.reader() as reader:
            def segment_ids() -> list[str]:
                return [d["id"] for d in reader.get("/v1/segments").json()["data"]]

            assert segment_ids() == sorted(s["id"] for s in first["segments"])
            write(path, EXAMPLES)
            server.process.send_signal(signal.SIGHUP)
            eventually(lambda: segment_ids() == sorted(s["id"] for s in EXAMPLES["segments"]))
            write(path, {"segments": [{"id": "broken", "where": {"segment": "nope"}}]})  # does not apply
            server.process.send_signal(signal.SIGHUP)
            eventually(lambda: "not applied" in server.log_path.read_text())
            assert segment_ids() == sorted(s["id"] for s in EXAMPLES["segments"])  # what ran stays
            assert server.process.poll() is None
    finally:
        server.stop()


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.05)


def test_serve_applies_the_configured_file_on_start(config: Config, tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", EXAMPLES)
    server = start_server(tmp_path / "serve", WRITE_KEY, SECRET_KEY,
                          extra_env={"PERSONA_STORE": config.store_url, "PERSONA_DEFINITIONS": str(path)})
    try:
        with server.reader() as reader:
            ids = [d["id"] for d in reader.get("/v1/segments").json()["data"]]
        assert ids == sorted(s["id"] for s in EXAMPLES["segments"])
    finally:
        server.stop()
