"""The CDNOW sample of Fader, Hardie & Lee (2005): 2,357 customers who first bought in the first
quarter of 1997, their transactions through June 1998, as the `lifetimes` wheel ships them
(read as a file: importing `lifetimes` would pull in pandas). Split as in the paper: a 39-week
calibration period (to 1997-09-30) and a 39-week holdout."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np

from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event

CALIBRATION_END = date(1997, 9, 30)  # the last day of week 39
HOLDOUT_END = date(1998, 6, 30)      # the last day of week 78
WEEK = 7.0


@dataclass(frozen=True)
class Cdnow:
    ids: np.ndarray          # the sample's customer ids, 1 to 2,357
    x: np.ndarray            # repeat purchases (days with a purchase after the first) in calibration
    t_x: np.ndarray          # weeks from the first purchase to the last one in calibration
    T: np.ndarray            # weeks from the first purchase to the end of calibration
    m: np.ndarray            # the average value of the calibration's repeat purchases (0 if none)
    holdout_x: np.ndarray    # purchases in the holdout
    holdout_spend: np.ndarray  # dollars spent in the holdout
    transactions: list[tuple[int, date, float]]  # (customer, day, dollars): one per customer and day


def datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations, "the lifetimes wheel (a dev dependency) ships the data"
    return Path(spec.submodule_search_locations[0]) / "datasets"


def cdnow_sample() -> Cdnow:
    """One transaction per customer and day (lines on the same day summed), as the paper counts."""
    daily: dict[tuple[int, date], float] = {}
    for line in (datasets() / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, dollars = line.split()
        key = (int(customer), datetime.strptime(day, "%Y%m%d").date())
        daily[key] = daily.get(key, 0.0) + float(dollars)
    by_customer: dict[int, list[tuple[date, float]]] = {}
    for (customer, day), dollars in sorted(daily.items()):
        by_customer.setdefault(customer, []).append((day, dollars))
    ids = sorted(by_customer)
    x, t_x, T, m, holdout_x, holdout_spend = (np.zeros(len(ids)) for _ in range(6))
    for i, customer in enumerate(ids):
        days = by_customer[customer]
        first = days[0][0]
        calibration = [(d, v) for d, v in days if d <= CALIBRATION_END]
        holdout = [(d, v) for d, v in days if CALIBRATION_END < d <= HOLDOUT_END]
        repeat = calibration[1:]
        x[i] = len(repeat)
        t_x[i] = (calibration[-1][0] - first).days / WEEK
        T[i] = (CALIBRATION_END - first).days / WEEK
        m[i] = sum(v for _, v in repeat) / len(repeat) if repeat else 0.0
        holdout_x[i] = len(holdout)
        holdout_spend[i] = sum(v for _, v in holdout)
    transactions = [(customer, day, dollars) for (customer, day), dollars in sorted(daily.items())]
    return Cdnow(np.asarray(ids), x, t_x, T, m, holdout_x, holdout_spend, transactions)


def cdnow_events(until: date | None = None) -> list[Event]:
    """One `Order Completed` per customer and day (through `until`), at midnight UTC, user `c<id>`."""
    events = []
    for customer, day, dollars in cdnow_sample().transactions:
        if until is not None and day > until:
            continue
        at = datetime.combine(day, time(), UTC)
        body = {"type": "track", "userId": f"c{customer}", "event": "Order Completed",
                "properties": {"revenue": dollars}, "messageId": f"cdnow-{customer}-{day}", "timestamp": at.isoformat()}
        event = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
        assert isinstance(event, Event)
        events.append(event)
    return events
