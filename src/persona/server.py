"""Run the HTTP API and the processor together: what `persona serve` and `persona demo` start."""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import uvicorn

from persona.access.keys import KeyKind
from persona.api import create_app
from persona.config import Config
from persona.engine import DEFAULT_SOURCE, Engine
from persona.errors import ConfigError, PersonaError
from persona.profiles.runner import ProcessorProcess, ProcessorThread

log = logging.getLogger(__name__)


def first_run_keys(engine: Engine) -> dict[str, str]:
    """On a store with no keys at all, create a write key and a secret key and return them once."""
    if engine.keys.list_keys():
        return {}
    return {
        "write_key": engine.keys.create_key(KeyKind.WRITE, "first run", DEFAULT_SOURCE),
        "secret_key": engine.keys.create_key(KeyKind.SECRET, "first run"),
    }


def tune_gc() -> None:
    """Garbage collection for a long-running process that decodes thousands of objects a request.

    Whatever is alive once started (modules, the app) is frozen out of the collector's scans,
    and collections run every 50,000 allocations instead of 700: the decoded messages are
    freed by reference counting anyway, and the default cadence cost ~10% of ingest CPU.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


# Hand the GIL between threads every 1 ms instead of 5: the event loop, the SQLite writer
# and reads take turns often, and tail latency of reads matters more than a little throughput.
SWITCH_INTERVAL = 0.001


class _Uvicorn(uvicorn.Server):
    """uvicorn that takes Ctrl-C or SIGTERM as "shut down gracefully", and that is all.

    Stock uvicorn raises the signal again once it has shut down, so that the default
    handler runs; here that only printed KeyboardInterrupt tracebacks over a clean stop.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts, so a busy port is a clear error."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port",
                          field="port") from None
    return sock


class Server:
    """An engine with its processor running and uvicorn serving its app."""

    def __init__(self, config: Config) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.socket = listen(config.host, config.port)
        config = config.with_overrides(port=self.socket.getsockname()[1])  # port 0: the one the OS chose
        self.config = config
        self.engine = Engine.open(config)
        self.created_keys = first_run_keys(self.engine)
        if config.definitions is not None:
            self.apply_definitions(config.definitions)
        self.app = create_app(self.engine)
        self.uvicorn = _Uvicorn(uvicorn.Config(
            self.app, host=config.host, port=config.port, log_level=config.log_level.lower(),
            access_log=False, server_header=False, timeout_graceful_shutdown=5,
        ))
        self._thread: threading.Thread | None = None
        self._child: ProcessorProcess | ProcessorThread | None = None

    def apply_definitions(self, path: Path) -> None:
        """On start: a file that does not apply stops the server before it serves anything."""
        try:
            self._apply(path)
        except BaseException:
            self.engine.close()
            self.socket.close()
            raise

    def reload(self) -> None:
        """On SIGHUP: apply the definitions file again and read the placements file again; a file
        that does not apply is logged and what was running stays."""
        definitions, placements = self.config.definitions, self.config.placements
        if definitions is None and placements is None:
            log.warning("SIGHUP: no definitions or placements file is configured; nothing to reload")
        if definitions is not None:
            try:
                self._apply(definitions)
            except (PersonaError, OSError) as exc:
                log.error("definitions from %s not applied: %s", definitions, getattr(exc, "message", exc))
        if placements is not None:
            from persona.recommend.placements import read_placements_file

            try:
                applied = self.engine.placement_store.apply(read_placements_file(placements))
            except PersonaError as exc:
                log.error("placements from %s not applied: %s (at %s)", placements, exc.message, exc.field)
            else:
                log.info("placements from %s: %s", placements,
                         ", ".join(f"{len(names)} {what}" for what, names in applied.items() if what != "deleted"))

    def _apply(self, path: Path) -> None:
        from persona.segments.store import read_definitions_file

        applied = self.engine.definitions.apply(read_definitions_file(path))
        log.info("definitions from %s: %s created, %s updated, %s unchanged", path, len(applied.created),
                 len(applied.updated), len(applied.unchanged))

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start_processor(self) -> None:
        mode = self.config.processor
        if mode == "thread":
            self._child = ProcessorThread(self.engine)
            self._child.start()
        elif mode == "process":
            self._child = ProcessorProcess(self.config)
            self._child.start()
        log.info("processor mode: %s", mode)

    def stop_processor(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None

    def run(self) -> None:
        """Serve in the foreground until interrupted."""
        self.start_processor()
        tune_gc()
        # Reloading writes to the store: off the signal handler, which interrupts the event loop.
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self.reload, name="reload").start())
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.stop_processor()
            self.engine.close()
            self.socket.close()

    def start_in_thread(self, timeout: float = 15.0) -> None:
        self.start_processor()
        self._thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.socket]}, name="uvicorn",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.stop_processor()
        self.engine.close()
        self.socket.close()
