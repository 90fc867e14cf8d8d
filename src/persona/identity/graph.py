"""Resolve events to profiles for one batch, merging profiles when identifiers link them.

The batch works on an in-memory copy of the identity graph (prefetched for every
identifier the batch mentions) and collects what changed into `StateChanges`, which the
processor commits with the checkpoint. The rules, as in Segment Unify:

- every identifier (kind:value) belongs to at most one profile;
- an event whose identifiers point to several profiles merges them into the oldest one;
- if that would give a profile more values of a kind than its limit allows (by default
  two user_ids), the event's weakest identifier is dropped (and recorded) until it fits;
- `alias` is an explicit statement that two ids are one person: it merges regardless of limits.
"""

from __future__ import annotations

import hashlib
import itertools

from persona.identity.rules import IdentityRules
from persona.log.events import Event
from persona.profiles.profile import Profile, merge_profiles
from persona.profiles.store import DroppedLink, MergeRecord, StateChanges, StateStore

Identifier = tuple[str, str]


def key_of(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def new_profile_id(identifier: Identifier, seq: int) -> str:
    digest = hashlib.blake2b(f"{identifier[0]}:{identifier[1]}".encode(), digest_size=6).hexdigest()
    return f"p_{digest}{seq:x}"


class GraphCache:
    """What the processor already knows of the identity graph, so a batch rarely asks the store.

    Only valid while this processor is the single writer of the state: it is dropped after
    a failed commit (the batch may have changed cached profiles in place) and on rebuild.
    Absent identifiers are cached too (as None): most events bring no new identifier.
    """

    def __init__(self, max_profiles: int = 200_000) -> None:
        self.max_profiles = max_profiles
        self.owners: dict[str, str | None] = {}
        self.profiles: dict[str, Profile] = {}

    def clear(self) -> None:
        self.owners.clear()
        self.profiles.clear()

    def trim(self) -> None:
        """Forget the oldest entries once over budget (dicts keep insertion order)."""
        for table, budget in ((self.profiles, self.max_profiles), (self.owners, 4 * self.max_profiles)):
            excess = len(table) - budget
            if excess > 0:
                for key in list(itertools.islice(table, excess + budget // 4)):
                    del table[key]


class BatchGraph:
    """The identity graph as one batch of events sees and changes it."""

    def __init__(self, rules: IdentityRules, store: StateStore, events: list[Event],
                 cache: GraphCache | None = None, changes: StateChanges | None = None) -> None:
        self.rules = rules
        self.changes = changes if changes is not None else StateChanges()
        self.merges: list[MergeRecord] = []  # made by this batch (changes may span several)
        self.unattributed = 0
        cache = cache if cache is not None else GraphCache()
        self._ids = {e.seq: rules.extract(e) for e in events}
        keys = {key_of(*i) for ids in self._ids.values() for i in ids}
        for e in events:
            if e.type == "alias":
                previous = rules.normalize("user_id", e.body.get("previousId"))
                if previous is not None:
                    keys.update((key_of("user_id", previous), key_of("anonymous_id", previous)))
        owners = cache.owners
        missing = {k for k in keys if k not in owners}
        if missing:
            found = store.identities(missing)
            for key in missing:
                owners[key] = found.get(key)
        profiles = cache.profiles
        needed = {owners[k] for k in keys} - profiles.keys() - {None}
        if needed:
            profiles.update(store.profiles(needed))  # type: ignore[arg-type]
        self._owners = owners
        self._profiles = profiles

    def resolve(self, event: Event) -> Profile | None:
        """The profile this event belongs to, creating or merging profiles as needed."""
        ids = list(self._ids.get(event.seq) or self.rules.extract(event))
        if not ids:
            self.unattributed += 1
            return None
        owners = self._fit_limits(event, ids)
        if owners:
            profile = self._profiles[owners[0]]
            for other in owners[1:]:
                profile = self._merge(profile, self._profiles[other], event, "identifiers")
        else:
            profile = self._create(ids[0], event)
        for kind, value in ids:
            self._link(profile, kind, value)
        if event.type == "alias":
            profile = self._alias(profile, event)
        return profile  # recorded in changes only where it changed: created, linked or merged

    def _owners_of(self, ids: list[Identifier]) -> list[str]:
        owners: list[str] = []
        for kind, value in ids:
            owner = self._owners.get(key_of(kind, value))
            if owner is not None and owner not in owners:
                owners.append(owner)
        return owners

    def _fit_limits(self, event: Event, ids: list[Identifier]) -> list[str]:
        """Drop the weakest identifiers until joining what remains breaks no limit."""
        owners = self._owners_of(ids)
        if len(owners) <= 1 and not self._adds_limited(owners, ids):
            return owners  # the common case: nothing new that a limit counts
        while True:
            owners = self._owners_of(ids)
            broken = self._broken_limit(owners, ids)
            if broken is None or len(ids) == 1:
                return owners
            kind, value = ids.pop()
            self.changes.dropped.append(DroppedLink(event.seq, kind, value, f"would exceed the {broken} limit"))

    def _adds_limited(self, owners: list[str], ids: list[Identifier]) -> bool:
        limits = self.rules.limits
        owner = owners[0] if owners else None
        return any(limits.get(kind) is not None and self._owners.get(key_of(kind, value)) != owner
                   for kind, value in ids) if owner is not None else False

    def _broken_limit(self, owners: list[str], ids: list[Identifier]) -> str | None:
        values: dict[str, set[str]] = {}
        for owner in owners:
            for kind, held in self._profiles[owner].identifiers.items():
                values.setdefault(kind, set()).update(held)
        for kind, value in ids:
            values.setdefault(kind, set()).add(value)
        for kind, held in values.items():
            limit = self.rules.limits.get(kind)
            if limit is not None and len(held) > limit:
                return kind
        return None

    def _create(self, identifier: Identifier, event: Event) -> Profile:
        profile = Profile.new(new_profile_id(identifier, event.seq), event)
        self._profiles[profile.id] = profile
        self.changes.profiles[profile.id] = profile
        return profile

    def _link(self, profile: Profile, kind: str, value: str) -> None:
        key = key_of(kind, value)
        if self._owners.get(key) != profile.id:
            self._owners[key] = profile.id
            self.changes.profiles[profile.id] = profile
            self.changes.identities[key] = profile.id
        profile.add_identifier(kind, value)

    def _merge(self, a: Profile, b: Profile, event: Event, reason: str) -> Profile:
        survivor, merged = merge_profiles(a, b)
        for kind, values in merged.identifiers.items():
            for value in values:
                self._owners[key_of(kind, value)] = survivor.id
                self.changes.identities[key_of(kind, value)] = survivor.id
        tombstone = Profile(id=merged.id, created_seq=merged.created_seq, first_seen=merged.first_seen,
                            last_seen=merged.last_seen, merged_into=survivor.id)
        self._profiles[merged.id] = tombstone
        self.changes.profiles[merged.id] = tombstone
        self.changes.profiles[survivor.id] = survivor
        self.changes.repoints.append((merged.id, survivor.id))
        record = MergeRecord(event.seq, event.timestamp, survivor.id, merged.id, reason)
        self.changes.merges.append(record)
        self.merges.append(record)
        return survivor

    def _alias(self, profile: Profile, event: Event) -> Profile:
        previous = self.rules.normalize("user_id", event.body.get("previousId"))
        if previous is None:
            return profile
        owner = (self._owners.get(key_of("user_id", previous))
                 or self._owners.get(key_of("anonymous_id", previous)))
        if owner is None:
            self._link(profile, "anonymous_id", previous)
            return profile
        if owner == profile.id:
            return profile
        return self._merge(profile, self._profiles[owner], event, "alias")
