"""Start and stop a real `persona serve` process on a free port, for socket-level tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

# What every server and worker a test starts has in its environment (a test's extra_env overrides
# it): no recommendation training on a schedule, since its child process would take a core from
# tests that time things; tests/jobs/test_recs.py turns it on where that is what is tested.
TEST_ENV = {"PERSONA_RECS_RETRAIN": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    port: int
    write_key: str
    secret_key: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up."""
        self.process.kill()
        self.process.wait()

    def reader(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.secret_key}"}, timeout=30)

    def wait_processed(self, timeout: float = 60) -> dict:
        """Wait until the processor has applied everything in the log."""
        deadline = time.monotonic() + timeout
        with self.reader() as client:
            while True:
                status = client.get("/v1/status").json()
                if status["processor"]["lag"] == 0:
                    return status
                if time.monotonic() > deadline:
                    raise TimeoutError(f"processor still lagging: {status}")
                time.sleep(0.05)


def start_server(data_dir: Path, write_key: str, secret_key: str, port: int | None = None,
                 extra_env: dict[str, str] | None = None, args: list[str] | None = None) -> LiveServer:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **TEST_ENV, "PERSONA_WRITE_KEY": write_key, "PERSONA_SECRET_KEY": secret_key,
           "PERSONA_LOG_LEVEL": "WARNING", **(extra_env or {})}
    log_path = data_dir / f"server-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "persona", "serve", "--port", str(port), "--data-dir", str(data_dir),
             *(args or [])],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    return LiveServer(process, url, data_dir, port, write_key, secret_key, log_path)
