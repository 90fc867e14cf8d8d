"""End-to-end ingest benchmark: HTTP batches in, profiles applied, reads under load.

    python benchmarks/ingest.py --customers 20000 --connections 4

Starts `persona serve` on a fresh data directory in its own process, then from this
process posts the synthetic workload as /v1/batch requests of 100 events over keep-alive
connections, while one thread reads random profiles. Reports events/s until the processor
has applied everything (lag 0), ack latency p50/p99, profile-read latency p50/p99 under
load, and the CPU time the server used.
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
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.live import start_server

from persona.synth import Workload

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


def status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {SECRET_KEY}"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def run(args: argparse.Namespace) -> dict:
    print(f"generating {args.customers} customers...", flush=True)
    bodies, n_events, users = build_bodies(args.customers, args.seed, args.batch)
    print(f"{n_events} events in {len(bodies)} requests of {args.batch}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    server = start_server(data_dir, WRITE_KEY, SECRET_KEY,
                          extra_env={"PERSONA_SYNCHRONOUS": args.synchronous})
    try:
        cpu_before = cpu_seconds(server.process.pid)
        child_before = children_cpu(server.process.pid)
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
        threads = [threading.Thread(target=sender, args=(server.port, work, acks, failures, interval))
                   for _ in range(args.connections)]
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
        while status(server.port)["processor"]["lag"] > 0:
            time.sleep(0.02)
        applied = time.perf_counter()
        stop.set()
        reads = results.get(timeout=60)
        read_process.join()
        final = status(server.port)
        user, system = (a - b for a, b in zip(cpu_seconds(server.process.pid), cpu_before, strict=True))
        child_user, child_system = (a - b for a, b in zip(children_cpu(server.process.pid), child_before,
                                                          strict=True))
        disk_mb = sum(f.stat().st_size for f in data_dir.glob("*.db*")) / 1e6
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "events": n_events, "requests": len(bodies), "failures": len(failures),
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
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
