"""The stream processor: consumes the log in order and keeps profiles current.

Each batch is read after the checkpoint, resolved and folded into profiles in memory, and
committed together with the new checkpoint in one transaction, so a restart resumes
exactly where the last commit stopped and no event is ever applied twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from persona.errors import StoreError
from persona.identity.graph import BatchGraph, GraphCache
from persona.identity.rules import IdentityRules
from persona.log.store import EventLog
from persona.profiles.profile import apply_event
from persona.profiles.store import StateChanges, StateStore
from persona.profiles.view import body_decoder

log = logging.getLogger(__name__)

CHECKPOINT = "profiles"


@dataclass
class ProcessorStats:
    batches: int = 0
    events: int = 0
    unattributed: int = 0
    merges: int = 0
    last_batch_ms: float = 0.0


class Processor:
    def __init__(self, log_: EventLog, state: StateStore, rules: IdentityRules, *, batch_size: int = 2000,
                 commit_interval: float = 0.25, max_uncommitted: int = 50_000) -> None:
        self.log = log_
        self.state = state
        self.rules = rules
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        self.max_uncommitted = max_uncommitted
        self._open = StateChanges()
        self._open_events = 0
        self._opened_at = time.monotonic()
        self.stats = ProcessorStats()
        self.position = state.checkpoint(CHECKPOINT)  # committed
        self._read_position = self.position           # read and resolved, maybe still committing
        self._pending: tuple[Future[None], int] | None = None
        self.cache = GraphCache()
        self._decode = body_decoder(rules)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock: ProcessorLock | None = None
        self.error: Exception | None = None

    def process_batch(self) -> int:
        """Resolve and apply the next batch of events in memory.

        Changes accumulate until `commit_interval` has passed (or `max_uncommitted` events),
        then go to the state writer with the checkpoint in one transaction, in the
        background while the next batches are resolved. A profile touched many times in
        that window is written once. Returns the number of events read (0: caught up).
        """
        started = time.perf_counter()
        events = self.log.read(self._read_position, self.batch_size, self._decode)
        if not events:
            self.flush()
            return 0
        try:
            changes = self._open
            graph = BatchGraph(self.rules, self.state, events, self.cache, changes)
            for event in events:
                profile = graph.resolve(event)
                if profile is not None:
                    apply_event(profile, event)
                    changes.timeline.append((profile.id, event.timestamp, event.seq))
            changes.checkpoint = events[-1].seq
            self._open_events += len(events)
            if (self._open_events >= self.max_uncommitted
                    or time.monotonic() - self._opened_at >= self.commit_interval):
                self._commit_open()
        except BaseException:
            self._abandon()
            raise
        self._read_position = events[-1].seq
        self.stats.batches += 1
        self.stats.events += len(events)
        self.stats.unattributed += graph.unattributed
        self.stats.merges += len(graph.merges)
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        return len(events)

    def _commit_open(self) -> None:
        """Hand the open changes to the writer (after the previous commit has landed)."""
        self._wait_pending()
        if self._open_events:
            self._pending = (self.state.commit_async(CHECKPOINT, self._open), self._open.checkpoint)
        self._open = StateChanges()
        self._open_events = 0
        self._opened_at = time.monotonic()

    def flush(self) -> None:
        """Commit everything resolved so far and wait until it is on disk."""
        try:
            self._commit_open()
            self._wait_pending()
        except BaseException:
            self._abandon()
            raise

    def _wait_pending(self) -> None:
        if self._pending is None:
            return
        future, checkpoint = self._pending
        self._pending = None
        future.result()
        self.position = checkpoint
        self.cache.trim()  # only with nothing in flight: every key being written is cached

    def _abandon(self) -> None:
        """After a failure: forget everything not committed and resume from the checkpoint."""
        self._pending = None
        self._open = StateChanges()
        self._open_events = 0
        self.cache.clear()  # cached profiles may hold uncommitted changes
        self.position = self._read_position = self.state.checkpoint(CHECKPOINT)

    def run_until_caught_up(self, progress: Callable[[int], object] | None = None) -> int:
        """Apply everything in the log now; `progress` gets the events applied so far."""
        total = 0
        while n := self.process_batch():
            total += n
            if progress is not None:
                progress(total)
        self.flush()
        return total

    def reset(self) -> None:
        """Forget position and cache: the state store has been emptied for a replay."""
        self.flush()
        self.cache.clear()
        self.position = self._read_position = self.state.checkpoint(CHECKPOINT)

    def lag(self) -> int:
        return max(0, self.log.last_seq() - self.position)

    # -- background thread ---------------------------------------------------------------------
    def start(self, lock: ProcessorLock) -> None:
        """Run in a thread of this process, holding `lock` (one processor per store)."""
        if not lock.acquire(timeout=30):
            raise StoreError("another processor holds this store")
        self._lock = lock
        self.reset()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="processor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _loop(self) -> None:
        self.run(self._stop, idle=lambda: self.log.wait_for_append(self.position, timeout=0.5))

    def run(self, stop: StopSignal, idle: Callable[[], object]) -> None:
        """Process until `stop` is set, calling `idle` whenever caught up; then commit.

        A failed batch is retried every second from the checkpoint; the error is recorded in
        the state store, where `persona status` shows it whichever process runs this loop,
        and cleared once a batch goes through again. Progress is logged every
        `PROGRESS_EVERY` seconds in which events were applied."""
        progress = _Progress(self.stats)
        while not stop.is_set():
            try:
                if self.process_batch() == 0:
                    idle()
                elif self.error is not None:
                    self._report(None)
                progress.maybe_log(self.lag)
            except Exception as exc:  # keep serving reads; report and retry after a pause
                log.exception("processor batch failed at seq %s; retrying", self.position)
                self._report(exc)
                stop.wait(1.0)
        try:
            self.flush()
        except Exception:
            log.exception("final processor commit failed; the next start redoes it from the checkpoint")

    def _report(self, error: Exception | None) -> None:
        self.error = error
        try:
            self.state.record_error(CHECKPOINT, None if error is None else f"{type(error).__name__}: {error}")
        except Exception:  # the store may be what failed; the log has the error either way
            log.warning("could not record the processor's state in the store", exc_info=True)


PROGRESS_EVERY = 30.0


class _Progress:
    """One log line per interval with work in it: what an operator tails to see it move."""

    def __init__(self, stats: ProcessorStats) -> None:
        self.stats = stats
        self.at = time.monotonic()
        self.events, self.merges = stats.events, stats.merges

    def maybe_log(self, lag: Callable[[], int]) -> None:
        now = time.monotonic()
        if now - self.at < PROGRESS_EVERY or self.stats.events == self.events:
            return
        events, merges = self.stats.events - self.events, self.stats.merges - self.merges
        log.info("applied %s events in %.0f s (%s/s), %s merges; lag %s",
                 f"{events:,}", now - self.at, f"{events / (now - self.at):,.0f}", f"{merges:,}", f"{lag():,}")
        self.at, self.events, self.merges = now, self.stats.events, self.stats.merges


class ProcessorLock(Protocol):
    """The right to be the one processor of a store (a file lock, a PostgreSQL session lock)."""

    def acquire(self, timeout: float) -> bool: ...
    def release(self) -> None: ...


class StopSignal(Protocol):
    """A threading or multiprocessing Event, or anything that answers like one."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
