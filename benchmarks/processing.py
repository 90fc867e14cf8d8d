"""Processing alone: how fast the log turns into profiles, per worker and per backend.

    python benchmarks/processing.py --customers 20000 --store sqlite
    python benchmarks/processing.py --customers 20000 --store postgres --workers 2

Fills a fresh store's log with the seeded synthetic workload (straight through the
library, no HTTP), then lets the processing catch up from nothing and reports events/s
and CPU per event: of `--workers N` `persona worker` processes, or (N = 0) of one
in-process processor running every stage, and of PostgreSQL's own processes. Run the
worker under `py-spy record --pid` to see where its time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import POSTGRES_URL, cpu_seconds, drop_schema, postgres_cpu
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event
from persona.status import lag_of
from persona.synth import Workload


def fill(engine: Engine, customers: int, seed: int) -> int:
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    total = 0
    for batch in Workload(seed=seed, customers=customers).batches(size=2000):
        events = [e for i, m in enumerate(batch)
                  if isinstance(e := normalize(m, index=i, source_id="bench", defaults=defaults), Event)]
        total += engine.log.append(events).accepted
    return total


def run(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-processing-"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES_URL}?schema={schema}" if args.store == "postgres" else None
    config = load_config(env={}, data_dir=data_dir, store=store, partitions=args.partitions)
    try:
        with Engine.open(config) as engine:
            print(f"filling the log with {args.customers} customers...", flush=True)
            events = fill(engine, args.customers, args.seed)
            print(f"{events} events; processing...", flush=True)
            pg_before = postgres_cpu()
            started = time.perf_counter()
            if args.workers:
                workers = [subprocess.Popen(
                    [sys.executable, "-m", "persona", "worker", "--id", f"w{i}", "--store", config.store_url],
                    env={**os.environ, "PERSONA_LOG_LEVEL": "WARNING", "PERSONA_PARTITIONS": str(args.partitions)})
                    for i in range(args.workers)]
                while lag_of(engine) > 0:
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                cpu = [sum(cpu_seconds(w.pid)) for w in workers]
                pg = sum(postgres_cpu()) - sum(pg_before)  # before the workers' sessions end
                for w in workers:
                    w.send_signal(2)
                    w.wait(timeout=60)
            else:
                before = resource.getrusage(resource.RUSAGE_SELF)
                engine.processor.run_until_caught_up()
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_SELF)
                cpu = [after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime]
                pg = sum(postgres_cpu()) - sum(pg_before)
            counts = engine.state.counts()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if store:
            drop_schema(schema)
    return {
        "store": args.store, "workers": args.workers or "in-process", "partitions": args.partitions,
        "events": events, "profiles": counts.profiles, "merges": counts.merges,
        "events_per_s": round(events / elapsed), "seconds": round(elapsed, 2),
        "worker_cpu_us_per_event": [round(c / events * 1e6, 1) for c in cpu],
        "postgres_cpu_us_per_event": round(pg / events * 1e6, 1) if store else None,
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: in-process, every stage)")
    parser.add_argument("--partitions", type=int, default=8)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
