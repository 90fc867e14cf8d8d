"""Read side of profiles: look one up by any identifier, show it, page through its events."""

from __future__ import annotations

from typing import Any

from persona.errors import NotFound, RequestError
from persona.identity.rules import IdentityRules
from persona.log.events import iso
from persona.log.store import EventLog
from persona.profiles.profile import Profile
from persona.profiles.store import StateStore

MAX_PAGE = 500


class ProfileReader:
    def __init__(self, state: StateStore, log: EventLog, rules: IdentityRules) -> None:
        self.state = state
        self.log = log
        self.rules = rules

    def find(self, identifier: str) -> Profile:
        """`user_id:<id>`, `anonymous_id:<id>`, `email:<addr>` (any configured kind) or a profile id."""
        kind, sep, value = identifier.partition(":")
        if sep and kind in self.rules.priority:
            normalized = self.rules.normalize(kind, value)
            owner = self.state.owner(kind, normalized) if normalized is not None else None
            if owner is None:
                raise NotFound(f"no profile has {kind} {value!r}", field="identifier")
            profile = self.state.profile(owner)
        elif sep:
            kinds = ", ".join(self.rules.kinds)
            raise RequestError(f"unknown identifier kind {kind!r}; use one of {kinds}, or a profile id",
                               field="identifier")
        else:
            profile = self.state.profile(identifier)
        if profile is None:
            raise NotFound(f"no profile {identifier!r}", field="identifier")
        return profile

    def show(self, identifier: str) -> dict[str, Any]:
        return profile_json(self.find(identifier))

    def page(self, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        """All live profiles, ordered by id; `next` is the cursor of the following page."""
        if not 1 <= limit <= MAX_PAGE:
            raise RequestError(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        profiles = self.state.list_profiles(cursor, limit)
        return {"data": [profile_json(p) for p in profiles],
                "next": profiles[-1].id if len(profiles) == limit else None}

    def events(self, identifier: str, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """The profile's events, newest first; `next` is the cursor of the following page."""
        if not 1 <= limit <= MAX_PAGE:
            raise RequestError(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        before = _parse_cursor(cursor) if cursor else None
        profile = self.find(identifier)
        page = self.state.timeline(profile.id, before, limit)
        by_seq = {e.seq: e for e in self.log.get([seq for _, seq in page])}
        data = []
        for _, seq in page:
            event = by_seq.get(seq)
            if event is not None:  # erased from the log since
                data.append({"seq": seq, "source": event.source_id, **event.body})
        next_cursor = f"{page[-1][0]}_{page[-1][1]}" if len(page) == limit else None
        return {"profile_id": profile.id, "data": data, "next": next_cursor}


def _parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        ts, seq = (int(part) for part in cursor.split("_"))
    except ValueError:
        raise RequestError("cursor is not one this API returned", field="cursor") from None
    if not (-_INT64 <= ts < _INT64 and -_INT64 <= seq < _INT64):  # SQLite would refuse to bind it
        raise RequestError("cursor is not one this API returned", field="cursor")
    return ts, seq


_INT64 = 2**63


def profile_json(p: Profile) -> dict[str, Any]:
    o = p.orders
    return {
        "id": p.id,
        "identifiers": p.identifiers,
        "traits": p.traits,
        "first_seen": iso(p.first_seen),
        "last_seen": iso(p.last_seen),
        "event_count": p.event_count,
        "event_counts": p.event_counts,
        "orders": {
            "count": o.count, "revenue": round(o.revenue, 2), "refunds": o.refunds,
            "refunded": round(o.refunded, 2), "net_revenue": round(o.revenue - o.refunded, 2),
            "first_order_at": iso(o.first_at) if o.first_at is not None else None,
            "last_order_at": iso(o.last_at) if o.last_at is not None else None,
        },
        "sources": p.sources,
        "groups": p.groups,
        "merged_from": p.merged_from,
    }
