"""Run jobs over the whole store (RFM, personas) every so often, once, whichever runner gets there.

Every processing runner (`persona serve`'s processor, each `persona worker`) runs a
`Scheduler` in a thread of its own. A job is due when its last start is `every` seconds old
(or, after a failure, `RETRY_AFTER_ERROR` seconds, if that is sooner). Runners that find it
due race to claim it: the claim moves the job's recorded start compare-and-set from the
value they read (`JobStore.claim`), so exactly one of them runs it, and nobody runs it again
before the interval. A runner that dies mid-run leaves the start in place, so the job waits
for its next turn; no lease has to be kept alive for however long the job takes.

A job may also name what it waits for (`Job.wait`, asked only once it is due): the
recommendation training waits for product events and for processing to keep up, so a fresh
store costs nothing and a burst of ingest is not trained on halfway. Until then it is not
claimed, so nothing is recorded; the reason is logged when it changes, and status shows it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from persona.jobs.store import JobRecord, JobStore, now_us

log = logging.getLogger(__name__)

POLL_EVERY = 5.0            # seconds between looks at what is due (at most: jobs due more often are looked at so)
RETRY_AFTER_ERROR = 300.0   # seconds before a failed job is tried again (its interval, if shorter)


class StopSignal(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Job:
    name: str
    every: float             # seconds between runs
    run: Callable[[], str]   # does the work; returns what to log, e.g. "1,234 customers scored; Champions 210"
    wait: Callable[[], str | None] | None = None  # why a due job must not start yet (None: it may); cheap


def next_due(job: Job, record: JobRecord | None) -> int:
    """When the job is due (µs): at once if it never ran."""
    if record is None:
        return 0
    due = record.started_at + int(job.every * 1e6)
    if record.error is not None and record.finished_at is not None:
        due = min(due, record.finished_at + int(RETRY_AFTER_ERROR * 1e6))
    return due


class Scheduler:
    def __init__(self, jobs: list[Job], records: JobStore, runner: str,
                 clock: Callable[[], int] = now_us) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.records = records
        self.runner = runner
        self.clock = clock
        self._waiting: dict[str, str | None] = {}  # what each job last waited for: logged when it changes

    def run_due(self) -> list[str]:
        """Run every job that is due and that this runner claims; the names of those run."""
        ran = []
        for job in self.jobs.values():
            record = self.records.get(job.name)
            now = self.clock()
            if now < next_due(job, record) or self._must_wait(job):
                continue
            if not self.records.claim(job.name, record.started_at if record else None, self.runner, now):
                continue  # another runner has it
            self._run(job, now)
            ran.append(job.name)
        return ran

    def _must_wait(self, job: Job) -> bool:
        why = job.wait() if job.wait is not None else None
        if why != self._waiting.get(job.name):
            if why is not None:
                log.info("%s is due but waits: %s", job.name, why)
            self._waiting[job.name] = why
        return why is not None

    def _run(self, job: Job, started_at: int) -> None:
        began = time.monotonic()
        summary, error = None, None
        try:
            summary = job.run()
        except Exception as exc:
            log.exception("%s failed; next try in at most %.0f s", job.name, min(job.every, RETRY_AFTER_ERROR))
            error = f"{type(exc).__name__}: {exc}"
        duration = time.monotonic() - began
        if summary is not None:
            log.info("%s: %s in %.1f s", job.name, summary, duration)
        self.records.finish(job.name, started_at, at=self.clock(), duration=duration, summary=summary, error=error)

    def run(self, stop: StopSignal, poll: float | None = None) -> None:
        """Look for due jobs every `poll` seconds until `stop` is set."""
        if poll is None:
            poll = min([POLL_EVERY, *(job.every for job in self.jobs.values())])
        while not stop.is_set():
            try:
                self.run_due()
            except Exception:  # the store is unreachable for now: look again later
                log.warning("scheduler %s could not run its jobs; retrying", self.runner, exc_info=True)
            stop.wait(poll)

    def start(self, stop: StopSignal, poll: float | None = None) -> threading.Thread:
        """`run` in a daemon thread: jobs take long, and processing must not wait for them."""
        thread = threading.Thread(target=self.run, args=(stop, poll), name="scheduler", daemon=True)
        thread.start()
        return thread
