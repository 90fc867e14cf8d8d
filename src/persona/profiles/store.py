"""The derived-state contract: identity graph, profile fragments, timelines and checkpoints.

Everything here can be rebuilt by replaying the log. Processing has two stages (see
`profiles/processor.py`): identity resolution, one at a time in log order, which keeps the
identity graph and assigns each event to a profile; and folding, split into partitions by
profile id, which folds each assigned event into that profile's *fragment*. A profile as
read is its identity record and the fragments of every profile merged into it, combined.

Each stage hands a `StateChanges` to `commit`, which writes it in one transaction and moves
the stage's checkpoints from the values it read to the new ones only if nobody moved them
in between (compare-and-set): a stage whose lease passed to another worker cannot commit.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from persona.profiles.profile import Profile

IDENTITY = "identity"  # the identity stage's checkpoint and lease


@dataclass(frozen=True)
class MergeRecord:
    seq: int          # the event that caused it
    at: int           # its timestamp
    survivor: str
    merged: str
    reason: str       # "identifiers" or "alias"


@dataclass(frozen=True)
class DroppedLink:
    seq: int
    kind: str
    value: str
    reason: str


@dataclass
class StateChanges:
    # identity stage
    profiles: dict[str, Profile] = field(default_factory=dict)          # identity records (no event content)
    identities: dict[str, str] = field(default_factory=dict)          # "kind:value" -> profile id
    repoints: list[tuple[str, str]] = field(default_factory=list)       # (merged id, survivor id), in order
    merges: list[MergeRecord] = field(default_factory=list)
    dropped: list[DroppedLink] = field(default_factory=list)
    assignments: list[tuple[int, int, str]] = field(default_factory=list)  # (seq, partition, profile id)
    # fold stage
    fragments: dict[str, Profile] = field(default_factory=dict)         # profile id -> what its events added
    timeline: list[tuple[str, int, int]] = field(default_factory=list)  # (profile id, timestamp, seq)
    folded: list[tuple[int, int, int]] = field(default_factory=list)    # (partition, after, through): consumed
    # checkpoint name -> (value read, new value)
    checkpoints: dict[str, tuple[int, int]] = field(default_factory=dict)


class CheckpointMoved(Exception):
    """Another worker committed this stage since we read its checkpoint: our work is void."""


@dataclass(frozen=True)
class StateCounts:
    profiles: int
    merged_profiles: int
    identities: int
    merges: int
    dropped_links: int


class StateStore(Protocol):
    def checkpoint(self, name: str) -> int: ...
    def checkpoints(self) -> dict[str, int]: ...
    def identities(self, keys: set[str]) -> dict[str, str]: ...
    def profiles(self, ids: set[str]) -> dict[str, Profile]:
        """Identity records by id."""
        ...

    def fragments(self, ids: set[str]) -> dict[str, Profile]: ...

    def assignments(self, partition: int, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """(seq, profile id) of the events assigned to a partition after `after_seq`, in log order."""
        ...

    def pending(self, partition: int, after_seq: int) -> int:
        """How many assigned events the partition has not folded yet."""
        ...

    def pending_total(self) -> int: ...
    def commit(self, changes: StateChanges) -> None: ...

    def commit_async(self, changes: StateChanges) -> Future[None]:
        """Snapshot the changes now and write them (with the checkpoints) in the background.

        The future fails with CheckpointMoved if a checkpoint is no longer the value read."""
        ...

    def profile(self, profile_id: str) -> Profile | None:
        """The live profile, its fragments combined: a merged-away id resolves to the profile that absorbed it."""
        ...

    def owner(self, kind: str, value: str) -> str | None: ...
    def timeline(self, profile_id: str, before: tuple[int, int] | None, limit: int) -> list[tuple[int, int]]: ...
    def merges(self, profile_id: str) -> list[MergeRecord]: ...
    def all_profiles(self) -> list[Profile]: ...
    def list_profiles(self, after_id: str | None, limit: int) -> list[Profile]:
        """Live profiles ordered by id, after `after_id`: for paging through all of them."""
        ...

    def counts(self) -> StateCounts: ...

    def record_error(self, name: str, error: str | None) -> None:
        """What stopped the processor `name` last, or None once it runs again (for status)."""
        ...

    def last_error(self, name: str) -> tuple[str, float] | None: ...
    def reset(self) -> None: ...
