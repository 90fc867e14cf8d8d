"""Identity resolution: which profile an event belongs to, and when two profiles are one person."""

from persona.identity.rules import IdentifierRule, IdentityRules

__all__ = ["IdentifierRule", "IdentityRules"]
