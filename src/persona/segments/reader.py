"""Read side of audiences: a profile's segments and computed traits, members, sizes, overlaps."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from persona.errors import RequestError
from persona.identity.rules import IdentityRules
from persona.log.events import iso
from persona.profiles.store import StateStore
from persona.segments.sql import AudienceStore
from persona.segments.store import DefinitionStore

MAX_PAGE = 1000
CSV_PAGE = 5000


class AudienceReader:
    def __init__(self, audiences: AudienceStore, definitions: DefinitionStore, state: StateStore,
                 rules: IdentityRules) -> None:
        self.audiences = audiences
        self.definitions = definitions
        self.state = state
        self.rules = rules

    def of_profile(self, profile_id: str) -> dict[str, Any]:
        """What the profile page shows: segments it is in (since when) and its computed traits."""
        names = {d.id: d.body.get("name") or d.id for d in self.definitions.list("segment")}
        traits = {d.id for d in self.definitions.list("computed_trait")}
        state = self.audiences.states([profile_id]).get(profile_id)
        memberships = self.audiences.memberships(profile_id)
        return {
            "segments": [{"id": s, "name": names[s], "since": iso(since)}
                         for s, since in memberships.items() if s in names],
            "computed_traits": {k: v for k, v in sorted((state.computed if state else {}).items()) if k in traits},
        }

    def of_profiles(self, profile_ids: list[str]) -> dict[str, dict[str, Any]]:
        """For exports: per profile, the ids of the segments it is in and its computed traits."""
        segments = {d.id for d in self.definitions.list("segment")}
        traits = {d.id for d in self.definitions.list("computed_trait")}
        return {pid: {"segments": sorted(state.segments & segments),
                      "computed_traits": {k: v for k, v in sorted(state.computed.items()) if k in traits}}
                for pid, state in self.audiences.states(profile_ids).items()}

    def members(self, segment_id: str, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        if not 1 <= limit <= MAX_PAGE:
            raise RequestError(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        self.definitions.get("segment", segment_id)  # 404 if undefined
        rows = self.audiences.members(segment_id, cursor or "", limit)
        return {"segment_id": segment_id, "size": self.audiences.sizes().get(segment_id, 0),
                "data": [{"profile_id": pid, "since": iso(since)} for pid, since in rows],
                "next": rows[-1][0] if len(rows) == limit else None}

    def members_csv(self, segment_id: str) -> Iterator[str]:
        """Every member, one CSV row each with the profile's identifiers, a page at a time."""
        self.definitions.get("segment", segment_id)
        kinds = self.rules.kinds
        yield _row(["profile_id", "since", *kinds])
        after = ""
        while rows := self.audiences.members(segment_id, after, CSV_PAGE):
            records = self.state.profiles({pid for pid, _ in rows})
            for pid, since in rows:
                identifiers = records[pid].identifiers if pid in records else {}
                yield _row([pid, iso(since), *(" ".join(identifiers.get(kind, [])) for kind in kinds)])
            after = rows[-1][0]

    def size(self, segment_id: str, since_us: int = 0) -> dict[str, Any]:
        self.definitions.get("segment", segment_id)
        history = self.audiences.size_history(segment_id, since_us)
        return {"segment_id": segment_id, "size": self.audiences.sizes().get(segment_id, 0),
                "history": [{"at": iso(at), "size": size} for at, size in history]}

    def overlap(self, segment_ids: list[str]) -> dict[str, Any]:
        """Members shared by every pair of the segments (the diagonal is each one's size)."""
        if not 2 <= len(segment_ids) <= 20:
            raise RequestError("give between 2 and 20 segments", field="segments")
        for segment_id in segment_ids:
            self.definitions.get("segment", segment_id)
        sizes = self.audiences.sizes()
        matrix = {a: {b: sizes.get(a, 0) if a == b else self.audiences.overlap(a, b) for b in segment_ids}
                  for a in segment_ids}
        return {"segments": segment_ids, "overlap": matrix}


def _row(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
