"""Where journeys live: their definitions with the log's store (configuration, like segments), and
their instances and counts with the derived state, committed with the journey stage's checkpoint.

An instance is one profile's way through one journey: the node it is at, whether it waits and
until when (`wait_until`, µs: the durable timer), the entry event's properties (what `match`
correlates with), and how it ended. Pending timers are rows with a `wait_until`, found through an
index on it, so a million of them cost a lookup, not a scan, and nothing on the ingest path.

Journey instances are history, not state a replay can rebuild without sending again, so
`persona rebuild` leaves these tables and the stage's checkpoint alone.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml

from persona.activation.journeys import DefinitionError, Journey, Send, parse_journey
from persona.errors import NotFound
from persona.log.events import Event
from persona.profiles.sql import move_checkpoints
from persona.segments.store import Conflict
from persona.storage.sql import Connection, Database, Migration, chunk_size, chunks, where_in

JOURNEYS = "journeys"  # the stage's checkpoint and lease

DEFINITION_MIGRATIONS = [
    Migration(900, "journey definitions", [
        "CREATE TABLE journeys (id TEXT PRIMARY KEY, body BLOB NOT NULL, created_at REAL NOT NULL,"
        " updated_at REAL NOT NULL)",
    ], postgres=[
        "CREATE TABLE journeys (id TEXT PRIMARY KEY, body BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
        " updated_at DOUBLE PRECISION NOT NULL)",
    ]),
]

STATE_MIGRATIONS = [
    Migration(910, "journey instances and counts", [
        """CREATE TABLE journey_instances (
            journey_id TEXT NOT NULL, profile_id TEXT NOT NULL, number INTEGER NOT NULL,
            version TEXT NOT NULL, node INTEGER NOT NULL, status TEXT NOT NULL, outcome TEXT,
            arm TEXT, entered_at INTEGER NOT NULL, waiting_since INTEGER, wait_until INTEGER,
            entry BLOB NOT NULL, updated_at INTEGER NOT NULL,
            PRIMARY KEY (journey_id, profile_id, number))""",
        "CREATE INDEX journey_timers ON journey_instances (wait_until) WHERE wait_until IS NOT NULL",
        "CREATE INDEX journey_profile ON journey_instances (profile_id)",
        "CREATE TABLE journey_counts (journey_id TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,"
        " PRIMARY KEY (journey_id, key))",
    ], postgres=[
        """CREATE TABLE journey_instances (
            journey_id TEXT NOT NULL, profile_id TEXT NOT NULL, number INTEGER NOT NULL,
            version TEXT NOT NULL, node INTEGER NOT NULL, status TEXT NOT NULL, outcome TEXT,
            arm TEXT, entered_at BIGINT NOT NULL, waiting_since BIGINT, wait_until BIGINT,
            entry BYTEA NOT NULL, updated_at BIGINT NOT NULL,
            PRIMARY KEY (journey_id, profile_id, number))""",
        "CREATE INDEX journey_timers ON journey_instances (wait_until) WHERE wait_until IS NOT NULL",
        "CREATE INDEX journey_profile ON journey_instances (profile_id)",
        "CREATE TABLE journey_counts (journey_id TEXT NOT NULL, key TEXT NOT NULL, n BIGINT NOT NULL,"
        " PRIMARY KEY (journey_id, key))",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_COLUMNS = ("journey_id, profile_id, number, version, node, status, outcome, arm, entered_at, waiting_since,"
            " wait_until, entry, updated_at")


@dataclass
class Instance:
    journey_id: str
    profile_id: str
    number: int             # the profile's n-th entry into the journey
    version: str            # the definition's fingerprint it runs
    node: int
    status: str             # active, waiting or done
    entered_at: int         # µs: the entry event's timestamp
    entry: dict[str, Any]   # the entry event's properties
    outcome: str | None = None        # completed, converted, exited, holdout, ended (the definition changed)
    arm: str | None = None            # the split arm it took
    waiting_since: int | None = None  # µs: when the current wait began
    wait_until: int | None = None     # µs: the timer
    updated_at: int = 0

    @property
    def key(self) -> tuple[str, str, int]:
        return self.journey_id, self.profile_id, self.number

    def row(self) -> tuple[Any, ...]:
        return (self.journey_id, self.profile_id, self.number, self.version, self.node, self.status, self.outcome,
                self.arm, self.entered_at, self.waiting_since, self.wait_until, _encode(self.entry), self.updated_at)

    @classmethod
    def of(cls, r: tuple[Any, ...]) -> Instance:
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[8], _decode(r[11]), r[6], r[7], r[9], r[10], r[12])


@dataclass(frozen=True)
class Entries:
    number: int      # the highest instance number
    entered_at: int  # µs: the latest entry


@dataclass
class JourneyChanges:
    instances: dict[tuple[str, str, int], Instance] = field(default_factory=dict)
    removed: set[tuple[str, str, int]] = field(default_factory=set)  # keys gone: moved to the merged profile
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    checkpoint: tuple[int, int] | None = None
    events: list[Event] = field(default_factory=list)  # appended to the log before the commit (idempotent)
    sends: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)  # (profile, channel): sent, unrecorded
    also: list[Callable[[Connection], object]] = field(default_factory=list)  # run in the commit (deliveries)

    def count(self, journey_id: str, key: str) -> None:
        self.counts[(journey_id, key)] += 1


class JourneyDefinitions:
    """Journey definitions, checked on save (with the webhook destinations configured, when there
    are any); stored as written."""

    def __init__(self, db: Database, destinations: Collection[str] = ()) -> None:
        self.db = db
        self.destinations = destinations

    def _parse(self, body: Any, path: str = "") -> Journey:
        journey = parse_journey(body, path)
        for node, label in zip(journey.nodes, journey.labels, strict=True):
            if isinstance(node, Send) and node.channel == "webhook" and self.destinations \
                    and node.target not in self.destinations:
                raise DefinitionError(f"no webhook destination {node.target!r} (configured: "
                                      f"{', '.join(sorted(self.destinations))})",
                                      field=f"{path + '.' if path else ''}{label}.send.webhook")
        return journey

    def list(self) -> list[dict[str, Any]]:
        return [_decode(r[0]) for r in self.db.query("SELECT body FROM journeys ORDER BY id")]

    def parsed(self) -> list[Journey]:
        return [parse_journey(body) for body in self.list()]

    def get(self, journey_id: str) -> dict[str, Any]:
        row = self.db.query_one("SELECT body FROM journeys WHERE id = ?", (journey_id,))
        if row is None:
            raise NotFound(f"no journey {journey_id!r}", field="id")
        return _decode(row[0])

    def save(self, body: Any, *, replace: str | None = None) -> Journey:
        journey = self._parse(body)
        exists = self.db.query_one("SELECT 1 FROM journeys WHERE id = ?", (journey.id,)) is not None
        if replace is not None and journey.id != replace:
            raise DefinitionError(f"the body's id {journey.id!r} is not {replace!r}", field="id")
        if replace is None and exists:
            raise Conflict(f"journey {journey.id!r} exists; PUT replaces it", field="id")
        if replace is not None and not exists:
            raise NotFound(f"no journey {replace!r}", field="id")
        now = time.time()
        self.db.write(lambda c: c.execute(
            "INSERT INTO journeys VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body,"
            " updated_at = excluded.updated_at", (journey.id, _encode(body), now, now)))
        return journey

    def apply(self, bodies: list[Any], *, prune: bool = False) -> dict[str, list[str]]:
        """Make the store hold these journeys (journeys as code); `prune` deletes the others. All are
        parsed before anything is written, then written in one transaction."""
        parsed: dict[str, Any] = {}
        for i, body in enumerate(bodies):
            journey = self._parse(body, f"journeys[{i}]")
            if journey.id in parsed:
                raise DefinitionError(f"{journey.id!r} is defined twice", field=f"journeys[{i}].id")
            parsed[journey.id] = body
        existing = {body["id"]: body for body in self.list()}
        applied: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
        rows = []
        now = time.time()
        for journey_id, body in parsed.items():
            before = existing.get(journey_id)
            which = "created" if before is None else "unchanged" if before == body else "updated"
            applied[which].append(journey_id)
            if which != "unchanged":
                rows.append((journey_id, _encode(body), now, now))
        applied["deleted"] = sorted(set(existing) - set(parsed)) if prune else []

        def write(conn: Connection) -> None:
            conn.executemany("INSERT INTO journeys VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
                             " SET body = excluded.body, updated_at = excluded.updated_at", rows)
            for journey_id in applied["deleted"]:
                conn.execute("DELETE FROM journeys WHERE id = ?", (journey_id,))

        if rows or applied["deleted"]:
            self.db.write(write)
        return applied

    def delete(self, journey_id: str) -> None:
        self.get(journey_id)
        self.db.write(lambda c: c.execute("DELETE FROM journeys WHERE id = ?", (journey_id,)))


class JourneyStore:
    """Instances and counts, in the state store."""

    def __init__(self, db: Database, name: str = JOURNEYS) -> None:
        self.db = db
        self.name = name

    def open_instances(self, profile_ids: Iterable[str]) -> list[Instance]:
        out: list[Instance] = []
        for chunk in chunks(list(profile_ids), chunk_size(self.db.dialect)):
            clause, params = where_in(self.db.dialect, "profile_id", chunk)
            out += [Instance.of(r) for r in self.db.query(
                f"SELECT {_COLUMNS} FROM journey_instances WHERE {clause} AND status <> 'done'", params)]
        return out

    def entries(self, journey_id: str, profile_id: str) -> Entries | None:
        """The profile's entries into the journey so far: the highest number, the latest entry time."""
        row = self.db.query_one("SELECT max(number), max(entered_at) FROM journey_instances"
                                " WHERE journey_id = ? AND profile_id = ?", (journey_id, profile_id))
        return Entries(int(row[0]), int(row[1])) if row and row[0] is not None else None

    def of_profiles(self, profile_ids: Iterable[str]) -> list[Instance]:
        """Every instance of these profiles, done or not."""
        out: list[Instance] = []
        for chunk in chunks(list(profile_ids), chunk_size(self.db.dialect)):
            clause, params = where_in(self.db.dialect, "profile_id", chunk)
            out += [Instance.of(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM journey_instances WHERE {clause}",
                                                          params)]
        return out

    def due(self, until: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is at or before `until` (µs), soonest first."""
        return [Instance.of(r) for r in self.db.query(
            f"SELECT {_COLUMNS} FROM journey_instances WHERE wait_until IS NOT NULL AND wait_until <= ?"
            " ORDER BY wait_until, journey_id, profile_id, number LIMIT ?", (until, limit))]

    def pending_timers(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM journey_instances WHERE wait_until IS NOT NULL")
        return int(row[0]) if row else 0

    def instances(self, journey_id: str, profile_id: str | None = None) -> list[Instance]:
        if profile_id is None:
            rows = self.db.query(f"SELECT {_COLUMNS} FROM journey_instances WHERE journey_id = ?"
                                 " ORDER BY profile_id, number", (journey_id,))
        else:
            rows = self.db.query(f"SELECT {_COLUMNS} FROM journey_instances WHERE journey_id = ? AND profile_id = ?"
                                 " ORDER BY number", (journey_id, profile_id))
        return [Instance.of(r) for r in rows]

    def counts(self, journey_id: str) -> dict[str, int]:
        """Cumulative counts (entered, completed, converted, exited, holdout, arm:NAME, node:N) and
        `waiting:N`, the instances waiting at node N now."""
        out = {r[0]: int(r[1]) for r in self.db.query("SELECT key, n FROM journey_counts WHERE journey_id = ?",
                                                      (journey_id,))}
        for node, n in self.db.query("SELECT node, count(*) FROM journey_instances WHERE journey_id = ?"
                                     " AND status = 'waiting' GROUP BY node", (journey_id,)):
            out[f"waiting:{node}"] = int(n)
        return out

    def keep_checkpoint(self, seq: int) -> None:
        """Put the stage's checkpoint back after a rebuild reset every checkpoint: the journeys
        already ran on the log up to there, and must not send again."""
        self.db.write(lambda c: c.execute("INSERT INTO checkpoints VALUES (?, ?, NULL) ON CONFLICT (name)"
                                          " DO UPDATE SET seq = excluded.seq", (self.name, seq)))

    def stats(self, journey: Journey) -> dict[str, Any]:
        """Totals and, per step in the order written, how many reached it and how many wait there now."""
        counts = self.counts(journey.id)
        steps = sorted(range(len(journey.nodes)), key=lambda node: _written_order(journey.labels[node]))
        return {
            "id": journey.id,
            **{k: counts.get(k, 0) for k in ("entered", "completed", "converted", "exited", "holdout", "ended")},
            "arms": {k.removeprefix("arm:"): v for k, v in counts.items() if k.startswith("arm:")},
            "steps": [{"step": journey.labels[node], "kind": type(journey.nodes[node]).__name__.lower(),
                       "reached": counts.get(f"node:{node}", 0), "waiting": counts.get(f"waiting:{node}", 0)}
                      for node in steps],
        }

    def commit(self, changes: JourneyChanges) -> None:
        rows = [i.row() for i in changes.instances.values()]
        counts = list(changes.counts.items())
        checkpoints = {self.name: changes.checkpoint} if changes.checkpoint is not None else {}
        commit_id = uuid.uuid4().hex

        def write(conn: Connection) -> None:
            if checkpoints and not move_checkpoints(conn, checkpoints, commit_id):
                return  # a retry of a commit that landed
            conn.executemany("DELETE FROM journey_instances WHERE journey_id = ? AND profile_id = ? AND number = ?",
                             sorted(changes.removed))
            conn.executemany(
                f"INSERT INTO journey_instances ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"
                " ON CONFLICT (journey_id, profile_id, number) DO UPDATE SET version = excluded.version,"
                " node = excluded.node, status = excluded.status, outcome = excluded.outcome, arm = excluded.arm,"
                " waiting_since = excluded.waiting_since, wait_until = excluded.wait_until,"
                " updated_at = excluded.updated_at", rows)
            conn.executemany("INSERT INTO journey_counts VALUES (?, ?, ?) ON CONFLICT (journey_id, key)"
                             " DO UPDATE SET n = journey_counts.n + excluded.n",
                             [(j, k, n) for (j, k), n in counts])
            for also in changes.also:
                also(conn)

        self.db.write(write)


def _written_order(label: str) -> list[tuple[int, str]]:
    """`steps[1].branch[0].then[0]` sorts as written: by each index, then by the name after it."""
    parts: list[tuple[int, str]] = []
    for piece in label.replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append((int(index) if index else -1, name))
    return parts


def read_journeys_file(path: Path) -> list[Any]:
    """A YAML file with a `journeys:` list."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML: {exc}", field="file") from None
    if not isinstance(raw, dict) or set(raw) - {"journeys"}:
        raise DefinitionError(f"{path}: expected one section, journeys: [...]", field="file")
    journeys = raw.get("journeys") or []
    if not isinstance(journeys, list):
        raise DefinitionError(f"{path}: journeys is a list", field="journeys")
    return journeys
