"""Decode only what processing reads from a stored event body.

A stored Segment message is ~1 KB of JSON, mostly context and product properties that
identity resolution and profiles never look at. Decoding it into a small typed view is
about five times cheaper than into dicts; properties are kept raw unless the event is an
order. When the identity rules read paths outside the view, every body is decoded whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from persona.identity.rules import IdentityRules
from persona.profiles.profile import ORDER_COMPLETED, ORDER_REFUNDED

BodyDecoder = Callable[[bytes], dict[str, Any]]
_ORDERS = frozenset({ORDER_COMPLETED, ORDER_REFUNDED})
_TOP_LEVEL = frozenset({"type", "event", "userId", "anonymousId", "previousId", "groupId", "traits"})


class _Context(msgspec.Struct):
    traits: Any = None
    device: Any = None


class _Body(msgspec.Struct):
    type: str
    event: Any = None
    userId: Any = None
    anonymousId: Any = None
    previousId: Any = None
    groupId: Any = None
    traits: Any = None
    context: _Context | None = None
    properties: msgspec.Raw = msgspec.Raw(b"")  # msgspec does not take Raw in a union with None


_decode_full = msgspec.json.Decoder().decode
_decode_view = msgspec.json.Decoder(_Body).decode


def covers(path: str) -> bool:
    parts = path.split(".")
    return parts[0] in _TOP_LEVEL or (parts[0] == "context" and len(parts) > 1 and parts[1] in ("traits", "device"))


def decode_partial(raw: bytes) -> dict[str, Any]:
    try:
        view = _decode_view(raw)
    except msgspec.ValidationError:  # an unusual shape (say, a string context): take it whole
        return _decode_full(raw)
    body: dict[str, Any] = {"type": view.type}
    for field in ("event", "userId", "anonymousId", "previousId", "groupId", "traits"):
        value = getattr(view, field)
        if value is not None:
            body[field] = value
    if view.context is not None:
        body["context"] = {"traits": view.context.traits, "device": view.context.device}
    if view.properties and view.event in _ORDERS:
        body["properties"] = _decode_full(view.properties)
    return body


def body_decoder(rules: IdentityRules) -> BodyDecoder:
    """The cheapest decoder that still gives the processor everything the rules read."""
    if all(covers(path) for rule in rules.identifiers for path in rule.paths):
        return decode_partial
    return _decode_full
