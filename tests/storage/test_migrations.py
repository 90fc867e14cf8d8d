"""Schema migrations on both backends: applied on first open, once, and reported by `persona migrate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.config import Config, load_config
from persona.engine import Engine, open_databases

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def test_migrate_applies_each_version_once(config: Config, tmp_path: Path) -> None:
    store = config.store or f"sqlite:///{config.data_dir}"
    first = CliRunner().invoke(app, ["migrate", "--store", store])
    assert first.exit_code == 0, first.output
    assert "log: applied 1, 2, 100, 200, 500, 800, 900, 950" in first.output
    assert "state: applied 1, 2, 3, 4, 100, 300, 310, 400, 600, 700, 810, 910" in first.output
    again = CliRunner().invoke(app, ["migrate", "--store", store])
    assert again.output.count("none pending") == 2, again.output
    with Engine.open(config) as engine:  # and the stores work on the migrated schema
        assert engine.log.count() == 0


def test_every_store_records_its_versions(config: Config) -> None:
    log_db, state_db = open_databases(config)
    try:
        if config.store is None:  # one SQLite file per store
            versions = log_db.query("SELECT version FROM schema_migrations ORDER BY version")
            assert versions == [(1,), (2,), (100,), (200,), (500,), (800,), (900,), (950,)]
        else:  # one PostgreSQL schema, a component per store
            rows = log_db.query("SELECT component, version FROM schema_migrations ORDER BY component, version")
            assert rows == [("log", 1), ("log", 2), ("log", 100), ("log", 200), ("log", 500), ("log", 800),
                            ("log", 900), ("log", 950), ("state", 1), ("state", 2), ("state", 3), ("state", 4),
                            ("state", 100), ("state", 300), ("state", 310), ("state", 400), ("state", 600),
                            ("state", 700), ("state", 810), ("state", 910), ("state", 1000)]
    finally:
        log_db.close()
        state_db.close()


def test_a_sqlite_url_names_the_data_directory(tmp_path: Path) -> None:
    config = load_config(env={"PERSONA_STORE": f"sqlite:///{tmp_path}/x"})
    assert config.store is None and config.data_dir == tmp_path / "x"
