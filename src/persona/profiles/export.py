"""Every profile as one Parquet file, for notebooks and warehouses: `persona profiles export`.

One row per profile (root id): identifiers, first and last seen, counters, orders, and the
traits as JSON text; with the audiences and jobs wired in (`extras`), its segments as a list
and its computed and model traits as JSON text too, since their values may be of any type.
`pandas.read_parquet(path)` reads it; `json.loads` (or DuckDB's `->>`) opens the JSON columns.
Profiles are read a page at a time and written a row group per page, so memory stays flat.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from persona.profiles.sql import SQLStateStore

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    pa.field("profile_id", pa.string(), nullable=False),
    pa.field("identifiers", pa.string()),      # JSON: kind -> [values]
    pa.field("first_seen", _TS),
    pa.field("last_seen", _TS),
    pa.field("event_count", pa.int64()),
    pa.field("orders", pa.int64()),
    pa.field("revenue", pa.float64()),
    pa.field("refunded", pa.float64()),
    pa.field("last_order_at", _TS),
    pa.field("traits", pa.string()),           # JSON
    pa.field("segments", pa.list_(pa.string())),
    pa.field("computed_traits", pa.string()),  # JSON
    pa.field("model_traits", pa.string()),     # JSON
])
_json = msgspec.json.Encoder().encode

# profile ids -> per profile: {"segments": [...], "computed_traits": {...}, "model_traits": {...}}
Extras = Callable[[list[str]], dict[str, dict[str, Any]]]


def export_profiles(state: SQLStateStore, out: Path | str, *, extras: Extras | None = None, page: int = 2000,
                    progress: Callable[[int], object] | None = None) -> int:
    """Write every profile to `out` (replaced atomically when complete); returns how many."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    written = 0
    with pq.ParquetWriter(partial, SCHEMA) as writer:
        after: str | None = None
        while profiles := state.list_profiles(after, page):
            more = extras([p.id for p in profiles]) if extras is not None else {}
            rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
            for p in profiles:
                extra = more.get(p.id, {})
                for name, value in (
                    ("profile_id", p.id), ("identifiers", _text(p.identifiers)), ("first_seen", p.first_seen),
                    ("last_seen", p.last_seen), ("event_count", p.event_count), ("orders", p.orders.count),
                    ("revenue", p.orders.revenue), ("refunded", p.orders.refunded),
                    ("last_order_at", p.orders.last_at), ("traits", _text(p.traits)),
                    ("segments", sorted(extra.get("segments", []))),
                    ("computed_traits", _text(extra.get("computed_traits", {}))),
                    ("model_traits", _text(extra.get("model_traits", {}))),
                ):
                    rows[name].append(value)
            writer.write_table(pa.table(rows, schema=SCHEMA))
            written += len(profiles)
            after = profiles[-1].id
            if progress is not None:
                progress(written)
    os.replace(partial, out)
    return written


def _text(value: Any) -> str:
    return _json(value).decode()
