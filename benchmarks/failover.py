"""How long a dead worker's partitions stay unowned: kill -9 one of two workers, time the hand-over.

    python benchmarks/failover.py --store postgres --runs 5
    python benchmarks/failover.py --store postgres --runs 3 --hang   # SIGSTOP: hung, not dead

Two `persona worker` processes share a fresh store whose log holds some events. Each run
waits until both hold leases, kills one with SIGKILL, and measures the time until the
survivor owns every partition and identity (from `persona status`'s view of the leases);
then starts a replacement and waits until the two share again. Also reported: the time
until processing is moving again, seen as new events appended after the kill being applied.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import POSTGRES_URL, drop_schema
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event
from persona.status import lag_of, processing_of


def owners(engine: Engine) -> set[str | None]:
    processing = processing_of(engine)
    return {p["owner"] for p in processing["partitions"]} | {processing["identity"]["owner"]}


def start(store: str, worker_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "persona", "worker", "--id", worker_id, "--store", store],
                            env={**os.environ, "PERSONA_LOG_LEVEL": "WARNING"})


def append(engine: Engine, n: int, tag: str) -> None:
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    messages = [{"type": "track", "userId": f"u{i % 500}", "event": "Product Viewed", "messageId": f"{tag}-{i}"}
                for i in range(n)]
    events = [e for i, m in enumerate(messages)
              if isinstance(e := normalize(m, index=i, source_id="bench", defaults=defaults), Event)]
    engine.log.append(events)


def wait(condition, timeout: float = 90) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError
        time.sleep(0.01)
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-failover-"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES_URL}?schema={schema}" if args.store == "postgres" else None
    config = load_config(env={}, data_dir=data_dir, store=store)
    moved, resumed = [], []
    try:
        with Engine.open(config) as engine:
            append(engine, 20_000, "warmup")
            workers = {"a0": start(config.store_url, "a0"), "b0": start(config.store_url, "b0")}
            for run_no in range(args.runs):
                wait(lambda: len(owners(engine) - {None}) == 2 and lag_of(engine) == 0)
                victim, survivor = sorted(workers)
                process = workers.pop(victim)
                process.send_signal(signal.SIGSTOP if args.hang else signal.SIGKILL)
                killed = time.perf_counter()
                append(engine, 2_000, f"run{run_no}")
                wait(lambda s=survivor: owners(engine) == {s})
                moved.append(time.perf_counter() - killed)
                wait(lambda: lag_of(engine) == 0)
                resumed.append(time.perf_counter() - killed)
                process.kill()
                process.wait()
                workers[f"c{run_no}"] = start(config.store_url, f"c{run_no}")
            for process in workers.values():
                process.send_signal(2)
                process.wait(timeout=60)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if store:
            drop_schema(schema)
    return {
        "store": args.store, "runs": args.runs, "failure": "SIGSTOP (hung)" if args.hang else "SIGKILL",
        "partitions_moved_s": {"min": round(min(moved), 2), "median": round(statistics.median(moved), 2),
                               "max": round(max(moved), 2)},
        "kill_to_caught_up_s": {"min": round(min(resumed), 2), "median": round(statistics.median(resumed), 2),
                                "max": round(max(resumed), 2)},
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hang", action="store_true", help="stop the worker (SIGSTOP) instead of killing it")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
