"""Where segment and computed-trait definitions are kept: beside the keys, as configuration.

Definitions are not derived from events, so they live with the log's store (`log.db`, or
the log's tables on PostgreSQL) and survive a rebuild. Each is stored as the JSON it was
written in, once it has parsed and the whole set, with it, still hangs together (every
reference known, no loops); a definition others refer to cannot be deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from persona.errors import NotFound, RequestError
from persona.segments.definitions import (
    ComputedTrait,
    DefinitionError,
    SegmentDefinition,
    aggregates_of,
    check_references,
    computed_used,
    depends_on,
    parse_computed_trait,
    parse_segment,
)
from persona.storage.sql import Connection, Database, Migration

Kind = Literal["segment", "computed_trait"]

MIGRATIONS = [
    Migration(200, "segment and computed-trait definitions", [
        """CREATE TABLE definitions (
            kind TEXT NOT NULL CHECK (kind IN ('segment', 'computed_trait')),
            id TEXT NOT NULL,
            body BLOB NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, id)
        )""",
    ], postgres=[
        """CREATE TABLE definitions (
            kind TEXT NOT NULL CHECK (kind IN ('segment', 'computed_trait')),
            id TEXT NOT NULL,
            body BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (kind, id)
        )""",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Conflict(RequestError):
    status = 409
    code = "conflict"


@dataclass
class Applied:
    """What `apply` changed, by kind and id."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoredDefinition:
    kind: Kind
    id: str
    body: dict[str, Any]
    created_at: float
    updated_at: float


MESSAGE_TYPES = frozenset({"identify", "page", "screen", "group", "alias"})
SYSTEM_EVENTS = frozenset({"Segment Entered", "Segment Exited"})  # announced by the audience stage


class DefinitionStore:
    def __init__(self, db: Database, seen_events: Callable[[], set[str]] = set) -> None:
        self.db = db
        self.seen_events = seen_events  # the names of the track events the log has held

    def known_events(self) -> set[str]:
        """Events a definition may read: seen in the log, message types, announcements, and what stored
        definitions already read (so one saved before its events arrived does not block the others)."""
        segments, traits = self.parsed()
        used = {of.event for of in [t.of for t in traits] + [a for s in segments for a in aggregates_of(s.where)]}
        return self.seen_events() | MESSAGE_TYPES | SYSTEM_EVENTS | used

    def list(self, kind: Kind) -> list[StoredDefinition]:
        rows = self.db.query("SELECT kind, id, body, created_at, updated_at FROM definitions WHERE kind = ?"
                             " ORDER BY id", (kind,))
        return [StoredDefinition(r[0], r[1], _decode(r[2]), r[3], r[4]) for r in rows]

    def get(self, kind: Kind, definition_id: str) -> StoredDefinition:
        row = self.db.query_one("SELECT kind, id, body, created_at, updated_at FROM definitions"
                                " WHERE kind = ? AND id = ?", (kind, definition_id))
        if row is None:
            raise NotFound(f"no {kind.replace('_', ' ')} {definition_id!r}", field="id")
        return StoredDefinition(row[0], row[1], _decode(row[2]), row[3], row[4])

    def parsed(self) -> tuple[list[SegmentDefinition], list[ComputedTrait]]:
        return ([parse_segment(d.body) for d in self.list("segment")],
                [parse_computed_trait(d.body) for d in self.list("computed_trait")])

    def save(self, kind: Kind, body: Any, *, replace: str | None = None, check_events: bool = False
             ) -> StoredDefinition:
        """Create (`replace` None: the id must be new) or replace the definition `replace`; `check_events`
        refuses an event the log has never seen (a typo, most likely)."""
        parsed = parse_segment(body) if kind == "segment" else parse_computed_trait(body)
        if replace is not None and parsed.id != replace:
            raise DefinitionError(f"the body's id {parsed.id!r} is not {replace!r}", field="id")
        segments, traits = self.parsed()
        if kind == "segment":
            exists = any(s.id == parsed.id for s in segments)
            segments = [s for s in segments if s.id != parsed.id] + [parsed]  # type: ignore[list-item]
        else:
            exists = any(t.id == parsed.id for t in traits)
            traits = [t for t in traits if t.id != parsed.id] + [parsed]  # type: ignore[list-item]
        if replace is None and exists:
            raise Conflict(f"{kind.replace('_', ' ')} {parsed.id!r} exists; PUT replaces it", field="id")
        if replace is not None and not exists:
            raise NotFound(f"no {kind.replace('_', ' ')} {replace!r}", field="id")
        check_references(segments, traits, self.known_events() if check_events else None)
        now = time.time()
        encoded = _encode(body)

        def write(conn: Connection) -> None:
            conn.execute("INSERT INTO definitions VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE"
                         " SET body = excluded.body, updated_at = excluded.updated_at",
                         (kind, parsed.id, encoded, now, now))

        self.db.write(write)
        return self.get(kind, parsed.id)

    def apply(self, definitions: dict[Kind, list[Any]], *, prune: bool = False, check_events: bool = False
              ) -> Applied:
        """Make the store hold these definitions (definitions as code); `prune` deletes the others.

        All of them are checked, together with what stays, before anything is written; then
        they are written in one transaction."""
        parsed: dict[tuple[Kind, str], Any] = {}
        for kind, bodies in definitions.items():
            for i, body in enumerate(bodies):
                path = f"{'segments' if kind == 'segment' else 'computed_traits'}[{i}]"
                item = parse_segment(body, path) if kind == "segment" else parse_computed_trait(body, path)
                if (kind, item.id) in parsed:
                    raise DefinitionError(f"{item.id!r} is defined twice", field=f"{path}.id")
                parsed[(kind, item.id)] = (item, body)
        existing = {(d.kind, d.id): d for kind in ("segment", "computed_trait") for d in self.list(kind)}
        kept = {key: (parse_segment(d.body) if key[0] == "segment" else parse_computed_trait(d.body), d.body)
                for key, d in existing.items() if key not in parsed and not prune}
        final = {**kept, **parsed}
        check_references([v[0] for k, v in final.items() if k[0] == "segment"],
                         [v[0] for k, v in final.items() if k[0] == "computed_trait"],
                         self.known_events() if check_events else None)
        applied = Applied()
        now = time.time()
        rows = []
        for key, (_, body) in parsed.items():
            before = existing.get(key)
            label = f"{key[0]}:{key[1]}"
            if before is None:
                applied.created.append(label)
            elif before.body == body:
                applied.unchanged.append(label)
                continue
            else:
                applied.updated.append(label)
            rows.append((key[0], key[1], _encode(body), now, now))
        gone = [key for key in existing if key not in final]
        applied.deleted = [f"{kind}:{definition_id}" for kind, definition_id in gone]

        def write(conn: Connection) -> None:
            conn.executemany("INSERT INTO definitions VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE"
                             " SET body = excluded.body, updated_at = excluded.updated_at", rows)
            for kind, definition_id in gone:
                conn.execute("DELETE FROM definitions WHERE kind = ? AND id = ?", (kind, definition_id))

        if rows or gone:
            self.db.write(write)
        return applied

    def delete(self, kind: Kind, definition_id: str) -> None:
        self.get(kind, definition_id)  # 404 if absent
        segments, _ = self.parsed()
        for segment in segments:
            refers = definition_id in (depends_on(segment.where) if kind == "segment"
                                       else computed_used(segment.where))
            if refers and not (kind == "segment" and segment.id == definition_id):
                raise Conflict(f"segment {segment.id!r} refers to {definition_id!r}: change it first", field="id")
        self.db.write(lambda c: c.execute("DELETE FROM definitions WHERE kind = ? AND id = ?", (kind, definition_id)))



def read_definitions_file(path: Path) -> dict[Kind, list[Any]]:
    """A YAML file with `segments:` and `computed_traits:` lists (either may be left out)."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML: {exc}", field="file") from None
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: expected segments: and computed_traits: lists", field="file")
    for key in raw:
        if key not in ("segments", "computed_traits"):
            raise DefinitionError(f"{path}: unknown section {key!r}; use segments and computed_traits", field=key)
    out: dict[Kind, list[Any]] = {}
    for key, kind in (("segments", "segment"), ("computed_traits", "computed_trait")):
        items = raw.get(key) or []
        if not isinstance(items, list):
            raise DefinitionError(f"{path}: {key} is a list", field=key)
        out[kind] = items  # type: ignore[index]
    return out
