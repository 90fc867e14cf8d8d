"""Unified customer profiles: what every event and merge does to one customer's record."""

from persona.profiles.profile import Profile, apply_event, merge_profiles

__all__ = ["Profile", "apply_event", "merge_profiles"]
