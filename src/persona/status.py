"""One picture of the running system, shared by `GET /v1/status` and `persona status`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from persona.engine import Engine
from persona.log.events import iso, to_micros
from persona.profiles.processor import CHECKPOINT


def status_of(engine: Engine) -> dict[str, Any]:
    last = engine.log.last_seq()
    position = engine.state.checkpoint(CHECKPOINT)
    processor = engine.processor
    return {
        "log": {"last_seq": last, "events": engine.log.count(), "quarantined": engine.log.quarantine_count()},
        "processor": {
            "mode": engine.config.processor,
            "position": position,
            "lag": max(0, last - position),
            **_error(engine),
            **(asdict(processor.stats) if engine.config.processor == "thread" else {}),
        },
        "state": asdict(engine.state.counts()),
    }


def _error(engine: Engine) -> dict[str, Any]:
    """The processor's last failure, wherever it runs (it records it in the state store)."""
    recorded = engine.state.last_error(CHECKPOINT)
    if recorded is None:
        return {"error": None}
    return {"error": recorded[0], "error_at": iso(to_micros(datetime.fromtimestamp(recorded[1], UTC)))}
