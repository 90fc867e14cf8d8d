"""Where `persona serve`'s processor runs: a thread of the server, or a child process with its own core.

Python threads share one core for Python code (the GIL), so `persona serve` runs the
processor in a child process by default and ingest and processing each get a core. Either
way it is a worker (`profiles/worker.py`): alone it holds every lease and runs everything;
beside `persona worker` processes it shares the partitions with them. Leases are released
when their holder dies, so after a kill -9 the restarted processor takes them back. Beside
the worker runs the scheduler of jobs over the whole store (`jobs/scheduler.py`), as in
every `persona worker`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.synchronize import Event as ProcessEvent
from typing import TYPE_CHECKING

from persona.config import Config

if TYPE_CHECKING:
    from persona.activation.delivery import Deliverer
    from persona.engine import Engine

log = logging.getLogger(__name__)

def _child_main(config: Config, stop: ProcessEvent, parent_pid: int) -> None:
    from persona.engine import Engine
    from persona.server import tune_gc

    # Ctrl-C reaches the whole process group; the server stops this child through `stop`,
    # after its own shutdown, so that the last commit is not cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    logging.basicConfig(level=config.log_level.upper(), format="processor: %(levelname)s %(message)s")
    with Engine.open(config, "persona processor") as engine:
        tune_gc()
        until = _UntilOrphaned(stop, parent_pid)
        scheduler = engine.scheduler(f"serve-{parent_pid}").start(until)
        deliverer = engine.deliverer()
        if deliverer is not None:
            deliverer.start()
        # Appends come from another process, so the worker polls the log when caught up.
        engine.worker(f"serve-{parent_pid}").run(until)
        if deliverer is not None:
            deliverer.stop()
        scheduler.join(timeout=1.0)  # a job still running finishes in its own process (jobs/builtin.py)


class _UntilOrphaned:
    """The server's stop event, also set in effect when the server has died (kill -9)."""

    def __init__(self, stop: ProcessEvent, parent_pid: int) -> None:
        self.stop = stop
        self.parent_pid = parent_pid

    def is_set(self) -> bool:
        return self.stop.is_set() or os.getppid() != self.parent_pid

    def wait(self, timeout: float | None = None) -> bool:
        return self.stop.wait(timeout)


class ProcessorThread:
    """The worker in a thread of this process (`processor: thread`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: threading.Thread | None = None
        self._deliverer: Deliverer | None = None
        self.worker = engine.worker(f"serve-{os.getpid()}")

    def start(self) -> None:
        log_ = self.engine.log
        self._thread = threading.Thread(
            target=self.worker.run, name="processor", daemon=True,
            args=(self._stop, lambda pause: log_.wait_for_append(log_.last_seq(), timeout=pause)))
        self._thread.start()
        self._scheduler = self.engine.scheduler(self.worker.worker_id).start(self._stop)
        self._deliverer = self.engine.deliverer()
        if self._deliverer is not None:
            self._deliverer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._deliverer is not None:
            self._deliverer.stop()
            self._deliverer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._scheduler is not None:
            self._scheduler.join(timeout=1.0)
            self._scheduler = None


class ProcessorProcess:
    """A supervised child process running the processor; restarted if it dies."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._supervisor: threading.Thread | None = None
        self._running = False
        self.restarts = 0

    def start(self) -> None:
        self._running = True
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="processor-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        self._process = self._ctx.Process(target=_child_main, args=(self.config, self._stop, os.getpid()),
                                          name="persona-processor", daemon=True)
        self._process.start()

    def _supervise(self) -> None:
        while self._running:
            process = self._process
            if process is not None and not process.is_alive() and self._running:
                log.error("processor process exited with code %s; restarting", process.exitcode)
                self.restarts += 1
                time.sleep(1.0)
                if self._running:
                    self._spawn()
            time.sleep(0.2)

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self._running = False
        self._stop.set()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
