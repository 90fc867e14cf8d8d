"""Decision API latency over real HTTP (`POST /v1/decide`), under an open-loop load.

    python benchmarks/decide_latency.py                                   # 100k profiles, 500/1,000/2,000 req/s
    python benchmarks/decide_latency.py --profiles 10000                  # the 10x smaller store, to compare
    python benchmarks/decide_latency.py --profiles 2000 --seconds 3 --rates 100 --items 500   # smoke, < 1 min

Builds a fresh embedded store through the library: the synthetic shop's catalog (`--items`
products), 20 audience definitions (16 segments and 4 computed traits in the audience
language: traits, event aggregates with windows and filters, computed traits, references
between segments) applied first, so the audience stage keeps them live as the events are
folded; then `--profiles` customers with a `user_id`, each an `identify` with traits (plan,
country, first name, lifetime value) and 1-8 product views, adds and orders over 60 days,
appended and processed (identity, folds, audience stage) until caught up. The
recommendation models are trained (`modelset.train`, what `persona recs train` runs, with
tuning off to keep the build short) and the RFM and personas jobs run once through the
scheduler, as a server would on a fresh store (so their model traits exist and the server
does not start them during the measurement).

A placements file with 3 placements (`home_banner`: 6 variants by segment, trait, model
trait and context, templated content; `cart_page_reco`: 2 variants and `recommendations:
4`; `checkout_offer`: 4 variants by page, plan and computed trait) is given to `persona serve`
the way an operator does (the `placements` setting, `PERSONA_PLACEMENTS`). The server runs
as a subprocess on a free port, its processor in its own process; the measurement starts
once `/v1/status` shows no lag and `/readyz` answers 200.

`--clients` processes then send requests on a fixed schedule (open loop: each rate for
`--seconds`, one request every 1/rate s whatever the answers do), over at most
`--connections` keep-alive connections each. A request's latency runs from its scheduled
send time, so a stalled server (or a request waiting for a free connection) shows up in the
figures instead of slowing the senders (no coordinated omission). The mix: 80% known
customers (`user_id:uN`), 15% identifiers nobody has (the fallback), 5% no identifier; 1-3
of the placements each (2 on average; two thirds of the requests name `cart_page_reco` and
so carry recommendations; `--placements` narrows the choice, for comparison); half with a
context (`device`, `page`). Every request logs its exposure (`Content Shown`, the API's
default) unless `--no-exposure`.

Prints the build times, then per offered rate p50/p90/p99/max and the achieved rate as
Markdown, the server's CPU per request (API process and its processor child, from /proc),
and which variants were shown (a sample of the answers). Client and server share the
machine's cores. `--breakdown N` afterwards times the pieces of a decision in-process on the
same store (N known customers; `--profile` adds a cProfile of the whole decision).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.live import start_server

from benchmarks.recommend_serving import append, track
from persona.config import load_config
from persona.engine import Engine
from persona.log.events import iso
from persona.recommend.modelset import train
from persona.recommend.placements import read_placements_file
from persona.recommend.settings import TrainingSettings
from persona.synth import Catalog
from persona.synth.catalog import catalog_items

SECRET_KEY = "ps_bench"
DAY = 86_400 * 1_000_000
CONTENT_LENGTH = re.compile(rb"(?i)content-length:\s*(\d+)")
PLACEMENT_NAMES = ["home_banner", "cart_page_reco", "checkout_offer"]

PLANS = [("free", 0.6), ("pro", 0.3), ("team", 0.1)]
COUNTRIES = [("US", 0.3), ("DE", 0.15), ("GB", 0.12), ("FR", 0.1), ("AT", 0.05), ("CH", 0.04), ("NL", 0.06),
             ("ES", 0.06), ("IT", 0.06), ("SE", 0.03), ("PL", 0.03)]
FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances", "Donald"]

# 20 definitions in the audience language: 4 computed traits, 16 segments.
DEFINITIONS: dict[str, list[dict]] = {
    "computed_trait": [
        {"id": "orders_90d", "event": "Order Completed", "within": "90d", "count": True},
        {"id": "revenue_total", "event": "Order Completed", "sum": "revenue"},
        {"id": "favorite_department", "event": "Product Viewed", "within": "30d", "most_frequent": "department"},
        {"id": "views_30d", "event": "Product Viewed", "within": "30d", "count": True},
    ],
    "segment": [
        {"id": "pro_plan", "where": {"trait": "plan", "eq": "pro"}},
        {"id": "free_plan", "where": {"trait": "plan", "eq": "free"}},
        {"id": "dach", "where": {"trait": "country", "in": ["DE", "AT", "CH"]}},
        {"id": "high_ltv", "where": {"trait": "lifetime_value", "gte": 500}},
        {"id": "mid_ltv", "where": {"trait": "lifetime_value", "between": [100, 499.99]}},
        {"id": "buyers_90d", "where": {"computed": "orders_90d", "gte": 1}},
        {"id": "repeat_buyers", "where": {"computed": "orders_90d", "gte": 2}},
        {"id": "big_spenders", "where": {"event": "Order Completed", "within": "60d", "sum": "revenue", "gt": 150}},
        {"id": "active_browsers", "where": {"event": "Product Viewed", "within": "7d", "count": True, "gte": 2}},
        {"id": "cart_no_order", "where": {"all": [{"event": "Product Added", "within": "14d"},
                                                  {"not": {"event": "Order Completed", "within": "14d"}}]}},
        {"id": "dormant", "where": {"not": {"event": "Product Viewed", "within": "30d"}}},
        {"id": "outdoor_fans", "where": {"computed": "favorite_department", "eq": "Outdoor"}},
        {"id": "premium_browsers", "where": {"event": "Product Viewed", "within": "30d",
                                             "where": [{"property": "price", "gt": 100}], "count": True,
                                             "gte": 1}},
        {"id": "vip", "where": {"all": [{"segment": "high_ltv"}, {"segment": "buyers_90d"}]}},
        {"id": "dach_pro", "where": {"all": [{"segment": "dach"}, {"segment": "pro_plan"}]}},
        {"id": "win_back", "where": {"all": [{"computed": "revenue_total", "gt": 50}, {"segment": "dormant"}]}},
    ],
}

PLACEMENTS = {
    "home_banner": {"variants": [
        {"id": "vip", "when": {"segment": "vip"},
         "content": {"title": "Welcome back, {{ traits.first_name }}",
                     "subtitle": "Your {{ traits.plan }} perks: {{ traits.lifetime_value | round | int }} points",
                     "image": "/img/vip.jpg"}},
        {"id": "dach_pro", "when": {"all": [{"segment": "dach_pro"}, {"trait": "lifetime_value", "gte": 100}]},
         "content": {"title": "Hallo {{ traits.first_name }}", "image": "/img/dach.jpg"}},
        {"id": "champions", "when": {"trait": "rfm_segment", "in": ["Champions", "Loyal"]},
         "content": {"title": "Thanks for being a {{ scores.rfm_segment }} customer, {{ traits.first_name }}"}},
        {"id": "cart_reminder", "when": {"segment": "cart_no_order"},
         "content": {"title": "Still thinking it over?",
                     "body": "{% if 'outdoor_fans' in segments %}Gear up for the weekend{% else %}"
                             "Your cart is waiting{% endif %}"}},
        {"id": "app", "context": [{"property": "device", "eq": "mobile"}],
         "content": {"title": "Get the app", "image": "/img/app.jpg"}},
        {"id": "default", "content": {"title": "Welcome", "image": "/img/default.jpg"}},
    ]},
    "cart_page_reco": {"recommendations": 4, "max_per_category": 2, "variants": [
        {"id": "for_you", "when": {"segment": "buyers_90d"},
         "content": {"heading": "Picked for you, {{ traits.first_name }}"}},
        {"id": "popular", "content": {"heading": "Popular right now"}},
    ]},
    "checkout_offer": {"variants": [
        {"id": "upgrade", "when": {"all": [{"segment": "free_plan"}, {"computed": "revenue_total", "gt": 100}]},
         "context": [{"property": "page", "eq": "/checkout"}],
         "content": {"title": "Go pro and save on shipping",
                     "body": "You spent {{ computed_traits.revenue_total | round(2) }} with us"}},
        {"id": "win_back", "when": {"segment": "win_back"},
         "content": {"title": "We missed you: 10% off", "code": "BACK{{ profile.id[-4:] | upper }}"}},
        {"id": "free_shipping", "context": [{"property": "page", "eq": "/checkout"}],
         "content": {"title": "Free shipping over $50"}},
        {"id": "none", "content": {"title": ""}},
    ]},
}


def weighted(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


def department(product) -> str:
    return product.category.split(" > ")[0]


def customer_messages(catalog: Catalog, first: int, last: int, seed: int, now: int) -> list[dict]:
    """Customers `first..last-1`: an identify with traits, then 1-8 interactions over 60 days."""
    messages = []
    for u in range(first, last):
        rng = random.Random(f"{seed}:{u}")
        user = f"u{u}"
        ltv = round(rng.lognormvariate(4.5, 1.2), 2)
        joined = now - rng.randrange(DAY, 90 * DAY)
        messages.append({"type": "identify", "userId": user, "timestamp": iso(joined), "traits": {
            "plan": weighted(rng, PLANS), "country": weighted(rng, COUNTRIES),
            "first_name": rng.choice(FIRST_NAMES), "lifetime_value": ltv}})
        group = catalog.pick_group(rng)
        cart: list[dict] = []
        for age in sorted((rng.randrange(3_600_000_000, 60 * DAY) for _ in range(rng.randint(1, 8))), reverse=True):
            product = catalog.pick_product(catalog.pick_leaf(group if rng.random() < 0.8 else catalog.pick_group(rng),
                                                             rng), rng)
            at = now - age
            item = {"product_id": product.id, "price": product.price, "department": department(product)}
            roll = rng.random()
            if roll < 0.7:
                messages.append(track(user, "Product Viewed", item, at))
            elif roll < 0.88 or (not cart and roll < 0.93):
                cart.append(item)
                messages.append(track(user, "Product Added", item, at))
            else:
                lines = [{"product_id": i["product_id"], "price": i["price"], "quantity": 1} for i in cart or [item]]
                messages.append(track(user, "Order Completed", {
                    "products": lines, "revenue": round(sum(line["price"] for line in lines), 2)}, at))
                cart = []
    return messages


def build(data_dir: Path, profiles: int, items: int, seed: int) -> dict:
    """The store (catalog, definitions, customers folded, models trained, RFM and personas run once)
    and the placements file."""
    catalog = Catalog.generate(seed, items)
    now = int(time.time() * 1_000_000)
    t: dict[str, float] = {}
    began = time.perf_counter()
    # No scheduled recommendation training here or in the server: the set is trained below.
    with Engine.open(load_config(env={}, data_dir=data_dir, recs_retrain=0)) as engine:
        started = time.perf_counter()
        engine.catalog.upsert(catalog_items(catalog))
        engine.definitions.apply(DEFINITIONS)
        appended = 0
        for first in range(0, profiles, 10_000):
            messages = customer_messages(catalog, first, min(profiles, first + 10_000), seed, now)
            append(engine, messages, process=False)  # processed below, timed apart
            appended += len(messages)
        t["append_s"] = time.perf_counter() - started
        started = time.perf_counter()
        engine.processor.run_until_caught_up()  # identity, folds, then the audience stage
        t["process_s"] = time.perf_counter() - started
        events = engine.log.count()
        print(f"appended {appended:,} events in {t['append_s']:.1f} s; processed (with {events - appended:,} segment "
              f"announcements) in {t['process_s']:.1f} s", flush=True)
        started = time.perf_counter()
        models = train(engine.log, engine.state, engine.catalog, settings=TrainingSettings(tune=False))
        engine.rec_models.save(models)
        t["train_s"] = time.perf_counter() - started
        started = time.perf_counter()
        ran = engine.scheduler("decide-bench-build").run_due()  # rfm, personas: each in a child process, recorded
        t["jobs_s"] = time.perf_counter() - started
        jobs = {name: record.summary or record.error for name, record in engine.jobs.all().items()}
        sizes = engine.audiences.sizes()
    t["build_s"] = time.perf_counter() - began
    path = data_dir / "placements.yaml"
    path.write_text(yaml.safe_dump(PLACEMENTS, sort_keys=False))
    read_placements_file(path)  # the server would refuse to start on a mistake: say so here
    return {"events": events, "appended": appended, "summary": models.summary, "jobs": jobs, "ran": ran,
            "sizes": sizes, "placements": path, **t}


def bodies(profiles: int, n: int, seed: int, exposure: bool, names: list[str]) -> list[bytes]:
    """The request mix, as encoded bodies."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        body: dict = {"placements": rng.sample(names, rng.randint(1, len(names)))}
        if roll < 0.80:
            body["identifier"] = f"user_id:u{rng.randrange(profiles)}"
        elif roll < 0.95:
            body["identifier"] = f"user_id:nobody{seed}-{i}"
        if rng.random() < 0.5:
            body["context"] = {"device": rng.choice(["mobile", "desktop"]),
                               "page": rng.choice(["/", "/cart", "/checkout"])}
        if not exposure:
            body["log_exposure"] = False
        out.append(json.dumps(body).encode())
    return out


IDLE_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: one idle this long is not reused


async def post(port: int, pool: list, body: bytes) -> tuple[int, bytes]:
    """One POST /v1/decide on a kept-alive connection from `pool` (a new one if none is free, or
    if the free one sat idle long enough for the server to have closed it)."""
    reader = writer = None
    while pool and reader is None:
        reader, writer, used = pool.pop()
        if time.perf_counter() - used > IDLE_S:
            writer.close()
            reader = writer = None
    if reader is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/decide HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + SECRET_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    head = await reader.readuntil(b"\r\n\r\n")
    match = CONTENT_LENGTH.search(head)
    payload = await reader.readexactly(int(match[1]) if match else 0)
    pool.append((reader, writer, time.perf_counter()))
    return int(head[9:12]), payload


async def open_loop(port: int, todo: list[bytes], interval: float, start: float, connections: int,
                    sample_every: int) -> tuple[list[float], int, float, Counter, Counter]:
    """Send `todo` at `start + i * interval` over at most `connections` connections; latency from each
    scheduled time. Returns the latencies (s), how many failed, when the last answer came, the
    variants shown in a sample of the answers, and the statuses of failures."""
    pool: list = []
    slots = asyncio.Semaphore(connections)  # a request waits for a free connection, its clock running
    latencies: list[float] = []
    shown: Counter = Counter()
    errors: Counter = Counter()
    failed = 0

    async def one(i: int, body: bytes, scheduled: float) -> None:
        nonlocal failed
        try:
            async with slots:
                status, payload = await post(port, pool, body)
        except (OSError, asyncio.IncompleteReadError):
            status, payload = 0, b""
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            failed += 1
            errors[status] += 1
        elif i % sample_every == 0:
            answer = json.loads(payload)
            known = "known" if answer["profile_id"] else "unknown"
            for d in answer["decisions"]:
                shown[(d["placement"], d["variant"], known, bool(d.get("recommendations")))] += 1

    tasks = []
    for i, body in enumerate(todo):
        scheduled = start + i * interval
        if (wait := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, body, scheduled)))
    await asyncio.gather(*tasks)
    return latencies, failed, time.perf_counter(), shown, errors


def client(port: int, todo: list[bytes], interval: float, start: float, connections: int, sample_every: int,
           results: multiprocessing.Queue) -> None:
    results.put(asyncio.run(open_loop(port, todo, interval, start, connections, sample_every)))


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU of a process and its live descendants (the server and its processor child)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        for task in Path(f"/proc/{pid}/task").iterdir() if descendants else ():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


def run_rate(port: int, profiles: int, rate: float, seconds: float, clients: int, seed: int, connections: int,
             exposure: bool, server_pid: int, names: list[str]) -> dict:
    """`rate` requests/s for `seconds`, split over `clients` processes with interleaved schedules."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    todo = bodies(profiles, int(rate * seconds), seed, exposure, names)
    start = time.perf_counter() + 0.5
    sample_every = max(1, len(todo) // 2000)
    procs = [ctx.Process(target=client, args=(port, todo[c::clients], clients / rate, start + c / rate,
                                              connections, sample_every, results))
             for c in range(clients)]
    cpu_before, api_before = cpu_seconds(server_pid), cpu_seconds(server_pid, descendants=False)
    for p in procs:
        p.start()
    latencies: list[float] = []
    failed, ended = 0, start
    shown: Counter = Counter()
    errors: Counter = Counter()
    for _ in procs:
        lat, f, end, s, e = results.get()
        latencies += lat
        failed, ended = failed + f, max(ended, end)
        shown.update(s)
        errors.update(e)
    for p in procs:
        p.join()
    server_cpu = cpu_seconds(server_pid) - cpu_before
    api_cpu = cpu_seconds(server_pid, descendants=False) - api_before
    latencies.sort()

    def ms(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"rate": rate, "requests": len(latencies), "failed": failed, "errors": errors,
            "achieved": len(latencies) / (ended - start), "p50": ms(0.50), "p90": ms(0.90), "p99": ms(0.99),
            "max": 1000 * latencies[-1], "cpu_us": 1e6 * server_cpu / max(1, len(latencies)),
            "api_us": 1e6 * api_cpu / max(1, len(latencies)), "shown": shown}


def wait_ready(server, timeout: float = 600) -> dict:
    """Until processing has caught up (status lag 0, audience and journey stages included) and /readyz is 200."""
    deadline = time.monotonic() + timeout
    status = server.wait_processed(timeout)
    while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("/readyz never answered 200")
        time.sleep(0.2)
    return status


def breakdown(data_dir: Path, profiles: int, n: int, seed: int, profile: bool) -> None:
    """The pieces of a decision, timed in-process on the same store (the server stopped)."""
    from persona.activation.decide import ContentRenderer, Decider, choose
    from persona.activation.known import known
    from persona.activation.templates import context_for
    from persona.log.events import now_micros
    from persona.recommend.placements import apply_rules, candidates_for

    config = load_config(env={}, data_dir=data_dir, recs_retrain=0, placements=data_dir / "placements.yaml")
    with Engine.open(config) as engine:
        decider = Decider(find=engine.profiles.find, state=engine.state, audiences=engine.audiences,
                          model_traits=engine.model_traits, recommender=engine.recommender, catalog=engine.catalog,
                          placements=lambda: engine.placements)
        rng = random.Random(seed)
        users = [f"user_id:u{rng.randrange(profiles)}" for _ in range(n)]
        engine.recommender.current()  # load the set first
        timings: dict[str, float] = Counter()

        def timed(name: str, fn, *args):
            t0 = time.perf_counter()
            out = fn(*args)
            timings[name] += time.perf_counter() - t0
            return out

        placements = engine.placements
        reco = placements["cart_page_reco"]
        now = now_micros()
        context = {"device": "mobile", "page": "/checkout"}
        for user in users:
            found = timed("find: identifier -> profile (profiles.find)", engine.profiles.find, user)
            timed("profile read again (state.combined)", engine.state.combined, [found.id])
            timed("model traits (model_traits.of_profiles)", engine.model_traits.of_profiles, [found.id])
            timed("audience state read + decode (audiences.states)", engine.audiences.states, {found.id})
            who = timed("known() total (the three reads above)", known, found.id, engine.state, engine.audiences,
                        engine.model_traits)
            timed("template context for one placement (context_for)", context_for, found, who.facts.computed,
                  who.facts.segments, who.scores)
            for name in PLACEMENT_NAMES:
                variant, _ = timed("choose a variant (3 placements)", choose, placements[name].variants, who,
                                   context, now)
                if variant is not None:
                    timed("render content (3 placements)", ContentRenderer(who, context).render, variant.content, name)
            models = engine.recommender.current()
            scored = timed("recommendations: models.for_user", models.for_user, found.id,
                           candidates_for(reco.recommendations))
            items = timed("recommendations: catalog.get_many", engine.catalog.get_many, [s.item_id for s in scored])
            bought = timed("recommendations: models.purchases", models.purchases, found.id)
            timed("recommendations: apply_rules", apply_rules, reco, scored, items, bought, now, reco.recommendations)
            timed("whole decide, 3 placements, no exposure", decider.decide, user, PLACEMENT_NAMES, context,
                  now_micros(), False)
            timed("whole decide, home_banner only, no exposure", decider.decide, user, ["home_banner"], context,
                  now_micros(), False)
            timed("whole decide, home_banner only, with exposure (appended, one at a time)",
                  lambda *a: engine.log.append(decider.decide(*a)[1]), user, ["home_banner"], context,
                  now_micros(), True)
        statements: list[str] = []  # every SQL statement one decision runs, on both stores
        for name, db in (("log.db", engine.log_db), ("state.db", engine.state_db)):
            db.read().set_trace_callback(lambda sql, name=name: statements.append(f"{name}: {' '.join(sql.split())}"))
        decider.decide(users[0], PLACEMENT_NAMES, context, now_micros(), False)
        for db in (engine.log_db, engine.state_db):
            db.read().set_trace_callback(None)
        print("\nSQL one decision runs (3 placements, no exposure; the reads of this thread):\n")
        print("```\n" + "\n".join(q[:200] for q in statements) + "\n```")
        print(f"\nIn-process, {n:,} known customers, mean µs per call:\n")
        print("| piece | µs |\n|---|---:|")
        for name, total in timings.items():
            print(f"| {name} | {1e6 * total / n:,.0f} |")
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            for user in users:
                decider.decide(user, PLACEMENT_NAMES, context, now_micros(), False)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
            print(f"\ncProfile of {n:,} whole decisions (3 placements, no exposure), by cumulative time:\n")
            print("```\n" + "\n".join(line for line in out.getvalue().splitlines() if line.strip())[:8000] + "\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=5_000, help="catalog products")
    parser.add_argument("--rates", default="500,1000,2000", help="offered requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30, help="seconds per rate")
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections per client process")
    parser.add_argument("--no-exposure", action="store_true", help="log_exposure: false (no Content Shown events)")
    parser.add_argument("--placements", default=",".join(PLACEMENT_NAMES),
                        help="the placements requests choose 1 to all of (default: all three)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="N",
                        help="afterwards, time the pieces of a decision in-process for N known customers")
    parser.add_argument("--profile", action="store_true", help="with --breakdown: a cProfile of the decisions too")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it (must not exist)")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        parser.error(f"{args.keep} exists: --keep wants a fresh directory")
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="persona-decide-"))
    exposure = not args.no_exposure
    names = args.placements.split(",")
    if unknown := set(names) - set(PLACEMENT_NAMES):
        parser.error(f"unknown placements {sorted(unknown)}; known: {', '.join(PLACEMENT_NAMES)}")
    try:
        built = build(data_dir, args.profiles, args.items, args.seed)
        s = built["summary"]
        non_empty = sum(1 for n in built["sizes"].values() if n)
        print(f"trained in {built['train_s']:.1f} s ({s['users']:,} users, {s['items']:,} items, "
              f"{s['interactions']:,} interactions, tuning off); jobs {', '.join(built['ran']) or 'none'} in "
              f"{built['jobs_s']:.1f} s ({'; '.join(f'{k}: {v}' for k, v in built['jobs'].items())})")
        print(f"**build: {built['build_s']:.1f} s** for {args.profiles:,} profiles, {built['events']:,} events, "
              f"{len(DEFINITIONS['segment'])} segments + {len(DEFINITIONS['computed_trait'])} computed traits "
              f"({non_empty} segments non-empty), {len(PLACEMENTS)} placements", flush=True)
        started = time.perf_counter()
        server = start_server(data_dir, "pw_bench", SECRET_KEY,
                              extra_env={"PERSONA_PLACEMENTS": str(built["placements"])})
        try:
            status = wait_ready(server)
            print(f"server up and caught up in {time.perf_counter() - started:.1f} s "
                  f"(lag {status['processor']['lag']}, audiences lag {status['processor']['audiences']['lag']})")
            # warm-up: loads the model set, opens the readers
            run_rate(server.port, args.profiles, 100, 3, 1, args.seed, 16, exposure, server.process.pid, names)
            cores = os.cpu_count()
            print(f"\n{args.seconds:g} s per rate, {args.clients} client processes x {args.connections} connections; "
                  f"**the clients share this machine's {cores} cores with the server** (API process + its processor "
                  f"process), so figures are for the whole box. Exposure logging "
                  f"{'on (Content Shown appended per decision)' if exposure else 'off'}; requests name 1-{len(names)} "
                  f"of {', '.join(names)}.\n")
            print("| offered req/s | achieved req/s | requests | failed | p50 ms | p90 ms | p99 ms | max ms "
                  "| server CPU µs/req | of which API process |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
            shown: Counter = Counter()
            for i, rate in enumerate(args.rates.split(",")):
                r = run_rate(server.port, args.profiles, float(rate), args.seconds, args.clients, args.seed + i + 1,
                             args.connections, exposure, server.process.pid, names)
                shown.update(r["shown"])
                print(f"| {r['rate']:,.0f} | {r['achieved']:,.0f} | {r['requests']:,} | {r['failed']} | "
                      f"{r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['cpu_us']:,.0f} | "
                      f"{r['api_us']:,.0f} |",
                      flush=True)
                if r["errors"]:
                    print(f"  failures by status: {dict(r['errors'])}")
            with server.reader() as reader:
                processor = reader.get("/v1/status").json()["processor"]
            print(f"\nafter the runs: processor lag {processor['lag']:,} events"
                  f"{' (exposures not yet folded)' if processor['lag'] else ''}")
            total = sum(shown.values())
            if total:
                print(f"\nVariants shown (a sample of {total:,} decisions):\n")
                print("| placement | variant | profile | with recommendations | share |\n|---|---|---|---|---:|")
                for (placement, variant, who, recs), n in sorted(shown.items(), key=lambda kv: (kv[0][0], -kv[1])):
                    print(f"| {placement} | {variant} | {who} | {'yes' if recs else ''} | {100 * n / total:.1f}% |")
        finally:
            server.stop()
        if args.breakdown:
            breakdown(data_dir, args.profiles, args.breakdown, args.seed, args.profile)
    finally:
        if args.keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
