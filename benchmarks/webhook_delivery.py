"""Webhook delivery: throughput to a local receiver, and a receiver down for minutes.

    python benchmarks/webhook_delivery.py --deliveries 20000 --concurrency 4,16 --down-seconds 300
    python benchmarks/webhook_delivery.py --deliveries 2000 --down-seconds 10      # smoke, < 1 min

A fresh embedded store (a temporary data directory, SQLite) is opened by `Engine.open`, with
the destinations read from a YAML file the way the `destinations` setting names one. The
receiver is a real HTTP/1.1 server (`http.server.ThreadingHTTPServer`, keep-alive) in a child
process of its own, on 127.0.0.1: it checks every request with the project's
`persona.activation.webhooks.verify` (401 if it does not verify), answers 204, and counts each
`webhook-id` it accepted. "Down" closes its listening socket and every open connection, so a
connect is refused (checked with a plain socket); "up" listens again on the same port.

Deliveries are enqueued with the outbox's own API (`Outbox.enqueue`: `enqueue(conn, ...)`
inside a `Database.write`, which is what a journey's webhook step adds to the stage's commit),
not through journeys: that would put the processor and the journey stage in the measurement.
Each body is shaped like a journey step's (`actions.webhook_body`), about 600 bytes. The
Deliverer is the one `Engine.deliverer()` builds (and `persona serve`'s processor and `persona
worker` start), given that phase's destination alone: a thread of this process.

1. Throughput: `--deliveries` enqueued up front, then the Deliverer started; deliveries per
   second from its start to the last `delivered_at`, per `--concurrency` (max_concurrency).
2. Receiver down: deliveries enqueued one per transaction at `--rate` per second from the
   start; after `--warmup` seconds the receiver goes down for `--down-seconds`, then comes back;
   enqueueing goes on until every delivery enqueued before the recovery is delivered. Reported:
   the backlog (pending + delivering) at its peak, the time from recovery until everything
   enqueued before it was delivered, deliveries lost (enqueued, never received), duplicates,
   dead letters, attempts. In the middle of the outage `--events` events are appended to the
   log (batches of 500, the ingest path) and the rate compared with the same before phase 2.

The retry settings of phase 2 (`--max-attempts`, `--backoff-base`, `--backoff-max`) default to
the project's (8 attempts, 30 s doubling to 1 h, full jitter): a receiver that is down pauses
its destination after 5 failures in a row, probes it (1 s doubling to 60 s), and makes every
waiting retry due when a probe gets through (`activation/delivery.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import multiprocessing
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from persona.activation.delivery import PROBE_EVERY_MAX, Deliverer
from persona.activation.outbox import NewDelivery
from persona.activation.webhooks import Destination, new_secret
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, now_micros

DEFAULTS = Destination("defaults", "http://x", "")  # the project's retry defaults


# -- the receiver (a child process) ----------------------------------------------------------------
def receiver_main(control: Any, secret: str) -> None:
    """Serve webhooks on 127.0.0.1 until told to stop; commands arrive on `control`."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from persona.activation.webhooks import SignatureError, verify

    lock = threading.Lock()
    received: Counter[str] = Counter()
    stats = {"requests": 0, "invalid": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                verify(secret, self.headers, body)
            except SignatureError as exc:
                with lock:
                    stats["requests"] += 1
                    stats["invalid"] += 1
                self._answer(401, str(exc).encode())
                return
            with lock:
                stats["requests"] += 1
                received[self.headers["webhook-id"]] += 1
            self._answer(204, b"")

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def __init__(self, port: int) -> None:
            self.open: set[socket.socket] = set()
            self.open_lock = threading.Lock()
            super().__init__(("127.0.0.1", port), Handler)

        def process_request(self, request: Any, client_address: Any) -> None:
            with self.open_lock:
                self.open.add(request)
            super().process_request(request, client_address)

        def shutdown_request(self, request: Any) -> None:
            with self.open_lock:
                self.open.discard(request)
            super().shutdown_request(request)

        def go_down(self) -> None:
            """Stop accepting, close the listening socket, cut every open connection."""
            self.shutdown()
            self.server_close()
            with self.open_lock:
                conns = list(self.open)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def serve(port: int) -> Server:
        server = Server(port)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return server

    server: Server | None = serve(0)
    port = server.server_address[1]
    control.send(port)
    while True:
        command = control.recv()
        if command == "down":
            assert server is not None
            server.go_down()
            server = None
            control.send("down")
        elif command == "up":
            server = serve(port)
            control.send("up")
        elif command == "stats":
            with lock:
                control.send({**stats, "unique": len(received)})
        elif command == "ids":
            with lock:
                control.send(dict(received))
        elif command == "cpu":
            control.send(time.process_time())
        elif command == "stop":
            if server is not None:
                server.go_down()
            control.send("stopped")
            return


class Receiver:
    """The receiver child process and its control pipe."""

    def __init__(self, secret: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._control, child = ctx.Pipe()
        self.process = ctx.Process(target=receiver_main, args=(child, secret), name="receiver", daemon=True)
        self.process.start()
        self.port: int = self._control.recv()
        self.url = f"http://127.0.0.1:{self.port}/hooks/persona"
        self.up = True

    def ask(self, command: str) -> Any:
        self._control.send(command)
        return self._control.recv()

    def down(self) -> None:
        self.ask("down")
        self.up = False

    def come_up(self) -> None:
        self.ask("up")
        self.up = True

    def refuses(self) -> bool:
        """Whether a connect to the port is refused right now."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except OSError as exc:
            return exc.errno == errno.ECONNREFUSED
        return False

    def stop(self) -> None:
        self.ask("stop")
        self.process.join(5)


# -- producing -------------------------------------------------------------------------------------
def body_for(i: int, key: str) -> dict[str, Any]:
    """A body shaped like a journey step's webhook (actions.webhook_body)."""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"type": "journey.step", "id": key, "at": at,
            "journey": {"id": "abandoned_cart", "name": "Abandoned cart", "step": "notify_crm", "instance": 1,
                        "arm": None},
            "profile": {"id": f"prof_{i:08d}", "identifiers": {"user_id": [f"u{i}"], "email": [f"u{i}@example.com"]},
                        "traits": {"name": f"Customer {i}", "plan": "pro", "country": "SE"}},
            "entry": {"timestamp": at, "properties": {
                "cart_id": f"c{i}", "value": 129.5, "currency": "EUR",
                "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-7", "qty": 1}]}},
            "event": None, "data": {"campaign": "cart-recovery"}}


def enqueue_up_front(engine: Engine, destination: str, n: int) -> tuple[list[str], float]:
    """`n` deliveries in transactions of 1,000; their keys and the seconds it took."""
    keys = [f"{destination}-{i}" for i in range(n)]
    began = time.perf_counter()
    for first in range(0, n, 1000):
        added = engine.outbox.enqueue([NewDelivery.json(destination, k, body_for(first + j, k))
                                       for j, k in enumerate(keys[first:first + 1000])])
        assert added == len(keys[first:first + 1000]), added
    return keys, time.perf_counter() - began


class Enqueuer(threading.Thread):
    """One delivery per transaction at a steady rate, as producers committing one by one."""

    def __init__(self, engine: Engine, destination: str, rate: float) -> None:
        super().__init__(name="enqueuer", daemon=True)
        self.engine, self.destination, self.rate = engine, destination, rate
        self.keys: list[str] = []
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.began = self.ended = 0.0

    def run(self) -> None:
        self.began = time.perf_counter()
        i = 0
        while not self.stopping.is_set():
            pause = self.began + i / self.rate - time.perf_counter()
            if pause > 0:
                self.stopping.wait(pause)
                continue
            key = f"{self.destination}-{i}"
            t = time.perf_counter()
            added = self.engine.outbox.enqueue([NewDelivery.json(self.destination, key, body_for(i, key))])
            self.latencies.append(time.perf_counter() - t)
            assert added == 1
            self.keys.append(key)
            i += 1
        self.ended = time.perf_counter()

    def achieved(self) -> float:
        return len(self.keys) / max(1e-9, (self.ended or time.perf_counter()) - self.began)


def append_events(engine: Engine, n: int, tag: str) -> float:
    """Append `n` page events in batches of 500 (the ingest path); events per second."""
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    began = time.perf_counter()
    for first in range(0, n, 500):
        batch = []
        for i in range(first, min(n, first + 500)):
            event = normalize({"type": "page", "anonymousId": f"a{i}", "messageId": f"{tag}-{i}"}, index=i,
                              source_id="bench", defaults=defaults)
            assert isinstance(event, Event)
            batch.append(event)
        engine.log.append(batch)
    return n / (time.perf_counter() - began)


# -- reading the outbox ----------------------------------------------------------------------------
def status_counts(engine: Engine, destination: str) -> dict[str, int]:
    rows = engine.state_db.query("SELECT status, count(*) FROM deliveries WHERE destination = ? GROUP BY status",
                                 (destination,))
    return {status: int(n) for status, n in rows}


def deliverer_for(engine: Engine, name: str) -> Deliverer:
    """What `Engine.deliverer()` builds (no SMTP configured), with this one destination."""
    return Deliverer(engine.outbox, {name: engine.destinations[name]})


def check_received(keys: list[str], received: dict[str, int]) -> tuple[int, int, int]:
    """(received at least once, lost, duplicate receipts) of these keys."""
    got = sum(1 for k in keys if received.get(k, 0) >= 1)
    dups = sum(received.get(k, 0) - 1 for k in keys if received.get(k, 0) > 1)
    return got, len(keys) - got, dups


def wait_until(condition: Any, timeout: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


# -- phase 1 ---------------------------------------------------------------------------------------
def throughput(engine: Engine, receiver: Receiver, name: str, n: int) -> dict[str, Any]:
    keys, enqueue_s = enqueue_up_front(engine, name, n)
    deliverer = deliverer_for(engine, name)
    cpu0, rcpu0 = time.process_time(), receiver.ask("cpu")
    start = now_micros()
    began = time.perf_counter()
    deliverer.start()
    done = wait_until(lambda: status_counts(engine, name).get("delivered", 0) >= n, timeout=max(120.0, n / 20))
    deliverer.stop()
    wall = time.perf_counter() - began
    cpu, rcpu = time.process_time() - cpu0, receiver.ask("cpu") - rcpu0
    last, attempts = engine.state_db.query_one(
        "SELECT max(delivered_at), sum(attempts) FROM deliveries WHERE destination = ?", (name,))
    counts = status_counts(engine, name)
    elapsed = ((last or start) - start) / 1e6
    return {"name": name, "n": n, "enqueue_rate": n / enqueue_s, "done": done, "counts": counts,
            "rate": counts.get("delivered", 0) / elapsed if elapsed > 0 else 0.0, "elapsed": elapsed,
            "attempts": int(attempts or 0), "cpu": cpu / wall, "receiver_cpu": rcpu / wall, "keys": keys}


# -- phase 2 ---------------------------------------------------------------------------------------
def outage(engine: Engine, receiver: Receiver, name: str, args: argparse.Namespace) -> dict[str, Any]:
    destination = engine.destinations[name]
    deliverer = deliverer_for(engine, name)
    deliverer.start()
    enqueuer = Enqueuer(engine, name, args.rate)
    samples: list[tuple[float, int, bool]] = []  # (seconds since phase start, backlog, receiver up)
    sampling = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not sampling.is_set():
            c = status_counts(engine, name)
            samples.append((time.perf_counter() - t0, c.get("pending", 0) + c.get("delivering", 0), receiver.up))
            sampling.wait(1.0)

    sampler = threading.Thread(target=sample, name="sampler", daemon=True)
    enqueuer.start()
    sampler.start()
    time.sleep(args.warmup)
    receiver.down()
    down_at, down_us = time.perf_counter(), now_micros()
    refused = receiver.refuses()
    print(f"  receiver down at {down_at - t0:.1f} s (connect refused: {refused})", file=sys.stderr, flush=True)
    ingest_rate = None
    mid = down_at + args.down_seconds / 2
    shown = down_at
    while time.perf_counter() < down_at + args.down_seconds:
        if ingest_rate is None and args.events and time.perf_counter() >= mid:
            ingest_rate = append_events(engine, args.events, "outage")
            print(f"  appended {args.events:,} events during the outage: {ingest_rate:,.0f}/s",
                  file=sys.stderr, flush=True)
        time.sleep(min(1.0, max(0.0, down_at + args.down_seconds - time.perf_counter())))
        if samples and time.perf_counter() - shown >= 30:
            shown = time.perf_counter()
            print(f"  t={samples[-1][0]:.0f} s backlog {samples[-1][1]:,}", file=sys.stderr, flush=True)
    peak_before_up = max((b for _, b, _ in samples), default=0)
    receiver.come_up()
    up_wall = time.perf_counter()
    up_at = now_micros()
    print(f"  receiver up at {up_wall - t0:.1f} s; backlog {samples[-1][1] if samples else 0:,}",
          file=sys.stderr, flush=True)

    def before_up_delivered() -> bool:
        total, delivered = engine.state_db.query_one(
            "SELECT count(*), sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) FROM deliveries"
            " WHERE destination = ? AND created_at < ?", (name, up_at))
        return int(delivered or 0) >= int(total)

    timeout = args.drain_timeout or PROBE_EVERY_MAX + 300
    drained = wait_until(before_up_delivered, timeout, every=0.5)
    enqueuer.stopping.set()
    enqueuer.join()
    everything = wait_until(lambda: status_counts(engine, name).get("delivered", 0) >= len(enqueuer.keys),
                            timeout=min(timeout, 2 * destination.backoff_max + 60) if drained else 0, every=0.5)
    deliverer.stop()
    sampling.set()
    sampler.join()
    total, last_before, first_after, dead_rows = engine.state_db.query_one(
        "SELECT count(*), max(CASE WHEN created_at < ? THEN delivered_at END),"
        " min(CASE WHEN delivered_at >= ? THEN delivered_at END),"
        " sum(CASE WHEN status = 'dead' THEN 1 ELSE 0 END) FROM deliveries WHERE destination = ?",
        (up_at, up_at, name))
    backlog_at_up = int(engine.state_db.query_one(
        "SELECT count(*) FROM deliveries WHERE destination = ? AND created_at < ? AND"
        " (delivered_at IS NULL OR delivered_at >= ?)", (name, up_at, up_at))[0])
    attempts = engine.state_db.query(
        "SELECT attempts, count(*) FROM deliveries WHERE destination = ? GROUP BY attempts", (name,))
    warm = engine.state_db.query(
        "SELECT delivered_at - created_at FROM deliveries WHERE destination = ? AND status = 'delivered'"
        " AND created_at < ?", (name, down_us - 1_000_000))
    latency = np.asarray([r[0] for r in warm], dtype=float) / 1e3
    late = engine.state_db.query(
        "SELECT delivered_at - ? FROM deliveries WHERE destination = ? AND created_at < ? AND delivered_at >= ?",
        (up_at, name, up_at, up_at))
    after_up = np.asarray([r[0] for r in late], dtype=float) / 1e6
    # The last error a delivery had (kept after it is delivered): refused connects, or anything else?
    errors = engine.state_db.query(
        "SELECT CASE WHEN last_error LIKE '%Connection refused%' THEN 'connection refused'"
        " ELSE substr(last_error, 1, 80) END, count(*) FROM deliveries"
        " WHERE destination = ? AND last_error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC", (name,))
    peak = max((b for _, b, _ in samples), default=0)
    return {"destination": destination, "keys": enqueuer.keys, "achieved_rate": enqueuer.achieved(),
            "enqueue_latency": np.asarray(enqueuer.latencies), "refused": refused, "peak": peak,
            "peak_before_up": peak_before_up, "backlog_at_up": backlog_at_up, "drained": drained,
            "everything": everything, "total": int(total),
            "drain": ((last_before or up_at) - up_at) / 1e6,
            "first_after": None if first_after is None else (first_after - up_at) / 1e6,
            "dead": int(dead_rows or 0), "counts": status_counts(engine, name),
            "attempts": {int(a): int(n) for a, n in attempts}, "ingest_rate": ingest_rate,
            "warm_latency": latency, "samples": samples, "errors": [(e, int(n)) for e, n in errors],
            "down_seconds": (up_wall - down_at), "after_up": after_up}


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20_000, help="phase 1: deliveries per concurrency")
    parser.add_argument("--concurrency", default="4,16", help="phase 1: max_concurrency settings, comma-separated")
    parser.add_argument("--down-seconds", type=float, default=300.0, help="phase 2: how long the receiver is down")
    parser.add_argument("--rate", type=float, default=50.0, help="phase 2: deliveries enqueued per second")
    parser.add_argument("--warmup", type=float, default=5.0, help="phase 2: seconds up before the outage")
    parser.add_argument("--outage-concurrency", type=int, default=DEFAULTS.max_concurrency,
                        help="phase 2: max_concurrency (default: the project's, 4)")
    parser.add_argument("--max-attempts", type=int, default=DEFAULTS.max_attempts,
                        help="phase 2 (default: the project's)")
    parser.add_argument("--backoff-base", type=float, default=DEFAULTS.backoff_base,
                        help="phase 2, seconds (default: the project's)")
    parser.add_argument("--backoff-max", type=float, default=DEFAULTS.backoff_max,
                        help="phase 2, seconds (default: the project's)")
    parser.add_argument("--events", type=int, default=50_000,
                        help="events appended before phase 2 and in the middle of the outage (0: none)")
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="phase 2: seconds to wait for the backlog after recovery (default 360)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    # Each failed attempt is a warning; dead letters (errors) still show.
    logging.getLogger("persona.activation.delivery").setLevel(logging.ERROR)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    backoff_max, backoff_base, max_attempts = args.backoff_max, min(args.backoff_base, args.backoff_max), \
        args.max_attempts
    started = time.perf_counter()

    data_dir = Path(tempfile.mkdtemp(prefix="persona-webhooks-"))
    secret = new_secret()
    receiver = Receiver(secret)
    try:
        phase1 = [] if args.skip_throughput else [f"throughput-c{c}" for c in concurrencies]
        lines = []
        for name, c in zip(phase1, concurrencies, strict=False):
            lines += [f"{name}:", f"  url: {receiver.url}", f"  secret: {secret}", f"  max_concurrency: {c}"]
        lines += ["outage:", f"  url: {receiver.url}", f"  secret: {secret}",
                  f"  max_concurrency: {args.outage_concurrency}", f"  max_attempts: {max_attempts}",
                  f"  backoff_base: {backoff_base:g}", f"  backoff_max: {backoff_max:g}"]
        (data_dir / "destinations.yaml").write_text("\n".join(lines) + "\n")
        config = load_config(env={}, data_dir=data_dir, destinations=data_dir / "destinations.yaml")
        with Engine.open(config) as engine:
            print(f"receiver on 127.0.0.1:{receiver.port}; store {data_dir}", file=sys.stderr, flush=True)
            results = []
            for name in phase1:
                print(f"phase 1: {name}, {args.deliveries:,} deliveries", file=sys.stderr, flush=True)
                results.append(throughput(engine, receiver, name, args.deliveries))
            baseline = append_events(engine, args.events, "baseline") if args.events else None
            print(f"phase 2: outage of {args.down_seconds:g} s at {args.rate:g} deliveries/s "
                  f"(max_attempts {max_attempts}, backoff {backoff_base:g} s to {backoff_max:g} s)",
                  file=sys.stderr, flush=True)
            out = outage(engine, receiver, "outage", args)
        received = receiver.ask("ids")
        rstats = receiver.ask("stats")
    finally:
        receiver.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    # -- report ------------------------------------------------------------------------------------
    print(f"\n## Webhook delivery (embedded store, receiver in a child process on 127.0.0.1; "
          f"{time.perf_counter() - started:.0f} s in all)\n")
    print(f"Receiver: {rstats['requests']:,} requests, {rstats['invalid']:,} failed `webhooks.verify`, "
          f"{rstats['unique']:,} distinct webhook-ids.\n")
    if results:
        print("### Throughput (deliveries enqueued up front, then the Deliverer started)\n")
        print("| max_concurrency | deliveries | enqueue/s (1,000 per txn) | delivered/s | seconds | lost | duplicates "
              "| not delivered | deliverer process CPU | receiver CPU |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            _, lost, dups = check_received(r["keys"], received)
            not_delivered = r["n"] - r["counts"].get("delivered", 0)
            print(f"| {r['name'].rsplit('-c', 1)[1]} | {r['n']:,} | {r['enqueue_rate']:,.0f} | {r['rate']:,.0f} | "
                  f"{r['elapsed']:.1f} | {lost:,} | {dups:,} | {not_delivered:,} | {r['cpu']:.0%} | "
                  f"{r['receiver_cpu']:.0%} |")
        print()
    d = out["destination"]
    _, lost, dups = check_received(out["keys"], received)
    attempts = out["attempts"]
    retries = sum((a - 1) * n for a, n in attempts.items())
    print(f"### Receiver down for {args.down_seconds:g} s\n")
    print(f"Settings: max_concurrency {d.max_concurrency}, max_attempts {d.max_attempts}, backoff_base "
          f"{d.backoff_base:g} s, backoff_max {d.backoff_max:g} s. Enqueued {len(out['keys']):,} deliveries one per "
          f"transaction at {out['achieved_rate']:.1f}/s (asked {args.rate:g}/s); enqueue p50 "
          f"{np.percentile(out['enqueue_latency'], 50) * 1e3:.1f} ms, p99 "
          f"{np.percentile(out['enqueue_latency'], 99) * 1e3:.1f} ms, max {out['enqueue_latency'].max() * 1e3:.0f} ms. "
          f"Connect refused while down: {out['refused']}.\n")
    lat = out["warm_latency"]
    print("| figure | value |\n|---|---:|")
    if len(lat):
        print(f"| enqueue → delivered before the outage, p50 / p99 | {np.percentile(lat, 50):.0f} / "
              f"{np.percentile(lat, 99):.0f} ms |")
    print(f"| backlog (pending + delivering) at its peak | {out['peak']:,} |")
    print(f"| backlog when the receiver came back | {out['backlog_at_up']:,} |")
    first = out["first_after"]
    print(f"| first delivery after recovery | {'-' if first is None else f'{first:.1f} s'} |")
    print(f"| everything enqueued before recovery delivered after | {out['drain']:.1f} s"
          f"{'' if out['drained'] else ' (NOT drained: timed out)'} |")
    if len(out["after_up"]):
        a = out["after_up"]
        print(f"| backlog delivered after recovery, p50 / p99 / max | {np.percentile(a, 50):.1f} / "
              f"{np.percentile(a, 99):.1f} / {a.max():.1f} s |")
    if out["drain"] > 0:
        print(f"| drain rate (backlog at recovery / drain time) | {out['backlog_at_up'] / out['drain']:,.0f}/s |")
    pending = out["counts"].get("pending", 0) + out["counts"].get("delivering", 0)
    print(f"| enqueued, not received by the end | {lost:,} of {len(out['keys']):,}"
          f"{f' ({pending:,} still pending in the outbox: not lost, not yet due)' if pending else ''} |")
    print(f"| received twice or more (duplicate webhook-id) | {dups:,} |")
    print(f"| dead letters | {out['dead']:,} |")
    print(f"| statuses at the end | {', '.join(f'{n:,} {s}' for s, n in sorted(out['counts'].items()))} |")
    print(f"| failed attempts (retries) | {retries:,} |")
    per = np.repeat(np.fromiter(attempts.keys(), int), np.fromiter(attempts.values(), int))
    print(f"| failed attempts per second of outage | {retries / out['down_seconds']:,.0f} |")
    print(f"| attempts per delivery, p50 / p99 / max | {np.percentile(per, 50):.0f} / {np.percentile(per, 99):.0f} / "
          f"{per.max()} (max_attempts {d.max_attempts}) |")
    print(f"| last error of the deliveries that had one | "
          f"{'; '.join(f'{n:,} {e}' for e, n in out['errors']) or 'none'} |")
    if args.events:
        print(f"| append rate, {args.events:,} events in batches of 500: before phase 2 / in the outage | "
              f"{baseline:,.0f} / {out['ingest_rate'] or 0:,.0f} events/s |")
    print()


if __name__ == "__main__":
    main()
