"""The `persona` command: thin wrappers over the library."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

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

app = typer.Typer(help="persona: self-hosted real-time customer data and personalization engine.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Sources, write keys and secret keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
segments_app = typer.Typer(help="Segment and computed-trait definitions (docs/segments.md).", no_args_is_help=True)
app.add_typer(segments_app, name="segments")
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
    console.print(table)
    if processing["error"]:
        console.print(f"[red]last error[/red] in {processing['error_in']} at {processing['error_at']}: "
                      f"{escape(processing['error'])}")
    console.print(f"profiles: {state['profiles']:,} ({state['merged_profiles']:,} merged away), "
                  f"{state['identities']:,} identifiers, {state['merges']:,} merges, "
                  f"{state['dropped_links']:,} links dropped by limits")


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
        engine.worker(worker_id or default_worker_id()).run(stop)


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
    data_dir: DataDir = None,
    config: ConfigFile = None,
    store: Store = None,
) -> None:
    """Make the store hold the file's definitions (checked together first); a running server sees them at once."""
    from persona.segments.store import read_definitions_file

    definitions = read_definitions_file(file)
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        applied = engine.definitions.apply(definitions, prune=prune)
    for what in ("created", "updated", "deleted"):
        for label in getattr(applied, what):
            console.print(f"{what} {label}")
    console.print(f"{len(applied.created)} created, {len(applied.updated)} updated, "
                  f"{len(applied.unchanged)} unchanged, {len(applied.deleted)} deleted")


@segments_app.command("list")
def segments_list(data_dir: DataDir = None, config: ConfigFile = None, store: Store = None) -> None:
    """Every segment and computed trait in the store."""
    with Engine.open(_config(data_dir=data_dir, config=config, store=store)) as engine:
        for kind in ("segment", "computed_trait"):
            for d in engine.definitions.list(kind):  # type: ignore[arg-type]
                console.print(f"{kind:15} {d.id:30} {d.body.get('name', '')}", markup=False)


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
