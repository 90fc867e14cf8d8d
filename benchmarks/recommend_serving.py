"""Recommendation serving latency over real HTTP, under an open-loop load.

    python benchmarks/recommend_serving.py --users 100000 --items 50000 --rates 250,500,1000 --seconds 30

Builds a fresh embedded store through the library: the synthetic shop's catalog (`--items`
products, Zipf popularity) and ~10 interactions per user (`--users` users with a `user_id`,
each browsing mostly one category group: views, adds, orders over the last 60 days), folded
into profiles; trains every model (`modelset.train`, what `persona recs train` runs) and
saves the set. Then a quarter of the users get a browsing session in the last 20 minutes
(views, sometimes an add to cart), inside `session.SESSION_WINDOW`, so their lists go through
the real-time re-ranking; 2% of the users are new, with a session and no trained history.

`persona serve` then runs as a subprocess on a free port, and `--clients` processes send
requests on a fixed schedule (open loop: each rate for `--seconds`, one request every
1/rate s whatever the answers do), over at most `--connections` keep-alive connections each.
A request's latency runs from its scheduled send time, so a stalled server (or a request
waiting for a free connection) shows up in the figures instead of slowing the senders (no
coordinated omission). The mix: 75% `GET /v1/recommendations/user_id:<id>?k=10` for known users, 10% for
unknown ones (popular fallback), 15% `GET /v1/recommendations/items/<id>/similar?k=10`.
Prints p50/p90/p99/max and the achieved rate per offered rate as Markdown; client and
server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.live import start_server

from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, iso
from persona.recommend.modelset import train
from persona.synth import Catalog
from persona.synth.catalog import catalog_items

SECRET_KEY = "ps_bench"
DAY = 86_400 * 1_000_000
MINUTE = 60 * 1_000_000
CONTENT_LENGTH = re.compile(rb"(?i)content-length:\s*(\d+)")


def shop_messages(catalog: Catalog, users: int, seed: int, now: int) -> list[dict]:
    """~10 interactions per user over 60 days: mostly one category group, popular items first."""
    rng = random.Random(seed)
    messages = []
    for u in range(users):
        group = catalog.pick_group(rng)
        cart: list[str] = []
        ages = sorted((rng.randrange(2 * 3_600_000_000, 60 * DAY) for _ in range(max(1, int(rng.expovariate(0.1))))),
                      reverse=True)
        for age in ages:  # oldest first, so an order follows the adds it completes
            leaf = catalog.pick_leaf(group if rng.random() < 0.8 else catalog.pick_group(rng), rng)
            item = catalog.pick_product(leaf, rng).id
            at = now - age
            roll = rng.random()
            if roll < 0.75:
                messages.append(track(f"u{u}", "Product Viewed", {"product_id": item}, at))
            elif roll < 0.9:
                cart.append(item)
                messages.append(track(f"u{u}", "Product Added", {"product_id": item}, at))
            else:
                products = [{"product_id": i, "quantity": 1} for i in dict.fromkeys([*cart, item])]
                messages.append(track(f"u{u}", "Order Completed", {"products": products}, at))
                cart = []
    return messages


def session_messages(catalog: Catalog, users: list[str], seed: int, now: int) -> list[dict]:
    """A few views in the last 20 minutes, sometimes an add to cart, for each of `users`."""
    rng = random.Random(seed)
    messages = []
    for user in users:
        leaf = catalog.pick_leaf(catalog.pick_group(rng), rng)
        for _ in range(rng.randint(2, 6)):
            item = catalog.pick_product(leaf, rng).id
            name = "Product Added" if rng.random() < 0.15 else "Product Viewed"
            messages.append(track(user, name, {"product_id": item}, now - rng.randrange(20 * MINUTE)))
    return messages


def track(user: str, name: str, properties: dict, at: int) -> dict:
    return {"type": "track", "event": name, "userId": user, "properties": properties, "timestamp": iso(at)}


def append(engine: Engine, messages: list[dict], process: bool = True) -> None:
    """Through the library as ingest would, then folded (unless `process` is False)."""
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    for start in range(0, len(messages), 2000):
        engine.log.append([e for i, m in enumerate(messages[start:start + 2000])
                           if isinstance(e := normalize(m, index=i, source_id="bench", defaults=defaults), Event)])
    if process:
        engine.processor.run_until_caught_up()


def build(data_dir: Path, items: int, users: int, seed: int) -> dict:
    """The store: catalog, history, a trained model set, then the recent sessions. A store built
    before (`--keep`) only gets new sessions."""
    catalog = Catalog.generate(seed, items)
    now = int(time.time() * 1_000_000)
    timings = {"fill_s": 0.0, "train_s": 0.0}
    with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
        if (stored := engine.rec_models.newest()) is None:
            started = time.perf_counter()
            engine.catalog.upsert(catalog_items(catalog))
            append(engine, shop_messages(catalog, users, seed, now))
            timings["fill_s"] = time.perf_counter() - started
            print(f"filled: {engine.log.count():,} events in {timings['fill_s']:.1f} s", flush=True)
            started = time.perf_counter()
            engine.rec_models.save(train(engine.log, engine.state, engine.catalog))
            timings["train_s"] = time.perf_counter() - started
            stored = engine.rec_models.newest()
        rng = random.Random(now)
        sessions = rng.sample([f"u{u}" for u in range(users)], users // 4) + [f"new{u}" for u in range(users // 50)]
        started = time.perf_counter()
        append(engine, session_messages(catalog, sessions, now, int(time.time() * 1_000_000)))
        timings["sessions_s"] = time.perf_counter() - started
        events = engine.log.count()
    return {"events": events, "sessions": len(sessions), "summary": stored.summary, **timings,
            "users": [f"u{u}" for u in range(users)] + [f"new{u}" for u in range(users // 50)],
            "items": [p.id for p in catalog]}


def paths(users: list[str], items: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.75:
            out.append(f"/v1/recommendations/user_id:{rng.choice(users)}?k=10")
        elif roll < 0.85:
            out.append(f"/v1/recommendations/user_id:nobody{i}?k=10")
        else:
            out.append(f"/v1/recommendations/items/{rng.choice(items)}/similar?k=10")
    return out


async def get(port: int, pool: list, path: str) -> int:
    """One GET on a kept-alive connection from `pool` (a new one if none is free)."""
    reader, writer = pool.pop() if pool else await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {SECRET_KEY}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    match = CONTENT_LENGTH.search(head)
    await reader.readexactly(int(match[1]) if match else 0)
    pool.append((reader, writer))
    return int(head[9:12])


async def open_loop(port: int, todo: list[str], interval: float, start: float,
                    connections: int) -> tuple[list[float], int, float]:
    """Send `todo` at `start + i * interval` over at most `connections` connections; latency from each
    scheduled time. Returns the latencies (s), how many failed, and when the last answer came."""
    pool: list = []
    slots = asyncio.Semaphore(connections)  # a request waits for a free connection, its clock running
    latencies: list[float] = []
    failed = 0

    async def one(path: str, scheduled: float) -> None:
        nonlocal failed
        try:
            async with slots:
                status = await get(port, pool, path)
        except (OSError, asyncio.IncompleteReadError):
            status = 0
        latencies.append(time.perf_counter() - scheduled)
        failed += status != 200

    tasks = []
    for i, path in enumerate(todo):
        scheduled = start + i * interval
        if (wait := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(path, scheduled)))
    await asyncio.gather(*tasks)
    return latencies, failed, time.perf_counter()


def client(port: int, todo: list[str], interval: float, start: float, connections: int,
           results: multiprocessing.Queue) -> None:
    results.put(asyncio.run(open_loop(port, todo, interval, start, connections)))


def run_rate(port: int, users: list[str], items: list[str], rate: float, seconds: float, clients: int,
             seed: int, connections: int = 64) -> dict:
    """`rate` requests/s for `seconds`, split over `clients` processes with interleaved schedules."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    todo = paths(users, items, int(rate * seconds), seed)
    start = time.perf_counter() + 0.5
    procs = [ctx.Process(target=client, args=(port, todo[c::clients], clients / rate, start + c / rate,
                                                      connections, results))
             for c in range(clients)]
    for p in procs:
        p.start()
    latencies: list[float] = []
    failed, ended = 0, start
    for _ in procs:
        lat, f, end = results.get()
        latencies += lat
        failed, ended = failed + f, max(ended, end)
    for p in procs:
        p.join()
    latencies.sort()

    def ms(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"rate": rate, "requests": len(latencies), "failed": failed, "achieved": len(latencies) / (ended - start),
            "p50": ms(0.50), "p90": ms(0.90), "p99": ms(0.99), "max": 1000 * latencies[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rates", default="250,500,1000", help="offered requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections per client process")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path,
                        help="build the store here and keep it; one built there before is reused (new sessions only)")
    args = parser.parse_args()
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="persona-recs-serving-"))
    try:
        built = build(data_dir, args.items, args.users, args.seed)
        s = built["summary"]
        print(f"{built['events']:,} events ({built['sessions']:,} users with a session in the last 20 min); "
              f"filled in {built['fill_s']:.1f} s, trained in {built['train_s']:.1f} s ({s['users']:,} users, "
              f"{s['items']:,} items, {s['interactions']:,} interactions), sessions in {built['sessions_s']:.1f} s",
              flush=True)
        server = start_server(data_dir, "pw_bench", SECRET_KEY)
        try:
            run_rate(server.port, built["users"], built["items"], 100, 5, 1, args.seed)  # loads the set, warms up
            print(f"\n{args.seconds:g} s per rate, {args.clients} client processes x {args.connections} connections\n")
            print("| offered req/s | achieved req/s | requests | failed | p50 ms | p90 ms | p99 ms | max ms |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
            for i, rate in enumerate(args.rates.split(",")):
                r = run_rate(server.port, built["users"], built["items"], float(rate), args.seconds, args.clients,
                             args.seed + i, args.connections)
                print(f"| {r['rate']:,.0f} | {r['achieved']:,.0f} | {r['requests']:,} | {r['failed']} | "
                      f"{r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |", flush=True)
        finally:
            server.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
