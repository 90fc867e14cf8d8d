"""End-to-end ingest benchmark: HTTP batches in, profiles applied, reads under load.

    python benchmarks/ingest.py --customers 20000 --connections 4
    python benchmarks/ingest.py --customers 20000 --store postgres --workers 2

Starts `persona serve` on a fresh store (a data directory, or a new schema in the
PostgreSQL at PERSONA_BENCH_POSTGRES_URL, default postgresql://127.0.0.1:5432/test) in its
own process, then from this process posts the synthetic workload as /v1/batch requests of
100 events over keep-alive connections, while one process reads random profiles. With
`--workers N` the servers run `--role api` and N `persona worker` processes do the
processing; `--api-nodes K` starts K API servers and spreads the connections over them.
Reports events/s until everything is applied (lag 0), ack latency p50/p99, profile-read
latency p50/p99 under load, and the CPU each kind of process used per event (API nodes,
processor or workers, PostgreSQL's own processes).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import platform
import queue
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.live import start_server

from persona.synth import Workload

POSTGRES_URL = os.environ.get("PERSONA_BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")

WRITE_KEY = "pw_bench"
SECRET_KEY = "ps_bench"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def children_cpu(pid: int) -> tuple[float, float]:
    """CPU of the server's child processes (the processor), summed."""
    user = system = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        for child in children.read_text().split() if children.exists() else []:
            u, s = cpu_seconds(int(child))
            user, system = user + u, system + s
    return user, system


def postgres_cpu() -> tuple[float, float]:
    """CPU of every PostgreSQL server process on this machine (the benchmark's own schema is the only load)."""
    user = system = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    u, s = cpu_seconds(int(proc.name))
                    user, system = user + u, system + s
            except (FileNotFoundError, ProcessLookupError):
                pass
    return user, system


def build_bodies(customers: int, seed: int, size: int) -> tuple[list[bytes], int, list[str]]:
    encode = msgspec.json.Encoder().encode
    bodies, events, users = [], 0, []
    workload = Workload(seed=seed, customers=customers)
    for batch in workload.batches(size=size):
        bodies.append(encode({"batch": batch}))
        events += len(batch)
    users = [c.user_id for c in workload.customers() if c.user_id]
    return bodies, events, users


def sender(port: int, work: queue.SimpleQueue, latencies: list[float], failures: list[str],
           interval: float) -> None:
    """Post bodies until the queue says stop; `interval` > 0 paces this connection (offered load)."""
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    next_at = time.perf_counter()
    while (body := work.get()) is not None:
        if interval:
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        conn.request("POST", "/v1/batch", body, {"Content-Type": "application/json", "Authorization": auth})
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            failures.append(f"{response.status} {payload[:200]!r}")
    conn.close()


def reader(port: int, users: list[str], stop: multiprocessing.synchronize.Event, rate: float,
           results: multiprocessing.queues.Queue) -> None:
    """Its own process, like a real client: the senders' threads must not delay its clock."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random(1)
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", f"/v1/profiles/user_id:{rng.choice(users)}", headers=headers)
        conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
        stop.wait(1 / rate)
    conn.close()
    results.put(latencies)


def lag(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/readyz")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return int(body["checks"]["lag"])


def status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {SECRET_KEY}"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def postgres_size(schema: str) -> int:
    import psycopg

    with psycopg.connect(POSTGRES_URL) as conn:
        return int(conn.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                            (schema,)).fetchone()[0])


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run(args: argparse.Namespace) -> dict:
    print(f"generating {args.customers} customers...", flush=True)
    bodies, n_events, users = build_bodies(args.customers, args.seed, args.batch)
    print(f"{n_events} events in {len(bodies)} requests of {args.batch}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES_URL}?schema={schema}" if args.store == "postgres" else f"sqlite:///{data_dir}"
    env = {"PERSONA_SYNCHRONOUS": args.synchronous, "PERSONA_STORE": store,
           "PERSONA_PROCESSOR": "off" if args.workers else "process"}
    servers = [start_server(data_dir / f"api{i}", WRITE_KEY, SECRET_KEY, extra_env=env) for i in range(args.api_nodes)]
    server = servers[0]
    workers = [subprocess.Popen([sys.executable, "-m", "persona", "worker", "--id", f"bench{i}", "--store", store],
                                env={**os.environ, "PERSONA_LOG_LEVEL": "WARNING"}) for i in range(args.workers)]
    try:
        cpu_before = [cpu_seconds(s.process.pid) for s in servers]
        child_before = children_cpu(server.process.pid)
        workers_before = [cpu_seconds(w.pid) for w in workers]
        pg_before = postgres_cpu()
        work: queue.SimpleQueue = queue.SimpleQueue()
        for body in bodies:
            work.put(body)
        for _ in range(args.connections):
            work.put(None)
        acks: list[float] = []
        failures: list[str] = []
        ctx = multiprocessing.get_context("fork")
        stop, results = ctx.Event(), ctx.Queue()
        interval = args.connections * args.batch / args.rate if args.rate else 0.0
        threads = [threading.Thread(target=sender, args=(servers[i % len(servers)].port, work, acks, failures,
                                                         interval)) for i in range(args.connections)]
        read_process = ctx.Process(target=reader, args=(server.port, users, stop, args.read_rate, results))
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for t in threads:
            t.start()
        read_process.start()
        for t in threads:
            t.join()
        acked = time.perf_counter()
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        while lag(server.port) > 0:
            time.sleep(0.02)
        applied = time.perf_counter()
        stop.set()
        reads = results.get(timeout=60)
        read_process.join()
        final = status(server.port)
        user = sum(cpu_seconds(s.process.pid)[0] - b[0] for s, b in zip(servers, cpu_before, strict=True))
        system = sum(cpu_seconds(s.process.pid)[1] - b[1] for s, b in zip(servers, cpu_before, strict=True))
        if workers:
            child_user = sum(cpu_seconds(w.pid)[0] - b[0] for w, b in zip(workers, workers_before, strict=True))
            child_system = sum(cpu_seconds(w.pid)[1] - b[1] for w, b in zip(workers, workers_before, strict=True))
        else:
            child_user, child_system = (a - b for a, b in zip(children_cpu(server.process.pid), child_before,
                                                              strict=True))
        pg_user, pg_system = (a - b for a, b in zip(postgres_cpu(), pg_before, strict=True))
        disk_mb = (sum(f.stat().st_size for f in data_dir.glob("*.db*")) / 1e6 if args.store == "sqlite"
                   else postgres_size(schema) / 1e6)
    finally:
        for w in workers:
            w.send_signal(2)
        for w in workers:
            w.wait(timeout=60)
        for s in servers:
            s.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
            if args.store == "postgres":
                drop_schema(schema)
    return {
        "events": n_events, "requests": len(bodies), "failures": len(failures),
        "store": args.store, "api_nodes": args.api_nodes, "workers": args.workers or "serve's processor",
        "connections": args.connections, "synchronous": args.synchronous, "offered_rate": args.rate or "max",
        "ingest_events_per_s": round(n_events / (acked - started)),
        "end_to_end_events_per_s": round(n_events / (applied - started)),
        "seconds_to_lag_zero": round(applied - started, 2),
        "ack_ms_p50": round(percentile(acks, 50) * 1000, 2), "ack_ms_p99": round(percentile(acks, 99) * 1000, 2),
        "profile_reads": len(reads),
        "read_ms_p50": round(percentile(reads, 50) * 1000, 2), "read_ms_p99": round(percentile(reads, 99) * 1000, 2),
        "api_cpu_us_per_event": {"user": round(user / n_events * 1e6, 1), "system": round(system / n_events * 1e6, 1)},
        "processor_cpu_us_per_event": {"user": round(child_user / n_events * 1e6, 1),
                                       "system": round(child_system / n_events * 1e6, 1)},
        "postgres_cpu_us_per_event": round((pg_user + pg_system) / n_events * 1e6, 1),
        "profiles": final["state"]["profiles"], "log_events": final["log"]["events"], "store_mb": round(disk_mb),
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "first_failure": failures[0] if failures else None,
        "mean_ack_ms": round(statistics.fmean(acks) * 1000, 2),
        "client_cpu_us_per_event": round((client_after.ru_utime + client_after.ru_stime - client_before.ru_utime
                                          - client_before.ru_stime) / n_events * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--connections", type=int, default=4, help="concurrent sending connections")
    parser.add_argument("--rate", type=float, default=0, help="offered events/s (0: as fast as acks allow)")
    parser.add_argument("--read-rate", type=float, default=100, help="profile reads per second during the load")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"],
                        help="SQLite's synchronous mode (PostgreSQL always commits with synchronous_commit=on)")
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=0,
                        help="persona worker processes (0: the server's own processor does the work)")
    parser.add_argument("--api-nodes", type=int, default=1, help="API servers sharing the connections")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
