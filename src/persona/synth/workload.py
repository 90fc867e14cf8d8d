"""`Workload`: a seeded, streaming stream of Segment messages from a synthetic shop.

Ordering and memory
-------------------
Customers are simulated in blocks of `block_size` (default 1,000). All events of one
block are simulated, sorted by timestamp and handed out one by one (each message gets its
timestamp string and `context` only then); only then is the next block simulated. So
messages are time-ordered *within a block*, and the stream as a whole is a sawtooth: each
block replays the whole window (day 0 to day N) for its own customers. That is what keeps
memory bounded by one block (a few tens of MB) however many customers there are, and lets
the first message of a million-customer workload arrive in a fraction of a second.
Sorting uses `list.sort` rather than a `heapq` merge: each customer's events are already
an ordered run (refunds aside), and timsort merges runs in C, stably, so equal timestamps
keep generation order and ties are deterministic too.

Determinism
-----------
Each customer has an RNG seeded from `(seed, index)`, so a given customer's messages
(including their `messageId`s) depend only on the seed, the index, the catalog and the
time window; `block_size` changes only how customers are interleaved.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from persona.synth.catalog import Catalog
from persona.synth.customers import Customer, CustomerPlan, plan_customer
from persona.synth.ids import IsoClock, to_ms
from persona.synth.messages import Record, finish
from persona.synth.session import Shopper

DEFAULT_START = datetime(2026, 9, 1, tzinfo=UTC)
DEFAULT_CATALOG_SIZE = 300
_BY_TIME = itemgetter(0)

Message = dict[str, Any]


class Workload:
    """A reproducible e-commerce workload: same arguments, byte-identical messages."""

    def __init__(self, seed: int = 0, customers: int = 1000, days: int = 60,
                 start: datetime | None = None, catalog: Catalog | None = None,
                 block_size: int = 1000) -> None:
        if customers < 0:
            raise ValueError("customers must be >= 0")
        if days < 1:
            raise ValueError("days must be >= 1")
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        start = start or DEFAULT_START
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.seed = seed
        self.customer_count = customers
        self.days = days
        self.start = start.astimezone(UTC)
        self.end = self.start + timedelta(days=days)
        self.catalog = catalog if catalog is not None else Catalog.generate(seed, DEFAULT_CATALOG_SIZE)
        self.block_size = block_size
        self._start_ms = to_ms(self.start)
        self._end_ms = to_ms(self.end)

    def __repr__(self) -> str:
        return (f"Workload(seed={self.seed}, customers={self.customer_count}, days={self.days}, "
                f"start={self.start.isoformat()}, products={len(self.catalog)})")

    def __iter__(self) -> Iterator[Message]:
        return self.messages()

    # -- ground truth -------------------------------------------------------------------------
    def customers(self) -> Iterator[Customer]:
        """Ground truth for every customer, in the order the generator simulates them."""
        for index in range(self.customer_count):
            yield self._plan(index)[0].customer

    def customer(self, index: int) -> Customer:
        """Ground truth of one customer, without simulating anyone else."""
        self._check_index(index)
        return self._plan(index)[0].customer

    # -- messages -----------------------------------------------------------------------------
    def messages(self) -> Iterator[Message]:
        """Every message, block by block, time-ordered within each block."""
        clock = IsoClock()
        for first in range(0, self.customer_count, self.block_size):
            records = self._simulate(range(first, min(first + self.block_size, self.customer_count)))
            records.reverse()  # pop from the end, so handed-out messages are not kept alive here
            while records:
                yield finish(records.pop(), clock)

    def batches(self, size: int = 100) -> Iterator[list[Message]]:
        """Messages in lists of `size` (the last may be shorter), e.g. for `/v1/batch`."""
        if size < 1:
            raise ValueError("size must be >= 1")
        batch: list[Message] = []
        for msg in self.messages():
            batch.append(msg)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def customer_messages(self, index: int) -> list[Message]:
        """All messages of one customer, time-ordered; identical to those in `messages()`."""
        self._check_index(index)
        clock = IsoClock()
        return [finish(record, clock) for record in self._simulate(range(index, index + 1))]

    # -- internals ------------------------------------------------------------------------------
    def _simulate(self, indexes: range) -> list[Record]:
        """Simulate some customers and return their records sorted by time.

        The cyclic garbage collector is paused meanwhile: a block allocates hundreds of
        thousands of small dicts that all stay alive until handed out, so each collection
        rescans them for nothing (it halves throughput). The simulation creates no
        reference cycles, so reference counting alone frees everything. No caller code runs
        while the collector is off, and it is restored before this returns.
        """
        out: list[Record] = []
        clock = IsoClock()
        paused = gc.isenabled()
        gc.disable()
        try:
            for index in indexes:
                plan, rng = self._plan(index)
                Shopper(plan, rng, self.catalog, clock, out, self._end_ms).run()
        finally:
            if paused:
                gc.enable()
        out.sort(key=_BY_TIME)
        return out

    def _plan(self, index: int) -> tuple[CustomerPlan, random.Random]:
        return plan_customer(self.seed, index, self.catalog, self._start_ms, self._end_ms)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.customer_count:
            raise IndexError(f"customer index {index} out of range 0..{self.customer_count - 1}")
