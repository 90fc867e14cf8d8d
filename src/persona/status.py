"""One picture of the running system, shared by `GET /v1/status` and `persona status`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from persona.activation.store import JOURNEYS
from persona.engine import Engine
from persona.jobs.scheduler import next_due
from persona.jobs.store import now_us
from persona.log.events import iso, to_micros
from persona.profiles.processor import IDENTITY, fold_name
from persona.segments.stage import AUDIENCES


def status_of(engine: Engine) -> dict[str, Any]:
    last = engine.log.last_seq()
    processing = processing_of(engine, last)
    return {
        "log": {"last_seq": last, "events": engine.log.count(), "quarantined": engine.log.quarantine_count()},
        "processor": processing,
        "state": asdict(engine.state.counts()),
        "jobs": jobs_of(engine),
    }


def jobs_of(engine: Engine) -> list[dict[str, Any]]:
    """Each scheduled job: its interval, how its last run went, when it is next due, and if it is due,
    what it waits for (`waiting`; null when nothing holds it back)."""
    records = engine.jobs.all()
    out = []
    now = now_us()
    for job in engine.scheduler("status").jobs.values():
        record = records.get(job.name)
        due = next_due(job, record)
        entry: dict[str, Any] = {"name": job.name, "every": job.every, "next_due": iso(due) if record else "now",
                                 "waiting": job.wait() if job.wait is not None and due <= now else None,
                                 "last_started": None}
        if record is not None:
            entry.update(last_started=iso(record.started_at), runner=record.runner,
                         running=record.finished_at is None, duration=record.duration, summary=record.summary,
                         error=record.error)
        out.append(entry)
    return out


def processing_of(engine: Engine, last_seq: int | None = None) -> dict[str, Any]:
    """Where each stage stands, read from the store: right whichever processes run them."""
    last = engine.log.last_seq() if last_seq is None else last_seq
    checkpoints = engine.state.checkpoints()
    position = checkpoints.get(IDENTITY, 0)
    leases = engine.leases("status")
    owners = leases.owners(engine.lease_names())
    partitions = []
    for p in range(engine.state.partitions(engine.config.partitions)):
        folded = checkpoints.get(fold_name(p), 0)
        partitions.append({"partition": p, "position": folded, "pending": engine.state.pending(p, folded),
                           "owner": owners.get(fold_name(p))})
    pending = sum(p["pending"] for p in partitions)
    folded_through = engine.state.folded_through()
    following = checkpoints.get(AUDIENCES, 0)
    audiences = {"position": following, "lag": max(0, folded_through - following), "owner": owners.get(AUDIENCES)}
    journeys_at = checkpoints.get(JOURNEYS, 0)
    journeys = {"position": journeys_at, "lag": max(0, folded_through - journeys_at), "owner": owners.get(JOURNEYS),
                "pending_timers": engine.journey_store.pending_timers(), "deliveries": engine.outbox.counts()}
    return {
        "mode": engine.config.processor,
        "position": position,
        "lag": max(0, last - position) + pending + audiences["lag"] + journeys["lag"],
        "identity": {"position": position, "lag": max(0, last - position), "owner": owners.get(IDENTITY)},
        "partitions": partitions,
        "audiences": audiences,
        "journeys": journeys,
        "workers": leases.members(),
        **_error(engine),
    }


def lag_of(engine: Engine) -> int:
    """Events not yet resolved plus resolved events not yet folded into profiles (folded ones
    leave the assignments queue, so its size is what the partitions still owe): two cheap queries."""
    return max(0, engine.log.last_seq() - engine.state.checkpoint(IDENTITY)) + engine.state.pending_total()


def _error(engine: Engine) -> dict[str, Any]:
    """The newest failure of any processor or worker (each records its own in the state store)."""
    errors = engine.state.errors()
    if not errors:
        return {"error": None}
    name, (error, at) = max(errors.items(), key=lambda item: item[1][1])
    return {"error": error, "error_at": iso(to_micros(datetime.fromtimestamp(at, UTC))), "error_in": name}


def readiness(engine: Engine) -> tuple[bool, dict[str, Any]]:
    """What `/readyz` checks: both stores answer, their migrations are applied, processing keeps up."""
    checks: dict[str, Any] = {}
    try:
        for name, db in (("log", engine.log_db), ("state", engine.state_db)):
            db.ping()
            if pending := db.pending_migrations():
                checks["migrations"] = f"{name} store lacks migrations {pending}: run persona migrate"
        checks.setdefault("migrations", "ok")
        checks["store"] = "ok"
        lag = lag_of(engine)
        checks["lag"] = lag
    except Exception as exc:  # unreachable, or failing: not ready, and say why
        checks["store"] = f"{type(exc).__name__}: {exc}"
        return False, checks
    limit = engine.config.ready_max_lag
    ok = checks["migrations"] == "ok" and (limit == 0 or lag <= limit)
    return ok, checks
