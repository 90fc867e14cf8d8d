"""The `persona` command: thin wrappers over the library."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from persona.access.keys import KeyKind
from persona.config import SETTINGS, Config, load_config
from persona.engine import Engine
from persona.errors import PersonaError
from persona.log.events import now_micros, to_micros

app = typer.Typer(help="persona: self-hosted real-time customer data and personalization engine.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Sources, write keys and secret keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
segments_app = typer.Typer(help="Segment and computed-trait definitions (docs/segments.md).", no_args_is_help=True)
app.add_typer(segments_app, name="segments")
rfm_app = typer.Typer(help="RFM scores, kept as model traits on every customer with an order.", no_args_is_help=True)
app.add_typer(rfm_app, name="rfm")
models_app = typer.Typer(help="Predictive models (lifetime value, purchase propensity, churn): train, score, "
                                "evaluate, versions, rollback (docs/predictive.md).", no_args_is_help=True)
app.add_typer(models_app, name="models")
personas_app = typer.Typer(help="Clustering personas: fit, describe, compare with the previous run.",
                           no_args_is_help=True)
app.add_typer(personas_app, name="personas")
catalog_app = typer.Typer(help="The product catalog recommendations read (docs/catalog.md).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
recs_app = typer.Typer(help="Recommendations: train the models a server serves (docs/recommendations.md).",
                       no_args_is_help=True)
app.add_typer(recs_app, name="recs")
journeys_app = typer.Typer(help="Journeys: event-driven triggers and multi-step journeys (docs/activation.md).",
                           no_args_is_help=True)
app.add_typer(journeys_app, name="journeys")
placements_app = typer.Typer(help="Placements: recommendation rules and content variants (docs/activation.md).",
                             no_args_is_help=True)
app.add_typer(placements_app, name="placements")
deliveries_app = typer.Typer(help="The outbox: webhook and email deliveries, dead letters and replay.",
                             no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")
suppressions_app = typer.Typer(help="The suppression list: identifiers never to message.", no_args_is_help=True)
app.add_typer(suppressions_app, name="suppressions")
profiles_app = typer.Typer(help="Unified customer profiles.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (env PERSONA_DATA_DIR).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML config file (env PERSONA_CONFIG).")]
Store = Annotated[str | None, typer.Option(
    "--store", help="sqlite:///DIR or postgresql://user@host/db?schema=NAME (env PERSONA_STORE).")]


def _config(**overrides: object) -> Config:
    config = load_config(**{k: v for k, v in overrides.items() if k != "log_level"})
    if overrides.get("log_level"):
        config = config.with_overrides(log_level=overrides["log_level"])
    logging.basicConfig(level=config.log_level.upper(), format="%(message)s", datefmt="%X",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    return config


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env PERSONA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PERSONA_PORT).")] = None,
    role: Annotated[str, typer.Option(help="all: the API and a processor (it shares the work with any "
                                           "`persona worker`); api: the API only, stateless, for running "
                                           "several behind a load balancer.")] = "all",
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Run the HTTP API and the stream processor (on the embedded store unless --store says otherwise)."""
    from persona.server import Server

    if role not in ("all", "api"):
        raise typer.BadParameter(f"unknown role {role!r}; use all or api", param_hint="--role")
    settings = _config(host=host, port=port, data_dir=data_dir, config=config, store=store)
    server = Server(settings.with_overrides(processor="off") if role == "api" else settings)
    if server.created_keys:
        console.print("[bold]First start: created keys (shown only once)[/bold]")
        for name, key in server.created_keys.items():
            console.print(f"  {name}: [green]{key}[/green]")
    console.print(f"persona listening on {server.url}  (API docs: {server.url}/docs)")
    server.run()


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="Synthetic customers to simulate.")] = 2000,
    days: Annotated[int, typer.Option(help="Days of shop activity to simulate.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the workload: same seed, same events.")] = 42,
    port: Annotated[int | None, typer.Option(help="Port of the demo server.")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Store of the demo (recreated unless --keep).")]
    = Path("persona-demo"),
    keep: Annotated[bool, typer.Option("--keep", help="Keep the existing demo store instead of starting fresh.")]
    = False,
    serve_after: Annotated[bool, typer.Option("--serve/--exit", help="Keep serving after the workload.")] = True,
) -> None:
    """Start a server on the embedded store and stream a synthetic shop through its HTTP API."""
    from persona.demo import run_demo

    config = _config(data_dir=data_dir, port=port, log_level="WARNING")
    run_demo(config, customers=customers, days=days, seed=seed, fresh=not keep, keep_serving=serve_after,
             console=console)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="The same as GET /v1/status, as JSON.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Log size, lag and owner of every processing partition, live workers, profile counts."""
    from persona.status import status_of

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        report = status_of(engine)
    if as_json:
        console.print_json(data=report)
        return
    log_, processing, state = report["log"], report["processor"], report["state"]
    console.print(f"log: {log_['events']:,} events (last seq {log_['last_seq']:,}), "
                  f"{log_['quarantined']:,} quarantined")
    console.print(f"processing: lag {processing['lag']:,}; workers: {', '.join(processing['workers']) or 'none'}")
    table = Table("stage", "position", "waiting", "owner")
    identity = processing["identity"]
    table.add_row("identity", f"{identity['position']:,}", f"{identity['lag']:,}", identity["owner"] or "-")
    for p in processing["partitions"]:
        table.add_row(f"fold:{p['partition']}", f"{p['position']:,}", f"{p['pending']:,}", p["owner"] or "-")
    audiences = processing["audiences"]
    table.add_row("audiences", f"{audiences['position']:,}", f"{audiences['lag']:,}", audiences["owner"] or "-")
    journeys = processing["journeys"]
    table.add_row("journeys", f"{journeys['position']:,}", f"{journeys['lag']:,}", journeys["owner"] or "-")
    console.print(table)
    deliveries = "; ".join(f"{name}: " + ", ".join(f"{n:,} {status}" for status, n in counts.items())
                           for name, counts in journeys["deliveries"].items())
    console.print(f"journeys: {journeys['pending_timers']:,} timers pending; deliveries: {deliveries or 'none'}",
                  markup=False)
    if processing["error"]:
        console.print(f"[red]last error[/red] in {processing['error_in']} at {processing['error_at']}: "
                      f"{escape(processing['error'])}")
    console.print(f"profiles: {state['profiles']:,} ({state['merged_profiles']:,} merged away), "
                  f"{state['identities']:,} identifiers, {state['merges']:,} merges, "
                  f"{state['dropped_links']:,} links dropped by limits")
    for job in report["jobs"]:
        due = f"due, waiting: {job['waiting']}" if job["waiting"] else f"next due {job['next_due']}"
        if job["last_started"] is None:
            console.print(f"job {job['name']}: never ran; {due if job['waiting'] else 'due now'}", markup=False)
            continue
        outcome = ("running" if job["running"] else f"error: {job['error']}" if job["error"]
                   else f"{job['summary']} ({job['duration']:.1f} s)")
        console.print(f"job {job['name']}: last started {job['last_started']} by {job['runner']}: {outcome}; {due}",
                      markup=False)


@app.command()
def worker(
    worker_id: Annotated[str | None, typer.Option("--id", help="Name of this worker in status and logs "
                                                             "(default: host-pid).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Process the event log: take a fair share of the partitions (and identity, if free) until stopped."""
    import signal
    import threading

    from persona.server import tune_gc
    from persona.storage.leases import default_worker_id

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Engine.open(_config(data_dir=data_dir, config=config, store=store), "persona worker") as engine:
        tune_gc()
        runner = worker_id or default_worker_id()
        engine.scheduler(runner).start(stop)  # RFM, personas: whichever worker gets to a due job runs it
        deliverer = engine.deliverer()  # webhooks: every worker sends, each delivery claimed by one
        if deliverer is not None:
            deliverer.start()
        engine.worker(runner).run(stop)
        if deliverer is not None:
            deliverer.stop()


@app.command()
def migrate(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Apply the store's pending schema migrations (every command also does on start) and say which."""
    from persona.engine import open_databases

    log_db, state_db = open_databases(_config(data_dir=data_dir, config=config, store=store), "persona migrate")
    try:
        for name, db in (("log", log_db), ("state", state_db)):
            done = ", ".join(map(str, db.applied)) if db.applied else "none pending"
            console.print(f"{name}: applied {done}")
    finally:
        log_db.close()
        state_db.close()


@app.command()
def rebuild(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Drop all derived state (profiles, identity graph) and replay the whole event log."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("replaying the event log", total=engine.log.count())
        n = engine.rebuild(progress=lambda done: bar.update(task, completed=done))
        counts = engine.state.counts()
        console.print(f"replayed {n} events: {counts.profiles} profiles, {counts.merges} merges")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file (.jsonl.gz and .csv.gz too).")],
    mapping: Annotated[Path | None, typer.Option(help="YAML mapping from columns to message fields "
                                                      "(required for CSV; see docs/configuration.md).")] = None,
    source: Annotated[str, typer.Option(help="Source the events are stored for (created if new).")] = "import",
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows "
                                                      "(default: FILE.rejects.jsonl).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: from the "
                                                             "extension).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Bulk import events into the log; bad rows go to a rejects file and the quarantine (exit 1 if any)."""
    from persona.ingest.importer import import_file
    from persona.ingest.mapping import load_mapping

    row_mapping = load_mapping(mapping) if mapping is not None else None
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        result = import_file(file, log=engine.log, keys=engine.keys, source=source, mapping=row_mapping,
                             format=fmt, rejects_path=rejects,  # type: ignore[arg-type]
                             progress=lambda p: bar.update(task, completed=p.done, total=p.total))
    console.print(f"{file.name} → source {result.source_id!r}: {result.rows} rows read, {result.accepted} accepted, "
                  f"{result.duplicates} duplicates, {result.rejected} rejected")
    if result.rejected:
        console.print(f"[yellow]rejected rows written to {result.rejects_path} and quarantined[/yellow]")
        for r in result.first_rejects[:5]:
            console.print(f"  {r.where}: {r.field + ': ' if r.field else ''}{r.reason}", markup=False)
        raise typer.Exit(1)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Output directory (date=YYYY-MM-DD/ partitions).")],
    fmt: Annotated[str, typer.Option("--format", help="Output format; parquet is the one there is.")] = "parquet",
    since: Annotated[str | None, typer.Option(help="First day to export, YYYY-MM-DD (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day to export, inclusive, YYYY-MM-DD (UTC).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """The event log as Parquet partitioned by day; re-exporting replaces the days it covers."""
    from persona.log.export import export_parquet

    if fmt != "parquet":
        raise typer.BadParameter(f"unknown format {fmt!r}; use parquet", param_hint="--format")
    first, last = _day_option(since, "--since"), _day_option(until, "--until")
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        total = engine.log.count() if first is None and last is None else None
        task = bar.add_task("exporting events", total=total)
        result = export_parquet(engine.log, out, since=first, until=last,
                                progress=lambda n: bar.update(task, completed=n))
    console.print(f"exported {result.events} events in {result.files} files over {result.days} days to {out}"
                  + (f"; removed {result.removed_days} days that have no events now" if result.removed_days else ""))


def _day_option(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@keys_app.command("create-write")
def create_write(source: Annotated[str, typer.Argument(help="Source id, e.g. 'web' or 'ios'.")],
                 name: str = "cli", data_dir: DataDir = None, store: Store = None) -> None:
    """Create a source (if new) and a write key for it."""
    with Engine.open(_config(data_dir=data_dir, store=store)) as engine:
        key = engine.keys.create_key(KeyKind.WRITE, name, source)
    console.print(f"write key for source {source!r}: [green]{key}[/green]  (shown only once)")


@keys_app.command("create-secret")
def create_secret(name: str = "cli", data_dir: DataDir = None, store: Store = None) -> None:
    """Create a secret key (reads and administration)."""
    with Engine.open(_config(data_dir=data_dir, store=store)) as engine:
        key = engine.keys.create_key(KeyKind.SECRET, name)
    console.print(f"secret key: [green]{key}[/green]  (shown only once)")


@keys_app.command("list")
def list_keys(data_dir: DataDir = None, store: Store = None) -> None:
    """Active keys (fingerprints only) and sources."""
    with Engine.open(_config(data_dir=data_dir, store=store)) as engine:
        for key in engine.keys.list_keys():
            console.print(f"{key.fingerprint}  {key.kind.value:6}  source={key.source_id or '-':10}  {key.name}")


@keys_app.command("revoke")
def revoke(fingerprint: str, data_dir: DataDir = None, store: Store = None) -> None:
    """Revoke the key whose fingerprint starts with FINGERPRINT."""
    with Engine.open(_config(data_dir=data_dir, store=store)) as engine:
        ok = engine.keys.revoke(fingerprint)
    console.print("revoked" if ok else "no active key has that fingerprint")
    raise typer.Exit(0 if ok else 1)


@segments_app.command("apply")
def segments_apply(
    file: Annotated[Path, typer.Argument(help="YAML with segments: and computed_traits: lists.")],
    prune: Annotated[bool, typer.Option("--prune", help="Also delete definitions the file does not have.")] = False,
    allow_unseen_events: Annotated[bool, typer.Option(
        "--allow-unseen-events", help="Accept events the log has not seen yet (by default refused: a typo?).")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Make the store hold the file's definitions (checked together first); a running server sees them at once."""
    from persona.segments.store import read_definitions_file

    definitions = read_definitions_file(file)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        applied = engine.definitions.apply(definitions, prune=prune, check_events=not allow_unseen_events)
    for what in ("created", "updated", "deleted"):
        for label in getattr(applied, what):
            console.print(f"{what} {label}")
    console.print(f"{len(applied.created)} created, {len(applied.updated)} updated, "
                  f"{len(applied.unchanged)} unchanged, {len(applied.deleted)} deleted")


@journeys_app.command("apply")
def journeys_apply(
    file: Annotated[Path, typer.Argument(help="YAML with a journeys: list.")],
    prune: Annotated[bool, typer.Option("--prune", help="Also delete journeys the file does not have.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Make the store hold the file's journeys (all checked first); running workers pick them up within a second."""
    from persona.activation.store import read_journeys_file

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        applied = engine.journeys.apply(read_journeys_file(file), prune=prune)
    _print_applied("journey", applied)


@journeys_app.command("stats")
def journeys_stats(
    journey_id: Annotated[str | None, typer.Argument(help="One journey (default: every one).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """How many profiles entered each journey, converted, exited; per step, reached and waiting now."""
    from persona.activation.journeys import parse_journey

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        ids = [journey_id] if journey_id else [body["id"] for body in engine.journeys.list()]
        for one in ids:
            stats = engine.journey_store.stats(parse_journey(engine.journeys.get(one)))
            table = Table("step", "kind", "reached", "waiting now", title=f"journey {one}: "
                          + ", ".join(f"{stats[k]:,} {k}" for k in ("entered", "completed", "converted", "exited",
                                                                      "holdout", "ended") if stats[k]))
            for step in stats["steps"]:
                table.add_row(step["step"], step["kind"], f"{step['reached']:,}", f"{step['waiting']:,}")
            console.print(table)


@placements_app.command("apply")
def placements_apply(
    file: Annotated[Path, typer.Argument(help="YAML: placement name -> rules and variants.")],
    prune: Annotated[bool, typer.Option("--prune", help="Also delete placements the file does not have.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Make the store hold the file's placements (all checked first); servers serve them within a second."""
    from persona.recommend.placements import read_placements_file

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        applied = engine.placement_store.apply(read_placements_file(file), prune=prune)
    _print_applied("placement", applied)


def _print_applied(kind: str, applied: dict[str, list[str]]) -> None:
    """`created journey:cart_abandoned` per change, then `1 created, 0 updated, 2 unchanged, 0 deleted`."""
    for what in ("created", "updated", "deleted"):
        for name in applied[what]:
            console.print(f"{what} {kind}:{name}")
    console.print(", ".join(f"{len(names)} {what}" for what, names in applied.items()))


@placements_app.command("list")
def placements_list(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Every placement, with its variants and how many recommendations it carries."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        for name, placement in sorted(engine.placements.items()):
            variants = ", ".join(v.id for v in placement.variants) or "no variants"
            recs = f"{placement.recommendations} recommendations" if placement.recommendations else "no recommendations"
            console.print(f"{name:30} {variants}; {recs}", markup=False)


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[str | None, typer.Option(help="pending, delivering, delivered or dead (dead letters).")] = None,
    destination: Annotated[str | None, typer.Option(help="One destination (or `email`).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, in id order.")] = 50,
    after: Annotated[int, typer.Option(help="Start after this delivery id (paging).")] = 0,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Counts per destination and status, then the deliveries themselves with their last error."""
    from persona.activation.outbox import STATUSES

    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="--status")
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        for name, counts in engine.outbox.counts().items():
            console.print(f"{name}: " + ", ".join(f"{n:,} {what}" for what, n in counts.items()), markup=False)
        table = Table("id", "destination", "key", "status", "attempts", "last error")
        for d in engine.outbox.deliveries(destination, status, limit, after):
            error = f"{d.last_status_code or ''} {d.last_error or ''}".strip()
            table.add_row(str(d.id), d.destination, d.key, d.status, str(d.attempts), error[:80])
        console.print(table)


@deliveries_app.command("replay")
def deliveries_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids to send again, whatever their status.")] = None,
    destination: Annotated[str | None, typer.Option(help="Every dead letter of this destination.")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Put deliveries back in line, due now with their attempts reset; a running deliverer sends them."""
    if bool(ids) == (destination is not None):
        raise typer.BadParameter("give delivery ids or --destination, not both", param_hint="IDS")
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        count = engine.outbox.replay(ids=ids or None, destination=destination)
    console.print(f"{count:,} deliveries put back in line")


@suppressions_app.command("add")
def suppressions_add(
    kind: Annotated[str, typer.Argument(help="email, user_id, phone, ... or * for any kind.")],
    values: Annotated[list[str], typer.Argument(help="The identifiers.")],
    reason: Annotated[str | None, typer.Option(help="Why (a bounce, a complaint, a request).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Never message these identifiers again."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        added = engine.guards.suppressions.add_many((kind, value, reason) for value in values)
    console.print(f"{added:,} added, {len(values) - added:,} already suppressed")


@suppressions_app.command("import")
def suppressions_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header: kind,value[,reason] (what an ESP exports).")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Add every row of a CSV file to the suppression list."""
    import csv

    with file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    bad = next((i for i, row in enumerate(rows, start=2) if not (row.get("kind") or "").strip()
                or not (row.get("value") or "").strip()), None)
    if bad is not None:
        raise typer.BadParameter(f"line {bad}: every row needs a kind and a value", param_hint="FILE")
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        added = engine.guards.suppressions.add_many(
            (row["kind"].strip(), row["value"], row.get("reason") or None) for row in rows)
    console.print(f"{added:,} added, {len(rows) - added:,} already suppressed")


@suppressions_app.command("remove")
def suppressions_remove(
    kind: Annotated[str, typer.Argument(help="The kind it was added with.")],
    values: Annotated[list[str], typer.Argument(help="The identifiers.")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Allow messages to these identifiers again."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        removed = sum(engine.guards.suppressions.remove(kind, value) for value in values)
    console.print(f"{removed:,} removed, {len(values) - removed:,} were not suppressed")


@suppressions_app.command("list")
def suppressions_list(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Every suppressed identifier, with why and when."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        suppressions, after = engine.guards.suppressions, None
        while page := suppressions.list(1000, after):
            for entry in page:
                console.print(f"{entry.kind:10} {entry.value:40} {entry.added_at:%Y-%m-%d %H:%M} {entry.reason or ''}",
                              markup=False)
            after = (page[-1].kind, page[-1].value)
        console.print(f"{suppressions.count():,} suppressed")


@segments_app.command("list")
def segments_list(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Every segment and computed trait in the store."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        for kind in ("segment", "computed_trait"):
            for d in engine.definitions.list(kind):  # type: ignore[arg-type]
                console.print(f"{kind:15} {d.id:30} {d.body.get('name', '')}", markup=False)


@segments_app.command("verify")
def segments_verify(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Recompute every segment and computed trait from the log (batch) and compare with the live state; exit 1
    if they disagree."""
    from persona.segments.verify import verify

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("reading the log", total=engine.log.count())
        report = verify(engine.log, engine.state, engine.audiences, engine.definitions, engine.model_traits,
                        now_micros(), progress=lambda n: bar.advance(task, n))
    table = Table("segment", "live members", "batch members", "disagree")
    for segment_id, (live, batch) in report.sizes.items():
        wrong = sum(1 for s, _, _ in report.segments if s == segment_id)
        table.add_row(segment_id, f"{live:,}", f"{batch:,}", f"[red]{wrong:,}[/red]" if wrong else "0")
    console.print(table)
    console.print(f"{report.profiles:,} profiles; log read in {report.load_seconds:.1f} s, evaluated in "
                  f"{report.evaluate_seconds:.2f} s; {report.left_out:,} left out (their time check is due)")
    for segment_id, pid, live_member in report.segments[:10]:
        where = "live, not in batch" if live_member else "in batch, not live"
        console.print(f"  {segment_id}: {pid} is a member {where}", markup=False)
    for trait_id, pid, live_value, batch_value in report.computed[:10]:
        console.print(f"  {trait_id}: {pid} live {live_value!r}, batch {batch_value!r}", markup=False)
    if not report.agrees:
        console.print(f"[red]{len(report.segments):,} memberships and {len(report.computed):,} computed traits "
                      "disagree[/red] (is the processor caught up? `persona status`)")
        raise typer.Exit(1)
    console.print("[green]the live state agrees with the batch evaluation[/green]")


@rfm_app.command("refresh")
def rfm_refresh(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day to score recency to, YYYY-MM-DD "
                                                               "(default: today, or the newest order's day).")]
    = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Score every customer now (what the scheduled `rfm` job does) and show the segment sizes."""
    from persona.jobs.rfm import refresh_rfm

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("reading profiles", total=engine.state.counts().profiles)
        run = refresh_rfm(engine.state, engine.model_traits, _day_option(as_of, "--as-of"),
                          progress=lambda n: bar.update(task, completed=n))
    table = Table("segment", "customers", "share", title=f"RFM as of {run.as_of}")
    for name, n in run.segments.most_common():
        table.add_row(name, f"{n:,}", f"{n / len(run.scores):.1%}")
    console.print(table)
    console.print(f"{len(run.scores):,} customers scored; traits rfm_r, rfm_f, rfm_m, rfm_code, rfm_segment, ... "
                  "written")


ModelKind = Annotated[str, typer.Argument(help="clv (lifetime value), propensity (order in 30 days) or churn.")]


def _kind(kind: str) -> str:
    from persona.predict.lifecycle import KINDS

    if kind not in KINDS:
        raise typer.BadParameter(f"{kind!r} is not a model persona trains; known: {', '.join(KINDS)}",
                                 param_hint="KIND")
    return kind


AsOf = Annotated[str | None, typer.Option("--as-of", help="Train or score as of the start of this day (UTC), "
                                                          "YYYY-MM-DD, seeing nothing after it (a backtest); "
                                                          "default: now.")]


@models_app.command("train")
def models_train(
    kind: ModelKind,
    score: Annotated[bool, typer.Option("--score/--no-score", help="Score every customer with it after.")] = True,
    as_of: AsOf = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Train a new version, register it and make it the active one (classifiers: backtested on two past
    cut-offs, the validation's figures kept as its metrics)."""
    from persona.errors import NotEnoughData
    from persona.predict import lifecycle

    _kind(kind)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        now = _as_of_micros(as_of)
        events = _read_log_for(engine, kind, now)  # read once, for the training and the scoring
        try:
            with console.status(f"training {kind}"):
                version = lifecycle.train(engine, kind, now, events)
        except NotEnoughData as exc:
            console.print(f"[red]not trained:[/red] {exc.message}")
            raise typer.Exit(1) from None
        _show_version(version.to_json())
        if score:
            with console.status("scoring"):
                console.print(lifecycle.score(engine, version, now, events))


@models_app.command("score")
def models_score(kind: ModelKind, as_of: AsOf = None, data_dir: DataDir = None, config: ConfigFile = None,
                 store: Store = None) -> None:
    """Score every customer with the active version (what the scheduled job does between trainings)."""
    from persona.predict import lifecycle

    _kind(kind)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        version = engine.models.active(kind)
        if version is None:
            console.print(f"[red]no {kind} model is trained yet:[/red] run `persona models train {kind}`")
            raise typer.Exit(1)
        now = _as_of_micros(as_of)
        events = _read_log_for(engine, kind, now)
        with console.status(f"scoring with {version.label}"):
            console.print(lifecycle.score(engine, version, now, events))


def _as_of_micros(as_of: str | None) -> int:
    day = _day_option(as_of, "--as-of")
    return now_micros() if day is None else to_micros(datetime.combine(day, datetime.min.time(), UTC))


def _read_log_for(engine: Engine, kind: str, now: int) -> Any:
    """The classifiers' pass over the log, with a progress bar (lifetime value reads profiles only)."""
    if kind == "clv":
        return None
    from persona.predict.features import read_events

    with _progress() as bar:
        task = bar.add_task("reading the log", total=engine.log.count())
        return read_events(engine.log, engine.state, now, progress=lambda n: bar.update(task, completed=n))


@models_app.command("evaluate")
def models_evaluate(
    kind: ModelKind,
    report: Annotated[Path | None, typer.Option(help="Also write an HTML report with charts (calibration, lift, "
                                                     "gain) to this file.")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """The active version's figures: for a classifier, ROC-AUC, PR-AUC, Brier, the recency baseline, and
    calibration, lift and cumulative gain by decile of the score, from its validation cut-off."""
    _kind(kind)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        version = engine.models.active(kind)
    if version is None:
        console.print(f"[red]no {kind} model is trained yet:[/red] run `persona models train {kind}`")
        raise typer.Exit(1)
    metrics = version.metrics
    console.print(f"[bold]{version.label}[/bold]: " + ", ".join(
        f"{k} {v}" for k, v in metrics.items() if not isinstance(v, list)), highlight=False)
    if "lift" in metrics:
        table = Table("decile", "mean score", "observed", "lift", "cumulative gain", title="by decile of the score")
        for cal, lift in zip(metrics["calibration"], metrics["lift"], strict=True):
            table.add_row(str(cal["decile"]), f"{cal['mean_score']:.3f}", f"{cal['observed']:.3f}",
                          f"{lift['lift']:.2f}", f"{lift['cumulative_gain']:.1%}")
        console.print(table)
    if report is not None:
        from persona.predict.report import write_report

        write_report(version, report)
        console.print(f"report: {report}")


@models_app.command("drift")
def models_drift(kind: ModelKind, data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """How far the customers last scored have moved from those the active version was trained on: the
    population stability index of its scores and of each feature (over 0.25: flagged for retraining)."""
    from persona.predict.drift import RETRAIN_PSI, WATCH_PSI

    _kind(kind)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        version = engine.models.active(kind)
        reports = engine.models.drift(version.id) if version is not None else []
    if version is None or not reports:
        console.print(f"[yellow]nothing measured yet[/yellow]: a scoring of the active {kind} version measures drift")
        raise typer.Exit(1)
    last = reports[0]
    verdict = "[red]flagged for retraining[/red]" if last["flagged"] else "[green]within bounds[/green]"
    console.print(f"{version.label}, measured {last['measured_at']} on {last['customers']:,} customers "
                  f"(trained on {last['reference_customers']:,}): score PSI {last['score_psi']:.3f}; {verdict}")
    table = Table("feature", "PSI", "")
    for name, value in sorted(last["features"].items(), key=lambda item: -item[1]):
        mark = "drifted" if value > RETRAIN_PSI else "watch" if value > WATCH_PSI else ""
        table.add_row(name, f"{value:.3f}", mark)
    console.print(table)


@models_app.command("list")
def models_list(kind: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
                data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Every trained version, newest first: when, by whom, on what, its main figures; the active one marked."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        versions = engine.models.versions(kind)
    table = Table("version", "active", "trained", "by", "customers", "figures")
    for v in versions:
        shown = v.to_json()
        figures = ", ".join(f"{k} {m}" for k, m in v.metrics.items() if k != "customers" and not isinstance(m, list))
        table.add_row(v.label, "yes" if v.active else "", shown["created_at"], v.trained_by,
                      f"{v.trained_on.get('customers', 0):,}", figures)
    console.print(table)


@models_app.command("activate")
def models_activate(version: Annotated[int, typer.Argument(help="The version id (clv@3: 3).")],
                    data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Make a version the one in use (a rollback to an earlier one pins it: the scheduled job scores with it and
    does not train over it); the next scoring writes its scores."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        chosen = engine.models.activate(version)
    console.print(f"{chosen.label} is active; `persona models score {chosen.kind}` writes its scores now")


def _show_version(shown: dict[str, object]) -> None:
    console.print(f"[bold]{shown['label']}[/bold] trained {shown['created_at']} by {shown['trained_by']} on "
                  f"{shown['trained_on']}")
    figures = {k: v for k, v in shown["metrics"].items() if not isinstance(v, list)}  # type: ignore[union-attr]
    console.print(f"metrics: {figures}", markup=False)
    params = {k: v for k, v in shown["params"].items()  # type: ignore[union-attr]
              if k not in ("reference", "columns")}
    console.print(f"parameters: {params}", markup=False)


@personas_app.command("fit")
def personas_fit(
    k_min: Annotated[int, typer.Option("--k-min", help="Fewest personas to consider.")] = 2,
    k_max: Annotated[int, typer.Option("--k-max", help="Most personas to consider.")] = 8,
    method: Annotated[str, typer.Option(help="auto (the best of all by the rule), kmeans, gmm or dbscan.")]
    = "auto",
    seed: Annotated[int, typer.Option(help="Seed of every random choice: same data and seed, same personas.")] = 0,
    min_events: Annotated[int, typer.Option("--min-events", help="Leave out customers with fewer events.")] = 2,
    since: Annotated[str | None, typer.Option(help="First day of events to use, YYYY-MM-DD (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day of events to use, inclusive, YYYY-MM-DD.")] = None,
    report: Annotated[Path | None, typer.Option(help="HTML report to write (JSON summary beside it; default on the "
                                                     "embedded store: <data_dir>/personas/report.html). It is also "
                                                     "kept with the run: `persona personas show --report`.")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Cluster customers into personas, write each one's persona as a trait, and report (HTML + JSON)."""
    from persona.personas.runs import PersonaOptions, run_personas

    settings = _config(data_dir=data_dir, config=config, store=store)
    first, last = _day_option(since, "--since"), _day_option(until, "--until")
    if report is None and settings.store is None:
        report = Path(settings.data_dir) / "personas" / "report.html"
    options = PersonaOptions(k_min=k_min, k_max=k_max, method=method, seed=seed, min_events=min_events,
                             since=_day_start(first), until=_day_start(last, 1), report=report)
    with Engine.open(settings) as engine, _progress() as bar:
        task = bar.add_task("reading events", total=engine.log.last_seq())

        def progress(step: str, done: int) -> None:
            if step == "features":
                bar.update(task, completed=done)
            else:
                bar.update(task, description="clustering", completed=0, total=None)

        run = run_personas(engine.log, engine.state, engine.model_traits, engine.persona_runs, options,
                           progress=progress)
    _print_personas(run.summary())


@personas_app.command("show")
def personas_show(
    as_json: Annotated[bool, typer.Option("--json", help="The latest run's JSON summary.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the latest run's HTML report here (and its JSON "
                                                     "summary beside it).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """The latest persona run: its personas in plain words, how k was chosen, the change since the run before."""
    from persona.personas.report import write_files

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        latest = engine.persona_runs.latest()
        html = engine.persona_runs.report(latest.id) if latest is not None else None
    if latest is None or html is None:
        console.print("no persona run yet: `persona personas fit`")
        raise typer.Exit(1)
    if report is not None:
        write_files(report, html, latest.summary)
        console.print(f"report of run {latest.id} written to {report}", markup=False)
    elif as_json:
        console.print_json(data=latest.summary)
    else:
        _print_personas(latest.summary)


def _print_personas(summary: dict[str, object]) -> None:
    s: dict[str, Any] = summary  # type: ignore[assignment]
    chosen = s["chosen"]
    table = Table("id", "persona", "customers", "share", "description",
                  title=f"{s['customers']:,} customers in {chosen['k']} personas ({chosen['method']}, silhouette "
                        f"{chosen['silhouette']}, Davies-Bouldin {chosen['davies_bouldin']})")
    for p in s["personas"]:
        table.add_row(str(p["id"]), escape(p["name"]), f"{p['size']:,}", f"{p['share']:.1%}",
                      escape(p["description"].split("Compared with everyone: ", 1)[-1]))
    console.print(table)
    console.print(f"{s['left_out']:,} customers with fewer than {s['min_events']} events left out; run {s['run']}",
                  markup=False)
    stability = s["stability"]
    if stability:
        ari = stability["adjusted_rand_index"]
        console.print(f"vs run {stability['previous_run']}: adjusted Rand index {ari if ari is not None else 'n/a'} "
                      f"over {stability['common_customers']:,} customers in both; PSI {stability['psi']}",
                      markup=False)
    if s.get("report"):
        console.print(f"report: {s['report']} (summary: {Path(str(s['report'])).with_suffix('.json')})",
                      markup=False)
    else:
        console.print("report: `persona personas show --report FILE`", markup=False)


def _day_start(day: date | None, plus_days: int = 0) -> int | None:
    """Microseconds at the start of the day (UTC), or of a later one."""
    if day is None:
        return None
    return to_micros(datetime.combine(day + timedelta(days=plus_days), datetime.min.time(), UTC))


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL file of items.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: from the extension).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML `file column: item field` renames.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows "
                                                      "(default: FILE.rejects.jsonl).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Create or replace catalog items from a file; bad rows go to a rejects file (exit 1 if any)."""
    from persona.catalog.files import import_catalog, read_mapping

    renames = read_mapping(mapping) if mapping is not None else None
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        result = import_catalog(file, engine.catalog, format=fmt, mapping=renames,  # type: ignore[arg-type]
                                rejects_path=rejects, progress=lambda done, total: bar.update(
                                    task, completed=done, total=total))
    console.print(f"{file.name}: {result.rows} rows, {result.created} imported, {result.updated} updated, "
                  f"{result.rejected} rejected")
    if result.rejected:
        console.print(f"[yellow]rejected rows written to {result.rejects_path}[/yellow]")
        for r in result.first_rejects[:5]:
            console.print(f"  {r}", markup=False)
        raise typer.Exit(1)


@catalog_app.command("sync-from-events")
def catalog_sync_from_events(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Add the products the log's events describe, and fill fields imported items lack (never overriding them)."""
    from persona.catalog.from_events import sync_from_events

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("reading the log", total=engine.log.count())
        synced = sync_from_events(engine.log, engine.catalog, progress=lambda n: bar.advance(task, n))
    console.print(f"{synced.events:,} events describe {synced.seen:,} products: {synced.created:,} new items, "
                  f"{synced.filled:,} filled in or brought up to date")


@catalog_app.command("export")
def catalog_export(
    file: Annotated[Path, typer.Argument(help="Output file, .csv or .jsonl.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: from the extension).")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Write the synthetic shop's catalog (the one "
                                                                "`persona demo` events refer to) instead.")] = False,
    seed: Annotated[int, typer.Option(help="With --synthetic: the workload's seed.")] = 0,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Write the catalog as a file `persona catalog import` reads back."""
    from persona.catalog.files import write_catalog
    from persona.catalog.items import Item

    items: list[Item] = []
    if synthetic:
        from persona.synth.catalog import Catalog, catalog_items
        from persona.synth.workload import DEFAULT_CATALOG_SIZE

        items = catalog_items(Catalog.generate(seed, DEFAULT_CATALOG_SIZE))
    else:
        with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
            cursor: str | None = None
            while True:
                page = engine.catalog.page(1000, cursor)
                items += page.items
                if (cursor := page.next) is None:
                    break
    count = write_catalog(items, file, fmt)  # type: ignore[arg-type]
    console.print(f"wrote {count:,} items to {file}")


@recs_app.command("train")
def recs_train(
    half_life: Annotated[float | None, typer.Option(
        "--half-life", help="Days after which an interaction weighs half as much (default: the config file's "
                            "recommendations.weights.half_life_days, else 30).")] = None,
    tune: Annotated[bool | None, typer.Option(
        "--tune/--no-tune", help="Choose the models' hyperparameters on the validation split (default: the "
                                 "config file's recommendations.tune, else on).")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Train the recommendation models on the log and the catalog; running servers pick them up by themselves."""
    from persona.recommend.modelset import train

    loaded = _config(data_dir=data_dir, config=config, store=store)
    settings = loaded.recommendations
    if half_life is not None:
        settings = msgspec.structs.replace(settings, weights=msgspec.structs.replace(settings.weights,
                                                                                     half_life_days=half_life))
    if tune is not None:
        settings = msgspec.structs.replace(settings, tune=tune)
    with Engine.open(loaded) as engine, _progress() as bar:
        task = bar.add_task("reading the log", total=engine.state.folded_through())
        models = train(engine.log, engine.state, engine.catalog, settings=settings,
                       progress=lambda n: bar.advance(task, n))
        model_id = engine.rec_models.save(models)
    s = models.summary
    table = Table("users", "items", "interactions", "orders", "seconds", title=f"recommendation models #{model_id}")
    table.add_row(f"{s['users']:,}", f"{s['items']:,}", f"{s['interactions']:,}", f"{s['orders']:,}",
                  f"{s['seconds']:.1f}")
    console.print(table)
    blend = s["blend"]
    console.print("blend weights: " + ", ".join(f"{name} {w:.1f}" for name, w in blend["weights"].items() if w)
                  + (f" (validation NDCG@10 {blend['ndcg']:.4f}, {blend['users']:,} users)" if blend["users"]
                     else " (defaults: no validation users)"), markup=False)
    factors = s["hyperparameters"]["factors"]
    console.print(f"factors: {factors['algorithm']}, {factors['factors']} factors, regularization "
                  f"{factors['regularization']}, alpha {factors['alpha']}; next_item popularity damping "
                  f"{s['hyperparameters']['next_item_damping']}" + ("" if s["hyperparameters"]["tuned"]
                                                                   else " (not tuned)"), markup=False)


@recs_app.command("evaluate")
def recs_evaluate(
    test_days: Annotated[float, typer.Option("--test-days", help="Days at the end of the log to test on; "
                                                                 "the models train on what came before.")] = 7.0,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Length of each recommended list.")] = 10,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Score every recommendation model offline: train on the past of the log, test on its last days."""
    from persona.recommend.evaluation import evaluate

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("reading the log", total=2 * engine.state.folded_through())
        try:
            result = evaluate(engine.log, engine.state, engine.catalog, test_days=test_days, k=k,
                              settings=engine.config.recommendations, progress=lambda n: bar.advance(task, n))
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    cut = datetime.fromtimestamp(result.cut / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M")
    table = Table("model", f"NDCG@{k}", f"Recall@{k}", f"HR@{k}", f"MAP@{k}", "coverage",
                  title=f"offline evaluation: trained before {cut} UTC, tested on the {test_days:g} days after",
                  caption=f"{result.test_users:,} test users; {result.cold_users:,} with no history before "
                          "the cut skipped")
    for row in result.rows:
        table.add_row(row.model, *(f"{v:.4f}" for v in (row.ndcg, row.recall, row.hit_rate, row.map)),
                      f"{row.coverage:.1%}")
    console.print(table)


@profiles_app.command("export")
def profiles_export(
    out: Annotated[Path, typer.Option("--out", help="The Parquet file to write (replaced when complete).")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Every profile as one Parquet file: identifiers, counters, orders, traits, segments, computed and model
    traits (pandas.read_parquet)."""
    from persona.profiles.export import export_profiles

    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine, _progress() as bar:
        task = bar.add_task("exporting profiles", total=engine.state.counts().profiles)

        def extras(ids: list[str]) -> dict[str, dict[str, Any]]:
            audiences, models = engine.segments.of_profiles(ids), engine.model_traits.of_profiles(ids)
            return {pid: {**audiences.get(pid, {}), "model_traits": models.get(pid, {})} for pid in ids}

        written = export_profiles(engine.state, out, extras=extras, progress=lambda n: bar.update(task, completed=n))
    console.print(f"exported {written:,} profiles to {out}")


@app.command()
def settings() -> None:
    """Every setting, its environment variable and default."""
    for s in SETTINGS:
        console.print(f"[bold]{s.name}[/bold]  PERSONA_{s.name.upper()}  default={s.default!r}\n    {s.help}")


def main() -> None:
    try:
        app()
    except PersonaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(2) from None
