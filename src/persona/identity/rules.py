"""Identity resolution rules, modelled on Segment Unify's.

Which identifiers exist and where they are read from, how many of each a profile may
hold (by default one `user_id`), which one to drop first when an event would break a
limit (the lowest priority), and which values are never identifiers ("null", "0", ...).
"""

from __future__ import annotations

from typing import Any

import msgspec

from persona.errors import ConfigError
from persona.log.events import Event

DEFAULT_BLOCKED = (
    "", "null", "undefined", "none", "nil", "nan", "0", "-1", "anonymous", "unknown", "guest",
    "n/a", "na", "[object object]", "00000000-0000-0000-0000-000000000000", "test", "user", "email",
)


class IdentifierRule(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    paths: list[str]              # dotted paths into the Segment message, first found wins
    limit: int | None = None      # at most this many values per profile (None: unlimited)
    lowercase: bool = False       # normalize before matching (emails)


class IdentityRules(msgspec.Struct, forbid_unknown_fields=True, dict=True):
    """Identifiers in priority order: the first is the strongest, the last is dropped first."""

    identifiers: list[IdentifierRule] = msgspec.field(default_factory=lambda: [
        IdentifierRule("user_id", ["userId"], limit=1),
        IdentifierRule("email", ["traits.email", "context.traits.email"], limit=3,
                       lowercase=True),
        IdentifierRule("device_id", ["context.device.id"], limit=20),
        IdentifierRule("anonymous_id", ["anonymousId"], limit=None),
    ])
    blocked_values: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_BLOCKED))

    def __post_init__(self) -> None:
        kinds = [rule.kind for rule in self.identifiers]
        if len(set(kinds)) != len(kinds):
            raise ConfigError("identity.identifiers: each kind may appear once", field="identity.identifiers")
        for rule in self.identifiers:
            if not rule.kind.isidentifier():
                raise ConfigError(f"identity.identifiers: kind {rule.kind!r} must be a plain name",
                                  field="identity.identifiers.kind")
            if rule.limit is not None and rule.limit < 1:
                raise ConfigError(f"identity.identifiers[{rule.kind}].limit must be at least 1",
                                  field="identity.identifiers.limit")
        self._blocked = frozenset(v.strip().lower() for v in self.blocked_values)
        self._split = [(rule, [p.split(".") for p in rule.paths]) for rule in self.identifiers]
        self._lowercase = frozenset(rule.kind for rule in self.identifiers if rule.lowercase)
        self.priority = {rule.kind: i for i, rule in enumerate(self.identifiers)}
        self.limits = {rule.kind: rule.limit for rule in self.identifiers}

    @property
    def kinds(self) -> list[str]:
        return [rule.kind for rule in self.identifiers]

    def normalize(self, kind: str, value: Any) -> str | None:
        """The identifier's canonical text, or None if it is blocked or not an identifier."""
        if type(value) is str:
            text = value.strip()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
        else:
            return None
        lowered = text.lower()
        if lowered in self._blocked:
            return None
        return lowered if kind in self._lowercase else text

    def extract(self, event: Event) -> list[tuple[str, str]]:
        """The event's identifiers as (kind, value), strongest first."""
        found: list[tuple[str, str]] = []
        body = event.body
        for rule, paths in self._split:
            for path in paths:
                value = _lookup(body, path)
                if value is not None:
                    normalized = self.normalize(rule.kind, value)
                    if normalized is not None:
                        found.append((rule.kind, normalized))
                    break
        return found


def _lookup(body: dict[str, Any], path: list[str]) -> Any:
    node: Any = body
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node
