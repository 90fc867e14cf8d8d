"""Build normalized events directly, for tests below the HTTP layer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event

BASE = datetime(2026, 9, 1, tzinfo=UTC)
_ids = itertools.count()


def message(kind: str, *, user: str | None = None, anon: str | None = None, minutes: float = 0,
            **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": kind, "messageId": f"m-{next(_ids)}",
                           "timestamp": (BASE + timedelta(minutes=minutes)).isoformat()}
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    msg.update(fields)
    return msg


def event(kind: str, **kwargs: Any) -> Event:
    outcome = normalize(message(kind, **kwargs), index=0, source_id="test",
                        defaults=BatchDefaults(received_at=BASE + timedelta(days=30)))
    assert isinstance(outcome, Event), outcome
    return outcome
