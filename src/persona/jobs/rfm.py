"""RFM over the store, written as model traits on every customer with an order (the `rfm` job).

The scoring is `segments/rfm.py`'s. What it needs of each customer's orders — the last
order's day, the count, the total — is what every profile already keeps (`Profile.orders`,
summed over merged profiles), so the job reads profiles a page at a time and never the log.
Days are UTC. Scores are relative to `as_of`, today, or the day of the newest order if that
is later (a store of future-dated, e.g. synthetic, orders would otherwise have none recent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from persona.jobs.store import ModelTraitStore
from persona.log.events import from_micros
from persona.profiles.sql import SQLStateStore
from persona.segments.rfm import OrderHistory, RfmScore, rfm_of

RFM_JOB = "rfm"
PAGE = 2000


@dataclass
class RfmRun:
    as_of: date
    scores: list[RfmScore]
    segments: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """`1,234 customers scored as of 2026-11-23; Champions 210, Loyal 180, ...`"""
        sizes = ", ".join(f"{name} {n:,}" for name, n in self.segments.most_common())
        return f"{len(self.scores):,} customers scored as of {self.as_of}" + (f"; {sizes}" if sizes else "")


def order_histories(state: SQLStateStore, progress: Callable[[int], object] | None = None) -> Iterator[OrderHistory]:
    """Every profile with an order, from its order counters; `progress` gets profiles read so far."""
    after, read = None, 0
    while page := state.list_profiles(after, PAGE):
        for profile in page:
            orders = profile.orders
            if orders.count > 0 and orders.last_at is not None:
                yield OrderHistory(profile.id, from_micros(orders.last_at).date(), orders.count, orders.revenue)
        after, read = page[-1].id, read + len(page)
        if progress is not None:
            progress(read)


def traits_of(score: RfmScore) -> dict[str, Any]:
    return {"rfm_recency_days": score.recency_days, "rfm_frequency": score.frequency,
            "rfm_monetary": score.monetary, "rfm_r": score.r, "rfm_f": score.f, "rfm_m": score.m,
            "rfm_code": score.code, "rfm_segment": score.segment}


def refresh_rfm(state: SQLStateStore, traits: ModelTraitStore, today: date | None = None,
                progress: Callable[[int], object] | None = None) -> RfmRun:
    """Score every customer and replace the `rfm` traits with the result, in one transaction."""
    histories = list(order_histories(state, progress))
    as_of = max([today or datetime.now(UTC).date(), *(h.last_day for h in histories)])
    scores = rfm_of(histories, as_of)
    traits.replace(RFM_JOB, {s.customer: traits_of(s) for s in scores})
    return RfmRun(as_of, scores, Counter(s.segment for s in scores))
