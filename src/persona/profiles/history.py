"""The log read back by profile: every folded event with the profile it belongs to now.

Batch jobs (the batch audience evaluator, RFM, personas) read the whole history this way:
the log in sequence order up to what the folds have reached, each event paired with the
root of the profile it was folded into, so events of profiles merged since count for the
survivor. Events attributed to no one (a group call without a user) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from persona.log.events import Event
from persona.log.store import EventLog
from persona.profiles.sql import SQLStateStore


def folded_events(log: EventLog, state: SQLStateStore, *, batch: int = 10_000,
                  decode: Callable[[bytes], dict[str, Any]] | None = None) -> Iterator[list[tuple[str, Event]]]:
    """Batches of (root profile id, event) in log order, through `state.folded_through()` as of the start."""
    through = state.folded_through()
    after = 0
    while after < through:
        events = log.read(after, batch, decode)
        if not events:
            return
        kept = [e for e in events if e.seq <= through]
        reached = through if len(events) < batch or events[-1].seq >= through else events[-1].seq
        assigned = state.assigned(after, reached)
        roots = state.roots(set(assigned.values()))
        pairs = [(roots.get(pid, pid), e) for e in kept if (pid := assigned.get(e.seq)) is not None]
        if pairs:
            yield pairs
        after = reached


def raw_body(body: bytes) -> dict[str, Any]:
    """A `decode` for `EventLog.read`/`folded_events` that leaves the body undecoded, under "raw", for a
    reader that decodes only the bodies (or the parts) it needs."""
    return {"raw": body}

