"""Small helpers for the synth tests: who is behind a message, grouping by customer."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from persona.synth import Customer

Message = dict[str, Any]
START = datetime(2026, 9, 1, tzinfo=UTC)
CUSTOMERS = 600  # the shared workload of the `synth_*` fixtures
BLOCK = 150  # several blocks, so the block-wise ordering is exercised too


def customer_of(msg: Message, owners: dict[str, Customer]) -> Customer:
    """The customer behind a message, by userId when present, else anonymousId."""
    return owners[msg.get("userId") or msg["anonymousId"]]


def by_customer(messages: list[Message], owners: dict[str, Customer]) -> dict[int, list[Message]]:
    """Messages grouped by customer index, keeping stream order."""
    grouped: dict[int, list[Message]] = defaultdict(list)
    for msg in messages:
        grouped[customer_of(msg, owners).index].append(msg)
    return grouped


def events(messages: list[Message], name: str) -> list[Message]:
    return [m for m in messages if m["type"] == "track" and m["event"] == name]
