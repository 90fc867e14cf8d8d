"""Documentation stays true: every CLI command, endpoint and setting is written down."""

from __future__ import annotations

from pathlib import Path

import typer.main
from fastapi.routing import APIRoute

from persona.api import create_app
from persona.cli import app as cli_app
from persona.engine import Engine

ROOT = Path(__file__).resolve().parents[2]


def command_names(group: typer.main.TyperGroup, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, typer.main.TyperGroup):
            names += command_names(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.main.TyperGroup)
    missing = [name for name in command_names(group) if name.split()[-1] not in readme]
    assert not missing, f"README does not mention: {missing}"


def test_every_endpoint_is_in_the_readme(engine: Engine) -> None:
    readme = (ROOT / "README.md").read_text()
    routes = [r for r in create_app(engine).routes if isinstance(r, APIRoute) and r.include_in_schema]
    # A path is documented verbatim, or as "`/track`" in the README's list of Segment endpoints.
    missing = [r.path for r in routes if r.path not in readme and f"`/{r.path.rsplit('/', 1)[-1]}`" not in readme]
    assert not missing, f"README does not mention: {missing}"


def test_architecture_names_every_package() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    packages = [p.name for p in (ROOT / "src" / "persona").iterdir() if p.is_dir() and not p.name.startswith("_")]
    missing = [name for name in packages if f"`{name}/`" not in doc]
    assert not missing, f"docs/architecture.md does not name: {missing}"
