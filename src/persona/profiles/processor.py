"""The stream processor: consumes the log in order and keeps profiles current, in two stages.

1. **Identity** (one at a time, in log order): resolves each event's identifiers to a
   profile, creating and merging identity records, and assigns the event to that profile
   id. Identity rules with limits depend on order, so this stage is never split.
2. **Fold** (split into partitions by profile id): folds each assigned event into the
   fragment of the profile it was assigned to, and writes its timeline entry.

What an event does to a profile is commutative (latest-version traits, sums, unions), so a
profile read as its fragments combined is the same whatever order the partitions ran in:
several workers end in exactly the state one process replaying the log produces. A process
that runs every stage (one worker alone, `persona rebuild`) fuses them (`FusedStage`):
same state, without the queue in between.

Each stage accumulates changes for `commit_interval` seconds and commits them with its
checkpoint in one transaction, compare-and-set (see `profiles/store.py`), so a crash loses
only uncommitted work, redone from the checkpoint, and a stage that lost its lease to
another worker cannot commit. A stage caches what it wrote (the identity graph, fragments);
that is valid only while it is the stage's one writer, and is dropped after any failure.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from persona.identity.graph import BatchGraph, GraphCache
from persona.identity.rules import IdentityRules
from persona.log.events import Event
from persona.log.store import EventLog
from persona.profiles.profile import Profile, apply_event
from persona.profiles.store import IDENTITY, StateChanges, StateStore
from persona.profiles.view import body_decoder, decode_partial

log = logging.getLogger(__name__)

def fold_name(partition: int) -> str:
    return f"fold:{partition}"


def partition_of(profile_id: str, partitions: int) -> int:
    """The fold partition that owns a profile id: stable across processes and versions."""
    return zlib.crc32(profile_id.encode()) % partitions


@dataclass
class ProcessorStats:
    events: int = 0
    unattributed: int = 0
    merges: int = 0


class Stage:
    """Batches of work committed with a checkpoint: the part both stages share."""

    name: str

    def __init__(self, state: StateStore, *, batch_size: int, commit_interval: float,
                 max_uncommitted: int = 50_000) -> None:
        self.state = state
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        self.max_uncommitted = max_uncommitted
        self.stats = ProcessorStats()
        self._open = StateChanges()
        self._open_events = 0
        self._open_through = 0
        self._opened_at = time.monotonic()
        self._pending: tuple[Future[None], int] | None = None
        self.position = state.checkpoint(self.name)  # committed
        self._read_position = self.position          # read and applied, maybe still committing

    def process_batch(self) -> int:
        """Read and apply the next batch in memory; commit when the interval is up. 0: caught up."""
        try:
            applied, last = self._apply_next(self._open)
            if not applied:
                self.flush()
                return 0
            self._open_through = last
            self._open_events += applied
            if (self._open_events >= self.max_uncommitted
                    or time.monotonic() - self._opened_at >= self.commit_interval):
                self._commit_open()
        except BaseException:
            self.abandon()
            raise
        self._read_position = last
        self.stats.events += applied
        return applied

    @property
    def settled(self) -> bool:
        """Nothing applied that is not committed."""
        return self._pending is None and not self._open_events

    def _apply_next(self, changes: StateChanges) -> tuple[int, int]:
        """Apply the next batch after `_read_position` into `changes`: (items applied, last seq)."""
        raise NotImplementedError

    def _before_commit(self, changes: StateChanges, committed: int, through: int) -> None:
        """Anything else the commit of (committed, through] must write."""

    def _commit_open(self) -> None:
        """Hand the open changes to the writer (after the previous commit has landed)."""
        self._wait_pending()
        if self._open_events:
            # Compare-and-set against what the last commit left.
            self._open.checkpoints[self.name] = (self.position, self._open_through)
            self._before_commit(self._open, self.position, self._open_through)
            self._pending = (self.state.commit_async(self._open), self._open_through)
        self._open = StateChanges()
        self._open_events = 0
        self._opened_at = time.monotonic()

    def flush(self) -> None:
        """Commit everything applied so far and wait until it is on disk."""
        try:
            self._commit_open()
            self._wait_pending()
        except BaseException:
            self.abandon()
            raise

    def _wait_pending(self) -> None:
        if self._pending is None:
            return
        future, checkpoint = self._pending
        self._pending = None
        future.result()
        self.position = checkpoint
        self._landed(checkpoint)
        self._trim()  # only with nothing in flight: every key being written is cached

    def _landed(self, through: int) -> None:
        """A commit through `through` is on disk."""

    def _trim(self) -> None: ...

    def abandon(self) -> None:
        """After a failure: forget everything not committed and resume from the checkpoint.

        A commit still in the writer's hands (retrying over a lost connection) is waited for
        first, so that the checkpoint read afterwards is the one it leaves."""
        if self._pending is not None:
            with contextlib.suppress(Exception):
                self._pending[0].result()
        self._pending = None
        self._open = StateChanges()
        self._open_events = 0
        self._forget()
        self.position = self._read_position = self.state.checkpoint(self.name)

    def _forget(self) -> None:
        """Drop caches: they may hold uncommitted changes, or another worker's are newer."""

    def lag(self) -> int:
        raise NotImplementedError


class IdentityStage(Stage):
    """Resolves events to profiles in log order and assigns each to its profile's partition."""

    name = IDENTITY

    def __init__(self, log_: EventLog, state: StateStore, rules: IdentityRules, partitions: int, *,
                 batch_size: int, commit_interval: float) -> None:
        super().__init__(state, batch_size=batch_size, commit_interval=commit_interval)
        self.log = log_
        self.rules = rules
        self.partitions = partitions
        self.cache = GraphCache()
        self._decode = body_decoder(rules)

    def _apply_next(self, changes: StateChanges) -> tuple[int, int]:
        events = self.log.read(self._read_position, self.batch_size, self._decode)
        if not events:
            return 0, self._read_position
        graph = BatchGraph(self.rules, self.state, events, self.cache, changes)
        for event in events:
            profile = graph.resolve(event)
            if profile is not None:
                changes.assignments.append((event.seq, partition_of(profile.id, self.partitions), profile.id))
        self.stats.unattributed += graph.unattributed
        self.stats.merges += len(graph.merges)
        return len(events), events[-1].seq

    def _trim(self) -> None:
        self.cache.trim()

    def _forget(self) -> None:
        self.cache.clear()

    def lag(self) -> int:
        return max(0, self.log.last_seq() - self.position)


class FoldStage(Stage):
    """Folds the events assigned to one partition into their profiles' fragments."""

    def __init__(self, log_: EventLog, state: StateStore, partition: int, *, batch_size: int,
                 commit_interval: float, max_cached: int = 100_000) -> None:
        self.name = fold_name(partition)
        self.partition = partition
        super().__init__(state, batch_size=batch_size, commit_interval=commit_interval)
        self.log = log_
        self.max_cached = max_cached
        self.fragments: dict[str, Profile] = {}

    def _apply_next(self, changes: StateChanges) -> tuple[int, int]:
        assigned = self.state.assignments(self.partition, self._read_position, self.batch_size)
        if not assigned:
            return 0, self._read_position
        events = {e.seq: e for e in self.log.get([seq for seq, _ in assigned], decode_partial)}
        fold(self.state, self.fragments, [(events[seq], pid) for seq, pid in assigned if seq in events], changes)
        return len(assigned), assigned[-1][0]  # erased events are missing: skipped

    def _before_commit(self, changes: StateChanges, committed: int, through: int) -> None:
        changes.folded.append((self.partition, committed, through))  # the queue entries now done

    def _trim(self) -> None:
        trim_cache(self.fragments, self.max_cached)

    def _forget(self) -> None:
        self.fragments.clear()

    def lag(self) -> int:
        return self.state.pending(self.partition, self.position)


def fold(state: StateStore, fragments: dict[str, Profile], assigned: list[tuple[Event, str]],
         changes: StateChanges) -> None:
    """Fold events into the fragments of the profile ids they were assigned to (`fragments` caches them)."""
    missing = {pid for _, pid in assigned} - fragments.keys()
    if missing:
        fragments.update(state.fragments(missing))
    for event, pid in assigned:
        fragment = fragments.get(pid)
        if fragment is None:
            fragment = fragments[pid] = Profile.new(pid, event)
        apply_event(fragment, event)
        changes.fragments[pid] = fragment
        changes.timeline.append((pid, event.timestamp, event.seq))


class FusedStage(IdentityStage):
    """Both stages at once, for a process that holds every lease: no queue in between.

    It resolves a batch and folds it straight away, and commits the identity checkpoint
    and every partition's together, so the state is the one the separate stages would
    leave; it only saves writing, reading back and deleting the assignments, and reading
    the events twice. Used only from an empty queue (`ready_to_fuse`)."""

    def __init__(self, log_: EventLog, state: StateStore, rules: IdentityRules, partitions: int, *,
                 batch_size: int, commit_interval: float, max_cached: int = 100_000) -> None:
        super().__init__(log_, state, rules, partitions, batch_size=batch_size, commit_interval=commit_interval)
        self.folded = {fold_name(p): state.checkpoint(fold_name(p)) for p in range(partitions)}
        self.fragments: dict[str, Profile] = {}
        self.max_cached = max_cached

    def _apply_next(self, changes: StateChanges) -> tuple[int, int]:
        events = self.log.read(self._read_position, self.batch_size, self._decode)
        if not events:
            return 0, self._read_position
        graph = BatchGraph(self.rules, self.state, events, self.cache, changes)
        assigned = [(event, profile.id) for event in events if (profile := graph.resolve(event)) is not None]
        fold(self.state, self.fragments, assigned, changes)
        self.stats.unattributed += graph.unattributed
        self.stats.merges += len(graph.merges)
        return len(events), events[-1].seq

    def _before_commit(self, changes: StateChanges, committed: int, through: int) -> None:
        for name, position in self.folded.items():
            changes.checkpoints[name] = (position, through)

    def _landed(self, through: int) -> None:
        self.folded = dict.fromkeys(self.folded, through)

    def _trim(self) -> None:
        super()._trim()
        trim_cache(self.fragments, self.max_cached)

    def _forget(self) -> None:
        super()._forget()
        self.fragments.clear()
        self.folded = {name: self.state.checkpoint(name) for name in self.folded}

    def lag(self) -> int:
        return super().lag() + self.state.pending_total()


def ready_to_fuse(stages: list[Stage], state: StateStore) -> bool:
    """All stages flushed and caught up, and nothing waiting in the assignments queue."""
    return all(stage.settled for stage in stages) and state.pending_total() == 0


def trim_cache(cache: dict[str, Any], budget: int) -> None:
    """Forget the oldest entries once over budget (dicts keep insertion order)."""
    excess = len(cache) - budget
    if excess > 0:
        for key in list(itertools.islice(cache, excess + budget // 4)):
            del cache[key]


class Follower(Protocol):
    """A stage that follows the folds with a lease of its own (the audience stage)."""

    name: str
    position: int
    stats: ProcessorStats

    def process_batch(self) -> int: ...
    def flush(self) -> None: ...
    def abandon(self) -> None: ...
    def lag(self) -> int: ...


class Processor:
    """Both stages, every partition, in one loop, without leases: `persona rebuild` and tests.

    It fuses the stages (`FusedStage`) as soon as the assignments queue is empty, unless
    `fuse` is False; `followers` makes the stages that follow the folds (see `Follower`).
    Running processes use `profiles/worker.py`, which takes leases."""

    def __init__(self, log_: EventLog, state: StateStore, rules: IdentityRules, *, batch_size: int = 2000,
                 commit_interval: float = 0.25, partitions: int = 8, fuse: bool = True,
                 followers: Callable[[], list[Follower]] = list) -> None:
        self.log = log_
        self.state = state
        self.rules = rules
        self._batch_size = batch_size
        self._commit_interval = commit_interval
        self.default_partitions = partitions
        self.fuse = fuse
        self._make_followers = followers
        self._build_stages()

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = value
        for stage in self.stages:
            stage.batch_size = value

    @property
    def commit_interval(self) -> float:
        return self._commit_interval

    @commit_interval.setter
    def commit_interval(self, value: float) -> None:
        self._commit_interval = value
        for stage in self.stages:
            stage.commit_interval = value

    def _build_stages(self) -> None:
        self.partitions = self.state.partitions(self.default_partitions)
        options = {"batch_size": self._batch_size, "commit_interval": self._commit_interval}
        self.identity = IdentityStage(self.log, self.state, self.rules, self.partitions, **options)
        self.folds = [FoldStage(self.log, self.state, p, **options) for p in range(self.partitions)]
        self.fused: FusedStage | None = None
        self.followers = self._make_followers()

    def _maybe_fuse(self) -> bool:
        if self.fuse and self.fused is None and ready_to_fuse(self.stages, self.state):
            self.fused = FusedStage(self.log, self.state, self.rules, self.partitions, batch_size=self._batch_size,
                                    commit_interval=self._commit_interval)
        return self.fused is not None

    @property
    def stages(self) -> list[Stage]:
        return [self.fused] if self.fused is not None else [self.identity, *self.folds]

    @property
    def stats(self) -> ProcessorStats:
        return self.stages[0].stats  # events resolved, merges: what progress is measured in

    @property
    def position(self) -> int:
        return self.stages[0].position

    def process_batch(self) -> int:
        """One batch of each stage; the number of items they applied (0: all caught up)."""
        return self._step()[1]

    def _step(self) -> tuple[int, int]:
        """(events resolved, items applied) by one batch of each stage."""
        if self.fused is None and not self._maybe_fuse():
            resolved = self.identity.process_batch()
            applied = resolved + sum(fold.process_batch() for fold in self.folds)
        else:
            assert self.fused is not None
            resolved = applied = self.fused.process_batch()
        return resolved, applied + sum(follower.process_batch() for follower in self.followers)

    def flush(self) -> None:
        for stage in [*self.stages, *self.followers]:
            stage.flush()

    def run_until_caught_up(self, progress: Callable[[int], object] | None = None) -> int:
        """Apply everything in the log now; `progress` gets the events resolved so far. Returns that count."""
        total = 0
        while True:
            resolved, applied = self._step()
            if not applied:
                break
            total += resolved
            if progress is not None and resolved:
                progress(total)
        self.flush()
        return total

    def reset(self) -> None:
        """Forget positions and caches: after the state was emptied for a replay, or a restart."""
        self.flush()
        self._build_stages()

    def lag(self) -> int:
        """Events not yet resolved plus assigned events not yet folded."""
        following = sum(follower.lag() for follower in self.followers)
        if self.fused is not None:
            return self.fused.lag() + following
        return self.identity.lag() + sum(fold.lag() for fold in self.folds) + following


def record_error(state: StateStore, name: str, error: Exception | None) -> None:
    """Keep a processor's or worker's last failure in the store, for status; None clears it."""
    try:
        state.record_error(name, None if error is None else f"{type(error).__name__}: {error}")
    except Exception:  # the store may be what failed; the log has the error either way
        log.warning("could not record the processor's state in the store", exc_info=True)


class StopSignal(Protocol):
    """A threading or multiprocessing Event, or anything that answers like one."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
