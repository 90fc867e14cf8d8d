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
from typing import Any, TypeVar

from persona.log.events import Event
from persona.log.store import EventLog, Scanned
from persona.profiles.sql import SQLStateStore

T = TypeVar("T")


def folded_events(log: EventLog, state: SQLStateStore, *, batch: int = 10_000,
                  decode: Callable[[bytes], dict[str, Any]] | None = None) -> Iterator[list[tuple[str, Event]]]:
    """Batches of (root profile id, event) in log order, through `state.folded_through()` as of the start."""
    def read(after: int, through: int) -> list[Event]:
        return [e for e in log.read(after, batch, decode) if e.seq <= through]

    return _folded(state, read, lambda event: event.seq, batch)


def folded_rows(log: EventLog, state: SQLStateStore, *, batch: int = 10_000) -> Iterator[list[tuple[str, Scanned]]]:
    """`folded_events` as (root profile id, `EventLog.scan` row): no Event built, no body decoded."""
    return _folded(state, lambda after, through: log.scan(after, through, batch), lambda row: row[0], batch)


def _folded(state: SQLStateStore, read: Callable[[int, int], list[T]], seq_of: Callable[[T], int],
            batch: int) -> Iterator[list[tuple[str, T]]]:
    """The pass both share: `read(after, through)` gives up to `batch` items in (after, through]."""
    through = state.folded_through()
    after = 0
    while after < through:
        items = read(after, through)
        if not items:
            return
        reached = through if len(items) < batch else seq_of(items[-1])
        owners = state.owners(after, reached)
        pairs = [(pid, item) for item in items if (pid := owners.get(seq_of(item))) is not None]
        if pairs:
            yield pairs
        after = reached


def raw_body(body: bytes) -> dict[str, Any]:
    """A `decode` for `EventLog.read`/`folded_events` that leaves the body undecoded, under "raw", for a
    reader that decodes only the bodies (or the parts) it needs."""
    return {"raw": body}

