"""A worker: runs the processing stages whose leases it holds, sharing them fairly with the others.

The work is the identity stage (one lease) and the fold partitions (one lease each, see
`profiles/processor.py`). Every `BALANCE_EVERY` seconds a worker counts the live members
and aims for its fair share of partitions, ceil(partitions / members): it hands back the
ones over its share (after committing them) and takes free ones up to it; whoever finds
the identity lease free takes it. A worker that dies loses its leases at once (see
`storage/leases.py`), so the others take its partitions at their next balance, and each
resumes from the partition's checkpoint. With one worker, it simply runs everything:
that is the processor `persona serve` starts.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable

from persona.identity.rules import IdentityRules
from persona.log.store import EventLog
from persona.profiles.processor import (
    IDENTITY,
    FoldStage,
    Follower,
    FusedStage,
    IdentityStage,
    ProcessorStats,
    Stage,
    StopSignal,
    fold_name,
    ready_to_fuse,
    record_error,
)
from persona.profiles.store import CheckpointMoved, StateStore
from persona.storage.leases import Leases

log = logging.getLogger(__name__)

BALANCE_EVERY = 1.0   # seconds between looks at membership and free leases
IDLE_MAX = 0.1        # longest sleep when there is nothing to do: bounds how far reads lag
PROGRESS_EVERY = 30.0


class Worker:
    def __init__(self, log_: EventLog, state: StateStore, rules: IdentityRules, leases: Leases, *,
                 batch_size: int = 2000, commit_interval: float = 0.25, partitions: int = 8,
                 followers: dict[str, Callable[[], Follower]] | None = None) -> None:
        self.log = log_
        self.state = state
        self.rules = rules
        self.leases = leases
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        self.partitions = state.partitions(partitions)
        self.stages: dict[str, Stage | Follower] = {}  # by lease name; fused: {identity: the FusedStage, ...}
        self.followers = followers or {}  # stages after the folds, by lease name: taken like identity
        self.fused = False
        self.stats = ProcessorStats()  # events resolved and merges, by this worker's identity stages
        self._folds = [fold_name(p) for p in range(self.partitions)]
        # Each worker tries free partitions in its own order, so that joiners rarely collide.
        self._preference = sorted(self._folds, key=lambda n: zlib.crc32(f"{leases.worker_id}:{n}".encode()))
        self._failed: dict[str, float] = {}  # stage -> when it last failed
        self._all = {IDENTITY, *self._folds}

    @property
    def worker_id(self) -> str:
        return self.leases.worker_id

    def run(self, stop: StopSignal, idle: Callable[[float], object] | None = None) -> None:
        """Work until `stop` is set; `idle(seconds)` waits when there is nothing to do."""
        wait = idle or stop.wait
        self.leases.join()
        log.info("worker %s joined (%s partitions)", self.worker_id, self.partitions)
        progress = _Progress(self)
        next_balance = 0.0
        pause = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_balance:
                    try:
                        self.balance()
                    except Exception:  # the store is unreachable for now: keep what we hold, look again
                        log.warning("worker %s could not balance; retrying", self.worker_id, exc_info=True)
                    next_balance = time.monotonic() + BALANCE_EVERY
                if self.step():
                    pause = 0.0
                else:
                    pause = min(IDLE_MAX, max(0.005, pause * 2))
                    wait(pause)
                progress.maybe_log()
        finally:
            self.shutdown()

    def step(self) -> int:
        """One batch of every stage held; the number of items applied."""
        draining = not self.fused and self._all <= set(self.stages) and not self._failed
        if draining:  # holding everything: empty the queue, then run fused (see FusedStage)
            self.stages[IDENTITY].flush()
        done = 0
        for name, stage in list(self.stages.items()):
            if draining and name == IDENTITY:
                continue
            if time.monotonic() - self._failed.get(name, 0.0) < 1.0:
                continue  # retry a failed stage after a pause
            try:
                done += self._process(stage)
                if name in self._failed:
                    del self._failed[name]
                    record_error(self.state, name, None)
            except CheckpointMoved as exc:  # someone else owns it now: our work there is void
                log.warning("worker %s gave up %s: %s", self.worker_id, name, exc)
                self._drop(name, flush=False)
            except Exception as exc:
                log.exception("worker %s: %s failed at %s; retrying", self.worker_id, name, stage.position)
                self._failed[name] = time.monotonic()
                record_error(self.state, name, exc)
        draining = draining and self._all <= set(self.stages)  # a stage may have been given up meanwhile
        if draining and not done and ready_to_fuse([self.stages[name] for name in self._all], self.state):
            self._fuse()
            return self.step()
        return done

    def _fuse(self) -> None:
        """Holding everything with nothing queued: run both stages as one (see FusedStage)."""
        fused = FusedStage(self.log, self.state, self.rules, self.partitions, batch_size=self.batch_size,
                           commit_interval=self.commit_interval)
        self.stages = {IDENTITY: fused, **{n: s for n, s in self.stages.items() if n in self.followers}}
        self.fused = True
        log.info("worker %s runs every stage: fused them", self.worker_id)

    def _unfuse(self) -> None:
        """Back to a stage per lease, from what the fused stage committed."""
        fused = self.stages.pop(IDENTITY)
        self.fused = False
        try:
            fused.flush()
        except Exception:  # whatever did not commit is redone from the checkpoints
            log.warning("worker %s could not commit before splitting its stages", self.worker_id, exc_info=True)
        for name in sorted(self._all):
            self._take(name)

    def _process(self, stage: Stage | Follower) -> int:
        before = (stage.stats.events, getattr(stage.stats, "merges", 0))
        n = stage.process_batch()
        if isinstance(stage, IdentityStage):
            self.stats.events += stage.stats.events - before[0]
            self.stats.merges += stage.stats.merges - before[1]
        return n

    def balance(self) -> None:
        """Hand back partitions over the fair share, take free ones up to it, take identity if free."""
        if not self.leases.alive():
            log.error("worker %s lost its leases (its session ended); starting over", self.worker_id)
            for name in list(self.stages):
                self._drop(name, flush=False)
            self.leases.join()
        members = self.leases.members()
        share = math.ceil(self.partitions / max(1, len(members)))
        held = [n for n in self._preference if n in self.stages or self.fused]
        if held[share:] and self.fused:
            self._unfuse()
        for name in held[share:]:
            self._drop(name, flush=True)
        if held[share:]:
            log.info("worker %s handed back %s (%s workers)", self.worker_id, _names(held[share:]), len(members))
        taken = []
        for name in [IDENTITY, *self.followers]:
            if name not in self.stages and self.leases.try_acquire(name):
                taken.append(self._take(name))
        count = min(len(held), share)
        for name in self._preference:
            if count >= share:
                break
            if name not in self.stages and self.leases.try_acquire(name):
                taken.append(self._take(name))
                count += 1
        if taken:
            log.info("worker %s took %s (%s workers)", self.worker_id, _names(taken), len(members))

    def held(self) -> str:
        return _names({*self.stages, *(self._all if self.fused else ())}) or "nothing"

    def _take(self, name: str) -> str:
        options = {"batch_size": self.batch_size, "commit_interval": self.commit_interval}
        if name in self.followers:
            self.stages[name] = self.followers[name]()
            return name
        if name == IDENTITY:
            stage: Stage = IdentityStage(self.log, self.state, self.rules, self.partitions, **options)
        else:
            stage = FoldStage(self.log, self.state, int(name.split(":")[1]), **options)
        self.stages[name] = stage
        return name

    def _drop(self, name: str, *, flush: bool) -> None:
        """Stop running a stage and hand its lease back; a fused stage goes with every lease."""
        stage = self.stages.pop(name)
        names = self._all if self.fused and name == IDENTITY else {name}
        self.fused = self.fused and name != IDENTITY
        try:
            if flush:
                stage.flush()
            else:
                stage.abandon()  # let a commit still retrying in the writer finish first
        except Exception:  # whatever did not commit is redone by the next owner
            log.warning("worker %s could not commit %s before handing it back", self.worker_id, name,
                        exc_info=True)
        for lease in names:
            self.leases.release(lease)

    def shutdown(self) -> None:
        """Commit what is done and hand every lease back."""
        held = self.held()
        for name in list(self.stages):
            self._drop(name, flush=True)
        self.leases.close()
        log.info("worker %s stopped; handed back %s", self.worker_id, held)


class _Progress:
    """One log line per interval with work in it: what an operator tails to see it move."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.at = time.monotonic()
        self.events, self.merges = worker.stats.events, worker.stats.merges

    def maybe_log(self) -> None:
        now = time.monotonic()
        stats = self.worker.stats
        if now - self.at < PROGRESS_EVERY or stats.events == self.events:
            return
        events, merges = stats.events - self.events, stats.merges - self.merges
        log.info("applied %s events in %.0f s (%s/s), %s merges; holding %s",
                 f"{events:,}", now - self.at, f"{events / (now - self.at):,.0f}", f"{merges:,}", self.worker.held())
        self.at, self.events, self.merges = now, stats.events, stats.merges


def _names(names: object) -> str:
    """identity, fold:0, fold:2, ...: in that order, however they were gathered."""
    def order(name: str) -> tuple[int, int, str]:
        if name.startswith("fold:"):
            return (1, int(name.split(":")[1]), "")
        return (0 if name == IDENTITY else 2, 0, name)

    return ", ".join(sorted(names, key=order))  # type: ignore[call-overload]
