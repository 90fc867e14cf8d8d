"""Seeded event streams for tests of identity resolution and processing."""

from __future__ import annotations

import random

from persona.log.events import Event
from tests.support.events import event


def random_stream(rng: random.Random, n: int, *, users: int = 8, devices: int = 20,
                  emails: int = 6) -> list[Event]:
    """Merge-heavy traffic: few users, many devices, late events, aliases, shared devices and emails."""
    events = []
    for i in range(n):
        user = f"u{rng.randrange(users)}" if rng.random() < 0.4 else None
        anon = f"a{rng.randrange(devices)}" if user is None or rng.random() < 0.7 else None
        minutes = rng.uniform(0, 1000)
        roll = rng.random()
        if roll < 0.05 and user:
            events.append(event("alias", user=user, previousId=f"u{rng.randrange(users)}", minutes=minutes))
        elif roll < 0.35:
            events.append(event("identify", user=user, anon=anon, minutes=minutes,
                                traits={"plan": rng.choice("ab"), "email": f"e{rng.randrange(emails)}@x.io"}))
        else:
            events.append(event("track", user=user, anon=anon, minutes=minutes, event="Order Completed",
                                properties={"revenue": i}))
    return events
