"""What a journey branch, a template or a decision may know of a profile: the profile itself,
the facts audience conditions read (traits with model traits beneath them, segments, computed
traits), and its model traits (scores). Key reads only, no log scan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from persona.jobs.store import ModelTraitStore
from persona.profiles.profile import Profile
from persona.profiles.sql import SQLStateStore
from persona.segments.evaluate import ProfileFacts
from persona.segments.sql import AudienceStore


@dataclass(frozen=True)
class Known:
    profile: Profile | None = None
    facts: ProfileFacts = field(default_factory=ProfileFacts)
    scores: dict[str, Any] = field(default_factory=dict)


UNKNOWN = Known()


def known(root: str, state: SQLStateStore, audiences: AudienceStore | None, model_traits: ModelTraitStore | None,
          profile: Profile | None = None) -> Known:
    """The profile (read unless given), its audience state and its model traits, as one `Known`."""
    profile = profile if profile is not None else state.combined([root]).get(root)
    scores = model_traits.of_profiles([root]).get(root, {}) if model_traits is not None else {}
    audience = audiences.states({root}).get(root) if audiences is not None else None
    facts = ProfileFacts(traits={**scores, **(profile.traits if profile is not None else {})},
                         computed=dict(audience.computed) if audience else {},
                         segments=audience.segments if audience else frozenset())
    return Known(profile, facts, scores)
