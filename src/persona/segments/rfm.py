"""RFM: recency, frequency and monetary value per customer, scored 1-5 and named.

- **Recency**: whole days from the customer's last order to `as_of`.
- **Frequency**: the number of orders.
- **Monetary**: the total they spent.

Each is scored 1-5 by quintile over all customers (5 is best: most recent, most frequent,
biggest spender): a customer's score is `1 + 5 * below // n`, where `below` counts the
customers with a strictly worse value. Ties therefore share a score, whatever the input
order, and a population of one-time buyers all get F = 1 instead of being spread over
quintiles by accident.

The named segment comes from R and FM = the average of F and M, rounded half up:

| R \\ FM | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|
| 5 | New | Potential Loyalist | Potential Loyalist | Champions | Champions |
| 4 | Promising | Potential Loyalist | Potential Loyalist | Champions | Champions |
| 3 | About to Sleep | About to Sleep | Need Attention | Loyal | Loyal |
| 2 | Hibernating | Hibernating | At Risk | At Risk | At Risk |
| 1 | Lost | Lost | At Risk | Can't Lose Them | Can't Lose Them |
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

SEGMENTS: dict[int, tuple[str, str, str, str, str]] = {  # R -> names by FM 1..5
    5: ("New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "At Risk"),
    1: ("Lost", "Lost", "At Risk", "Can't Lose Them", "Can't Lose Them"),
}


@dataclass(frozen=True)
class Order:
    customer: str
    day: date
    amount: float


@dataclass(frozen=True)
class RfmScore:
    customer: str
    recency_days: int
    frequency: int
    monetary: float
    r: int
    f: int
    m: int

    @property
    def fm(self) -> int:
        return (self.f + self.m + 1) // 2  # the average, rounded half up

    @property
    def segment(self) -> str:
        return segment_of(self.r, self.fm)

    @property
    def code(self) -> str:
        """The usual three-digit form, e.g. "545"."""
        return f"{self.r}{self.f}{self.m}"


def segment_of(r: int, fm: int) -> str:
    return SEGMENTS[r][fm - 1]


def score(values: list[float]) -> list[int]:
    """1-5 by quintile, higher values scoring higher; equal values always score the same."""
    ordered = sorted(values)
    n = len(values)
    return [1 + 5 * bisect.bisect_left(ordered, v) // n for v in values]


@dataclass(frozen=True)
class OrderHistory:
    """What RFM needs of one customer's orders: when the last was, how many, how much in all."""

    customer: str
    last_day: date
    count: int
    spent: float


def rfm(orders: Iterable[Order], as_of: date) -> list[RfmScore]:
    """Scores for every customer with at least one order, in customer order."""
    last: dict[str, date] = {}
    count: dict[str, int] = {}
    spent: dict[str, float] = {}
    for order in orders:
        if order.day > as_of:
            raise ValueError(f"an order of {order.customer} on {order.day} is after as_of {as_of}")
        last[order.customer] = max(last.get(order.customer, order.day), order.day)
        count[order.customer] = count.get(order.customer, 0) + 1
        spent[order.customer] = spent.get(order.customer, 0.0) + order.amount
    return rfm_of([OrderHistory(c, last[c], count[c], spent[c]) for c in last], as_of)


def rfm_of(histories: Iterable[OrderHistory], as_of: date) -> list[RfmScore]:
    """Scores from each customer's order history (customers with no order left out), in customer order."""
    ordered = sorted((h for h in histories if h.count > 0), key=lambda h: h.customer)
    for h in ordered:
        if h.last_day > as_of:
            raise ValueError(f"an order of {h.customer} on {h.last_day} is after as_of {as_of}")
    recency = [(as_of - h.last_day).days for h in ordered]
    frequency = [h.count for h in ordered]
    monetary = [round(h.spent, 2) for h in ordered]
    r = score([-days for days in recency])  # fewer days since the last order is better
    f = score([float(x) for x in frequency])
    m = score(monetary)
    return [RfmScore(h.customer, recency[i], frequency[i], monetary[i], r[i], f[i], m[i])
            for i, h in enumerate(ordered)]
