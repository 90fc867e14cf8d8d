"""The unified profile and the two things that change it: an event, and a merge.

A profile is stored in parts: an identity record (id, identifiers, merges) kept by the
identity stage, and fragments, one per profile id, holding what the events assigned to
that id did; `combine` puts them together for reading.

Traits keep the value of the event with the latest (timestamp, seq), so a late old event
never overwrites a newer value and ties break the same way on every replay. Merging keeps
every trait's latest version, sums counters and unions sets, so it is commutative and
associative: the order in which profiles meet does not change the merged result.
"""

from __future__ import annotations

from typing import Any

import msgspec

from persona.log.events import Event

ORDER_COMPLETED = "Order Completed"
ORDER_REFUNDED = "Order Refunded"


class Orders(msgspec.Struct):
    count: int = 0
    revenue: float = 0.0
    refunds: int = 0
    refunded: float = 0.0
    first_at: int | None = None
    last_at: int | None = None


class Profile(msgspec.Struct):
    id: str
    created_seq: int
    first_seen: int
    last_seen: int
    event_count: int = 0
    event_counts: dict[str, int] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    trait_versions: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    identifiers: dict[str, list[str]] = msgspec.field(default_factory=dict)
    sources: list[str] = msgspec.field(default_factory=list)
    groups: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    group_versions: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    orders: Orders = msgspec.field(default_factory=Orders)
    merged_from: list[str] = msgspec.field(default_factory=list)
    merged_into: str | None = None

    @classmethod
    def new(cls, profile_id: str, event: Event) -> Profile:
        return cls(id=profile_id, created_seq=event.seq, first_seen=event.timestamp, last_seen=event.timestamp)

    def add_identifier(self, kind: str, value: str) -> None:
        values = self.identifiers.setdefault(kind, [])
        if value not in values:
            values.append(value)
            values.sort()


def counter_name(event: Event) -> str:
    return event.name or event.type if event.type == "track" else event.type


def apply_event(profile: Profile, event: Event) -> None:
    """Fold one event into the profile it was attributed to."""
    body = event.body
    version = (event.timestamp, event.seq)
    profile.event_count += 1
    key = counter_name(event)
    profile.event_counts[key] = profile.event_counts.get(key, 0) + 1
    profile.first_seen = min(profile.first_seen, event.timestamp)
    profile.last_seen = max(profile.last_seen, event.timestamp)
    if event.source_id not in profile.sources:
        profile.sources.append(event.source_id)
        profile.sources.sort()

    context = body.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        _set_traits(profile, context["traits"], version)
    if event.type == "identify" and isinstance(body.get("traits"), dict):
        _set_traits(profile, body["traits"], version)
    elif event.type == "group":
        group_id = str(body["groupId"])
        if version >= tuple(profile.group_versions.get(group_id, (-1, -1))):
            profile.groups[group_id] = body.get("traits") or {}
            profile.group_versions[group_id] = version
    elif event.type == "track" and event.name in (ORDER_COMPLETED, ORDER_REFUNDED):
        _apply_order(profile.orders, event)


def _set_traits(profile: Profile, traits: dict[str, Any], version: tuple[int, int]) -> None:
    for name, value in traits.items():
        current = profile.trait_versions.get(name)
        if current is None or version >= tuple(current):
            profile.traits[name] = value
            profile.trait_versions[name] = version


# No real order is worth more; a bigger (or non-finite) amount counts as 0, so that sums stay
# finite: an infinite revenue would not survive the profile's JSON round trip.
MAX_AMOUNT = 1e15


def order_amount(properties: dict[str, Any]) -> float:
    """Segment e-commerce: `revenue`, else `total`, else the sum of the products."""
    for field in ("revenue", "total"):
        value = properties.get(field)
        if _is_number(value):
            return _bounded(float(value))
    amount = 0.0
    products = properties.get("products")
    if isinstance(products, list):
        for item in products:
            if isinstance(item, dict):
                price, quantity = item.get("price"), item.get("quantity", 1)
                if _is_number(price) and _is_number(quantity):
                    amount += _bounded(_bounded(float(price)) * _bounded(float(quantity)))
    return _bounded(amount)


def _is_number(value: Any) -> bool:
    """A JSON number a float can hold (an integer literal may be too large for one)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return not isinstance(value, int) or -MAX_AMOUNT <= value <= MAX_AMOUNT


def _bounded(amount: float) -> float:
    return amount if -MAX_AMOUNT <= amount <= MAX_AMOUNT else 0.0


def _apply_order(orders: Orders, event: Event) -> None:
    properties = event.body.get("properties")
    amount = order_amount(properties) if isinstance(properties, dict) else 0.0
    if event.name == ORDER_COMPLETED:
        orders.count += 1
        orders.revenue = round(orders.revenue + amount, 6)
        orders.first_at = event.timestamp if orders.first_at is None else min(orders.first_at, event.timestamp)
        orders.last_at = event.timestamp if orders.last_at is None else max(orders.last_at, event.timestamp)
    else:
        orders.refunds += 1
        orders.refunded = round(orders.refunded + amount, 6)


def merge_profiles(a: Profile, b: Profile) -> tuple[Profile, Profile]:
    """Fold the younger profile into the older one; returns (survivor, merged_away)."""
    survivor, other = (a, b) if (a.created_seq, a.id) <= (b.created_seq, b.id) else (b, a)
    absorb(survivor, other)
    for kind, values in other.identifiers.items():
        for value in values:
            survivor.add_identifier(kind, value)
    survivor.merged_from = sorted({*survivor.merged_from, *other.merged_from, other.id})
    other.merged_into = survivor.id
    return survivor, other


def absorb(into: Profile, other: Profile) -> None:
    """Add what `other`'s events did to `into`: commutative and associative, like the events themselves."""
    into.first_seen = min(into.first_seen, other.first_seen)
    into.last_seen = max(into.last_seen, other.last_seen)
    into.event_count += other.event_count
    for name, n in other.event_counts.items():
        into.event_counts[name] = into.event_counts.get(name, 0) + n
    _merge_versioned(into.traits, into.trait_versions, other.traits, other.trait_versions)
    _merge_versioned(into.groups, into.group_versions, other.groups, other.group_versions)
    into.sources = sorted(set(into.sources) | set(other.sources))
    mine, theirs = into.orders, other.orders
    mine.count += theirs.count
    mine.revenue = round(mine.revenue + theirs.revenue, 6)
    mine.refunds += theirs.refunds
    mine.refunded = round(mine.refunded + theirs.refunded, 6)
    mine.first_at = _min_opt(mine.first_at, theirs.first_at)
    mine.last_at = _max_opt(mine.last_at, theirs.last_at)


def combine(identity: Profile, fragments: list[Profile]) -> Profile:
    """The profile as read: its identity record with the fragments of every profile merged into it.

    Fragments are added in id order, so the (rounded) sums come out the same on every read."""
    profile = Profile(id=identity.id, created_seq=identity.created_seq, first_seen=identity.first_seen,
                      last_seen=identity.last_seen, identifiers=identity.identifiers,
                      merged_from=identity.merged_from, merged_into=identity.merged_into)
    ordered = sorted(fragments, key=lambda f: f.id)
    if ordered:
        profile.first_seen, profile.last_seen = ordered[0].first_seen, ordered[0].last_seen
    for fragment in ordered:
        absorb(profile, fragment)
    return profile


def _merge_versioned(values: dict[str, Any], versions: dict[str, tuple[int, int]],
                     other_values: dict[str, Any], other_versions: dict[str, tuple[int, int]]) -> None:
    for name, version in other_versions.items():
        current = versions.get(name)
        if current is None or tuple(version) > tuple(current):
            values[name] = other_values.get(name)
            versions[name] = version


def _min_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
