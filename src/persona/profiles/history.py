"""The log read back by profile: every folded event with the profile it belongs to now.

Batch jobs (the batch audience evaluator, RFM, personas) read the whole history this way:
the log in sequence order up to what the folds have reached, each event paired with the
root of the profile it was folded into, so events of profiles merged since count for the
survivor. Events attributed to no one (a group call without a user) are left out.
`folded_rows` is the same read, leaner, for passes over millions of events: bare rows, bodies
undecoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from persona.log.events import Event
from persona.log.store import EventLog, Scanned
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
        owners = state.owners(after, reached)
        pairs = [(pid, e) for e in kept if (pid := owners.get(e.seq)) is not None]
        if pairs:
            yield pairs
        after = reached


def folded_rows(log: EventLog, state: SQLStateStore, *, batch: int = 10_000) -> Iterator[list[tuple[str, Scanned]]]:
    """`folded_events` as (root profile id, `EventLog.scan` row): no Event built, no body decoded."""
    through = state.folded_through()
    after = 0
    while after < through:
        rows = log.scan(after, through, batch)
        if not rows:
            return
        reached = through if len(rows) < batch else rows[-1][0]
        owners = state.owners(after, reached)
        pairs = [(pid, row) for row in rows if (pid := owners.get(row[0])) is not None]
        if pairs:
            yield pairs
        after = reached


def raw_body(body: bytes) -> dict[str, Any]:
    """A `decode` for `EventLog.read`/`folded_events` that leaves the body undecoded, under "raw", for a
    reader that decodes only the bodies (or the parts) it needs."""
    return {"raw": body}

