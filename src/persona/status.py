"""One picture of the running system, shared by `GET /v1/status` and `persona status`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from persona.engine import Engine


def status_of(engine: Engine) -> dict[str, Any]:
    last = engine.log.last_seq()
    position = engine.state.checkpoint("profiles")
    processor = engine.processor
    return {
        "log": {"last_seq": last, "events": engine.log.count()},
        "processor": {
            "mode": engine.config.processor,
            "position": position,
            "lag": max(0, last - position),
            "error": repr(processor.error) if processor.error else None,
            **(asdict(processor.stats) if engine.config.processor == "thread" else {}),
        },
        "state": asdict(engine.state.counts()),
    }
