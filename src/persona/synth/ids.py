"""Deterministic identifiers and fast timestamp formatting.

Every id is drawn from a seeded `random.Random`, never from `uuid.uuid4()`, so that one seed
always yields byte-identical output. Timestamps are kept as integer milliseconds since the
Unix epoch while simulating (cheap to add and sort) and formatted once per message.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Version 4 / RFC 4122 variant bits, forced onto 128 random bits.
_V4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_V4_SET = (0x4 << 76) | (0x2 << 62)


def uuid4_from(rng: random.Random) -> str:
    """A version-4 UUID string whose randomness comes from `rng`."""
    h = "%032x" % ((rng.getrandbits(128) & _V4_CLEAR) | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def short_hex(rng: random.Random, digits: int = 16) -> str:
    """A fixed-width lowercase hex token, for order and cart style ids."""
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def to_ms(moment: datetime) -> int:
    """Aware datetime to integer epoch milliseconds (naive input is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds back to an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


class IsoClock:
    """Formats epoch milliseconds as `2026-09-01T12:34:56.789Z`.

    `datetime.isoformat` costs several microseconds a call; caching the date part per day
    and doing the time of day with integer arithmetic is about five times faster, which
    matters at tens of thousands of messages per second.
    """

    __slots__ = ("_days",)

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        day, rest = divmod(ms, MS_PER_DAY)
        prefix = self._days.get(day)
        if prefix is None:
            if len(self._days) > 4096:  # bound memory on very long simulations
                self._days.clear()
            prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._days[day] = prefix
        secs, millis = divmod(rest, 1000)
        hours, secs = divmod(secs, 3600)
        minutes, secs = divmod(secs, 60)
        return f"{prefix}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def documentation_ip(rng: random.Random) -> str:
    """An IPv4 address from the RFC 5737 documentation ranges (never routable, never real)."""
    prefix = ("192.0.2.", "198.51.100.", "203.0.113.")[rng.randrange(3)]
    return f"{prefix}{rng.randrange(1, 255)}"
