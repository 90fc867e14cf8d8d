"""The operational commands, run as a user would: status, rebuild, settings, --help."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from typer.testing import CliRunner

from persona.cli import app
from persona.config import SETTINGS, load_config
from persona.engine import Engine
from persona.errors import ConfigError
from tests.support.events import event


def test_status_and_rebuild_report_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine.open(load_config(env={}, data_dir=data)) as engine:
        engine.log.append([event("identify", user="u1", anon="a1", traits={"plan": "pro"}),
                           event("track", anon="a1", event="Product Viewed"),
                           event("identify", user="u2")])
    runner = CliRunner()
    before = json.loads(runner.invoke(app, ["status", "--json", "--data-dir", str(data)]).output)
    assert before["log"]["events"] == 3
    assert before["processor"]["lag"] == 3  # nothing has processed this store yet
    rebuilt = runner.invoke(app, ["rebuild", "--data-dir", str(data)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "replayed 3 events: 2 profiles" in rebuilt.output
    after = json.loads(runner.invoke(app, ["status", "--json", "--data-dir", str(data)]).output)
    assert after["processor"]["lag"] == 0
    assert after["state"]["profiles"] == 2
    readable = runner.invoke(app, ["status", "--data-dir", str(data)]).output
    assert "log: 3 events" in readable and "fold:7" in readable and "profiles: 2 (0 merged away)" in readable


def test_settings_lists_every_setting_with_its_environment_variable() -> None:
    output = CliRunner().invoke(app, ["settings"]).output
    for setting in SETTINGS:
        assert setting.name in output and f"PERSONA_{setting.name.upper()}" in output


def test_help_names_every_command_and_the_environment() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"]).output
    for command in ("serve", "demo", "import", "export", "keys", "status", "rebuild", "settings"):
        assert command in top
    assert "PERSONA_DATA_DIR" in runner.invoke(app, ["serve", "--help"]).output


def test_a_busy_port_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")])
    assert isinstance(result.exception, ConfigError)
    assert f"cannot listen on 127.0.0.1:{port}" in result.exception.message
    assert result.exception.field == "port"
    assert not (tmp_path / "data").exists()  # no store was opened
