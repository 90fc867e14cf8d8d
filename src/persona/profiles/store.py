"""The derived-state contract: identity graph, profiles, timelines and the processor checkpoint.

Everything here can be rebuilt by replaying the log. The processor hands one `StateChanges`
per batch to `commit`, which writes it together with the new checkpoint in one transaction:
a crash leaves either all of a batch applied or none of it, never half.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from persona.profiles.profile import Profile


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
    profiles: dict[str, Profile] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)          # "kind:value" -> profile id
    timeline: list[tuple[str, int, int]] = field(default_factory=list)  # (profile id, timestamp, seq)
    repoints: list[tuple[str, str]] = field(default_factory=list)       # (merged id, survivor id), in order
    merges: list[MergeRecord] = field(default_factory=list)
    dropped: list[DroppedLink] = field(default_factory=list)
    checkpoint: int = 0


@dataclass(frozen=True)
class StateCounts:
    profiles: int
    merged_profiles: int
    identities: int
    merges: int
    dropped_links: int


class StateStore(Protocol):
    def checkpoint(self, name: str) -> int: ...
    def identities(self, keys: set[str]) -> dict[str, str]: ...
    def profiles(self, ids: set[str]) -> dict[str, Profile]: ...
    def commit(self, name: str, changes: StateChanges) -> None: ...

    def commit_async(self, name: str, changes: StateChanges) -> Future[None]:
        """Snapshot the changes now and write them (with the checkpoint) in the background."""
        ...

    def profile(self, profile_id: str) -> Profile | None:
        """The live profile: a merged-away id resolves to the profile that absorbed it."""
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
