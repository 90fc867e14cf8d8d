"""Where the processor runs: a thread of the server, or a child process with its own core.

Python threads share one core for Python code (the GIL), so `persona serve` runs the
processor in a child process by default and ingest and processing each get a core. Either
way one processor per store is guaranteed by a lock its holder's death releases: an OS file
lock on the embedded store, a PostgreSQL session lock on PostgreSQL. After a kill -9 a new
processor waits for the orphan to go.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import IO

from persona.config import Config

log = logging.getLogger(__name__)

LOCK_FILE = "processor.lock"


class FileLock:
    """Exclusive right to write the derived state of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self, timeout: float) -> bool:
        self._file = open(self.path, "a+")  # noqa: SIM115 - held for the life of the processor
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._file.close()
                    self._file = None
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _child_main(config: Config, stop: ProcessEvent, parent_pid: int) -> None:
    from persona.engine import Engine
    from persona.server import tune_gc

    # Ctrl-C reaches the whole process group; the server stops this child through `stop`,
    # after its own shutdown, so that the last commit is not cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    logging.basicConfig(level=config.log_level.upper(), format="processor: %(levelname)s %(message)s")
    with Engine.open(config, "persona processor") as engine:
        processor = engine.processor
        lock = engine.processor_lock()
        while not lock.acquire(timeout=1.0):
            if stop.is_set() or os.getppid() != parent_pid:
                return
        tune_gc()
        try:
            processor.reset()  # position from the checkpoint, now that nobody else writes
            # Appends come from another process, so poll the log when caught up.
            processor.run(_UntilOrphaned(stop, parent_pid), idle=lambda: stop.wait(0.01))
        finally:
            lock.release()


class _UntilOrphaned:
    """The server's stop event, also set in effect when the server has died (kill -9)."""

    def __init__(self, stop: ProcessEvent, parent_pid: int) -> None:
        self.stop = stop
        self.parent_pid = parent_pid

    def is_set(self) -> bool:
        return self.stop.is_set() or os.getppid() != self.parent_pid

    def wait(self, timeout: float | None = None) -> bool:
        return self.stop.wait(timeout)


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
