"""For the outbox and delivery tests: a state database with the outbox's migration on either
backend, and a real webhook receiver on a local port that verifies each request's signature,
records what it accepted, can fail the first N requests, answer slowly, and measures how many
requests it had in flight at once."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from persona.activation.outbox import MIGRATIONS
from persona.activation.webhooks import SignatureError, verify
from persona.storage.postgres import PostgresDatabase, PostgresURL
from persona.storage.sql import Database
from persona.storage.sqlite import SQLiteDatabase


def open_state_db(data_dir: Path, store_url: str | None) -> Database:
    """The state store as a process opens it (its own writer and readers), with the outbox's table."""
    if store_url is None:
        return SQLiteDatabase(data_dir / "state.db", MIGRATIONS, synchronous="NORMAL")
    return PostgresDatabase(PostgresURL.parse(store_url), MIGRATIONS, component="state")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    secret: str
    port: int = field(default_factory=free_port)
    fail_first: int = 0          # answer `fail_status` to this many requests first
    fail_status: int = 500
    delay: float = 0.0           # seconds each request takes
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (webhook-id, body) accepted
    requests: int = 0
    bad_signatures: int = 0
    max_concurrent: int = 0
    _concurrent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(msg_id for msg_id, _ in self.received)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.handle(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.requests += 1
            self._concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self._concurrent)
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
        try:
            if self.delay:
                time.sleep(self.delay)
            try:
                verify(self.secret, headers, body)
            except SignatureError:
                with self._lock:
                    self.bad_signatures += 1
                return 401
            if failing:
                return self.fail_status
            with self._lock:
                self.received.append(({k.lower(): v for k, v in headers.items()}["webhook-id"], body))
            return 204
        finally:
            with self._lock:
                self._concurrent -= 1
