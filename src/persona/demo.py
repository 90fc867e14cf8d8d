"""`persona demo`: a synthetic shop streamed through the real HTTP API of a real server.

Starts the server on an embedded store, posts the seeded workload as Segment batches
(what an SDK would send), waits for the processor, then shows what persona made of it:
profiles, identity stitching measured against the generator's ground truth, the top
customers, RFM and personas, predictive scores, the live audiences (one of them on a score),
recommendations, and the URLs to explore.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from persona.config import Config
from persona.engine import Engine
from persona.errors import ConfigError, NotEnoughData
from persona.profiles.profile import Profile
from persona.server import Server
from persona.status import lag_of
from persona.synth import Customer, Workload

# Audiences the demo keeps live. The synthetic shop's events end some weeks ago (it starts
# 2026-09-01), so the windows are long enough to still hold them.
DEMO_AUDIENCES: dict[str, list[dict[str, Any]]] = {
    "computed_trait": [
        {"id": "orders_total", "name": "Orders", "event": "Order Completed", "count": True},
        {"id": "avg_order_value", "name": "Average order value", "event": "Order Completed", "avg": "revenue"},
        {"id": "favorite_category", "name": "Favourite category", "event": "Product Viewed", "within": "180d",
         "most_frequent": "category"},
    ],
    "segment": [
        {"id": "big_spenders", "name": "Spent over 300 in 90 days", "where": {
            "event": "Order Completed", "within": "90d", "sum": "revenue", "gt": 300}},
        {"id": "repeat_buyers", "name": "Ordered twice or more", "where": {"computed": "orders_total", "gte": 2}},
        {"id": "coupon_users", "name": "Ordered with a coupon", "where": {
            "event": "Order Completed", "where": [{"property": "coupon", "exists": True}]}},
        {"id": "window_shoppers", "name": "10+ product views in 90 days, no order", "where": {"all": [
            {"event": "Product Viewed", "within": "90d", "count": True, "gte": 10},
            {"not": {"event": "Order Completed", "within": "90d"}}]}},
        {"id": "lapsed_buyers", "name": "Bought before, not in the last 60 days", "where": {"all": [
            {"computed": "orders_total", "gte": 1}, {"not": {"event": "Order Completed", "within": "60d"}}]}},
        {"id": "most_valuable", "name": "Top tenth by predicted 12-month value (a model trait)", "where": {
            "trait": "predicted_clv_12m_percentile", "gt": 90}},
    ],
}


@dataclass(frozen=True)
class Stitching:
    """How well profiles match the people the generator made."""

    customers: int
    signed_up: int
    fully_stitched: int  # signed-up customers whose every device resolves to their one profile

    @property
    def rate(self) -> float:
        return self.fully_stitched / self.signed_up if self.signed_up else 1.0


def measure_stitching(engine: Engine, customers: Iterator[Customer]) -> Stitching:
    total = signed = stitched = 0
    for customer in customers:
        total += 1
        if not customer.user_id:
            continue
        signed += 1
        owner = engine.state.owner("user_id", customer.user_id)
        devices = {engine.state.owner("anonymous_id", a) for a in customer.anonymous_ids}
        resolved = {engine.state.profile(p).id for p in devices if p} if owner else set()  # type: ignore[union-attr]
        if owner and resolved == {owner}:
            stitched += 1
    return Stitching(total, signed, stitched)


def prepare_data_dir(data_dir: Path, fresh: bool) -> None:
    if fresh and data_dir.exists():
        if not (data_dir / "log.db").exists() and any(data_dir.iterdir()):
            raise ConfigError(f"{data_dir} is not empty and is not a persona data directory; choose another",
                              field="data_dir")
        shutil.rmtree(data_dir)


def stream(console: Console, url: str, write_key: str, workload: Workload, server: Server) -> int:
    sent = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn())
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=60) as client, \
            Progress(*columns, console=console) as progress:
        task = progress.add_task("sending events", total=None, info="")
        started = time.monotonic()
        for batch in workload.batches(size=100):
            response = client.post("/v1/batch", json={"batch": batch})
            response.raise_for_status()
            sent += len(batch)
            if sent % 2000 < 100:
                lag = lag_of(server.engine)
                rate = sent / max(time.monotonic() - started, 1e-9)
                progress.update(task, completed=sent, info=f"{rate:,.0f}/s  processor lag {lag:,}")
        progress.update(task, completed=sent, total=sent)
        task = progress.add_task("processing", total=sent, info="")
        while lag := lag_of(server.engine):
            progress.update(task, completed=max(0, sent - lag))
            time.sleep(0.1)
        progress.update(task, completed=sent)
    return sent


def by_revenue(engine: Engine) -> list[Profile]:
    return sorted(engine.state.all_profiles(), key=lambda p: p.orders.revenue - p.orders.refunded, reverse=True)


def top_email(engine: Engine) -> str | None:
    """The email of the customer with the most net revenue."""
    return next((p.identifiers["email"][0] for p in by_revenue(engine) if p.identifiers.get("email")), None)


def top_customers(engine: Engine, n: int = 5) -> Table:
    table = Table(title=f"Top {n} customers by net revenue")
    for column in ("profile", "email", "orders", "net revenue", "devices", "merged"):
        table.add_column(column)
    for p in by_revenue(engine)[:n]:
        table.add_row(p.id, ", ".join(p.identifiers.get("email", [])), str(p.orders.count),
                      f"{p.orders.revenue - p.orders.refunded:,.2f}", str(len(p.identifiers.get("anonymous_id", []))),
                      str(len(p.merged_from)))
    return table


def audiences(engine: Engine) -> Table:
    table = Table(title="Audiences, kept live as the events came in")
    for column in ("segment", "members", "definition"):
        table.add_column(column)
    sizes = engine.audiences.sizes()
    for segment in DEMO_AUDIENCES["segment"]:
        table.add_row(segment["id"], f"{sizes.get(segment['id'], 0):,}", segment["name"])
    return table


def personas(engine: Engine, console: Console) -> Table | None:
    """RFM scores and a persona fit now (they also run on schedule), as traits on the profiles."""
    from persona.jobs.rfm import refresh_rfm
    from persona.personas.runs import run_personas

    console.print(f"RFM: {refresh_rfm(engine.state, engine.model_traits).summary()}")
    try:
        run = run_personas(engine.log, engine.state, engine.model_traits, engine.persona_runs)
    except NotEnoughData as exc:
        console.print(f"personas: {exc.message}")
        return None
    table = Table(title=f"Personas ({run.fit.chosen.method}, k = {len(run.personas)})")
    for column in ("persona", "customers", "what sets them apart"):
        table.add_column(column)
    for persona in run.personas:
        table.add_row(persona.name, f"{persona.size:,}", persona.description)
    return table


def predictions(engine: Engine, workload: Workload, console: Console) -> None:
    """Lifetime value, purchase propensity and churn trained and scored as of the shop's last day,
    then the segments on those scores brought up to date."""
    from persona.log.events import to_micros
    from persona.predict import lifecycle
    from persona.predict.features import read_events

    end = to_micros(workload.end)
    with console.status("training and scoring the predictive models"):
        events = read_events(engine.log, engine.state, end)  # one read for both classifiers
        for kind in lifecycle.KINDS:
            try:
                version = lifecycle.train(engine, kind, end, events)
                line = f"{version.label} trained; {lifecycle.score(engine, version, end, events)}"
            except NotEnoughData as exc:
                line = f"not trained: {exc.message}"
            console.print(f"predictive {kind}: {line}", highlight=False)
        deadline = time.monotonic() + 60
        while engine.model_traits.changes(1) and time.monotonic() < deadline:
            time.sleep(0.1)  # the audience stage re-evaluates the customers whose scores changed
    needed = 2 * max(lifecycle.PROPENSITY_DAYS, engine.config.churn_days) + 30  # two horizons, and a past
    if workload.days < needed:
        console.print(f"  (propensity and churn learn from outcomes a horizon or two back: "
                      f"`persona demo --days {needed}` gives the shop enough history)")


def recommendations(engine: Engine, workload: Workload, url: str, secret_key: str, email: str | None) -> Table:
    """The catalog imported, the models trained on the log, and one customer's list asked of the API."""
    from persona.recommend.modelset import train
    from persona.synth.catalog import catalog_items

    engine.catalog.upsert(catalog_items(workload.catalog))
    models = train(engine.log, engine.state, engine.catalog, settings=engine.config.recommendations)
    engine.rec_models.save(models)
    engine.recommender.refresh()
    weights = ", ".join(f"{name} {w:.1f}" for name, w in models.summary["blend"]["weights"].items() if w)
    table = Table(title=f"Recommendations for {email} (blend of {weights}; trained in "
                        f"{models.summary['seconds']:.1f} s)")
    for column in ("item", "category", "score", "why"):
        table.add_column(column)
    if email is not None:
        answer = httpx.get(f"{url}/v1/recommendations/email:{email}", params={"k": 5},
                           headers={"Authorization": f"Bearer {secret_key}"}, timeout=30).json()
        for row in answer["data"]:
            table.add_row(row["name"] or row["item_id"], row["category"] or "", f"{row['score']:.3f}", row["reason"])
    return table


def run_demo(config: Config, *, customers: int, days: int, seed: int, fresh: bool, keep_serving: bool,
             console: Console) -> Stitching:
    prepare_data_dir(Path(config.data_dir), fresh)
    write_key = config.write_key or f"pw_{secrets.token_urlsafe(16)}"
    secret_key = config.secret_key or f"ps_{secrets.token_urlsafe(16)}"
    config = replace(config, write_key=write_key, secret_key=secret_key)
    server = Server(config)
    server.start_in_thread()
    url = server.url
    console.rule("[bold]persona demo")
    console.print(f"A synthetic shop: {customers:,} customers over {days} days (seed {seed}), "
                  f"sent through the Segment API of a real server.")
    console.print(f"  server       {url}   (store: {config.data_dir})")
    console.print(f"  API docs     {url}/docs")
    console.print(f"  write key    {write_key}")
    console.print(f"  secret key   {secret_key}")
    try:
        server.engine.definitions.apply(DEMO_AUDIENCES)
        workload = Workload(seed=seed, customers=customers, days=days)
        started = time.monotonic()
        sent = stream(console, url, write_key, workload, server)
        elapsed = time.monotonic() - started
        engine = server.engine
        counts = engine.state.counts()
        stitching = measure_stitching(engine, workload.customers())
        console.print(f"\n[bold]{sent:,}[/bold] events ingested and applied in {elapsed:.1f} s "
                      f"({sent / elapsed:,.0f} events/s end to end)")
        console.print(f"[bold]{counts.profiles:,}[/bold] profiles for {stitching.customers:,} customers; "
                      f"{counts.merges:,} merges of anonymous and device profiles; "
                      f"{counts.dropped_links:,} links refused by identity limits")
        console.print(f"identity stitching: {stitching.fully_stitched:,} of {stitching.signed_up:,} signed-up "
                      f"customers have every device in their one profile ({stitching.rate:.1%})")
        console.print(top_customers(engine))
        if (found := personas(engine, console)) is not None:
            console.print(found)
        predictions(engine, workload, console)
        console.print(audiences(engine))
        email = top_email(engine)
        console.print(recommendations(engine, workload, url, secret_key, email))
        console.print("\nTry:")
        auth = f'-H "Authorization: Bearer {secret_key}"'
        if email:
            console.print(f"  curl {auth} {url}/v1/profiles/email:{email}")
            console.print(f"  curl {auth} '{url}/v1/profiles/email:{email}/events?limit=5'")
            console.print(f"  curl {auth} '{url}/v1/recommendations/email:{email}?k=10'")
        console.print(f"  curl {auth} '{url}/v1/segments/big_spenders/members?format=csv'")
        console.print(f"  curl {auth} {url}/v1/status")
        if keep_serving:
            console.print("\nServing until Ctrl-C.")
            while True:
                time.sleep(3600)
        return stitching
    except KeyboardInterrupt:
        return Stitching(0, 0, 0)
    finally:
        server.stop()
