"""Reading a YAML file that configures something, with its mistakes as that thing's errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from persona.errors import PersonaError


def read_yaml(path: Path, error: type[PersonaError], field: str) -> Any:
    """The file's YAML; an unreadable file or bad YAML raises `error` naming `field`."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}", field=field) from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}", field=field) from None
