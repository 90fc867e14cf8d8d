"""Export the event log as Parquet, partitioned by day (Hive style), for warehouses and notebooks.

    OUT/date=2026-09-01/part-00000.parquet
    OUT/date=2026-09-02/part-00000.parquet

The day is the UTC date of the event's `timestamp`. Events are streamed from
`EventLog.read_range` in timestamp order, so one day is written at a time, in row groups of
at most `row_group_rows` rows; memory stays bounded whatever the size of the log.
`pyarrow.dataset.dataset(OUT, partitioning="hive")` reads the whole export back, with a
`date` column from the directory names.

Re-running into the same directory replaces the exported days instead of adding to them:
each file is written under a hidden temporary name (`.part-....tmp`, which dataset readers
skip) and renamed over the file of the same name when complete (an atomic replace), then
the day's other part files (from an earlier export with more of them) are deleted. A day in the
requested range that no longer has events (erased since) loses its old files. Directories
outside the range, and anything that is not a `date=YYYY-MM-DD/part-*.parquet` file, are
never touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from persona.errors import RequestError
from persona.log.events import Event, from_micros, to_micros
from persona.log.store import EventLog

ROW_GROUP_ROWS = 50_000
FILE_ROWS = 1_000_000
_encode = msgspec.json.Encoder().encode
_MIN_US = to_micros(datetime(1, 1, 1, tzinfo=UTC))
_MAX_US = to_micros(datetime(9999, 12, 31, tzinfo=UTC))
_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("message_id", pa.string(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
    pa.field("name", pa.string()),           # the track event name, or the page/screen name
    pa.field("user_id", pa.string()),
    pa.field("anonymous_id", pa.string()),
    pa.field("timestamp", _TS, nullable=False),
    pa.field("received_at", _TS, nullable=False),
    pa.field("properties", pa.string()),     # JSON, when the message has them
    pa.field("traits", pa.string()),         # JSON: identify/group traits
    pa.field("context", pa.string()),        # JSON
    pa.field("body", pa.string(), nullable=False),  # the whole normalized Segment message, JSON
])
_JSON_FIELDS = ("properties", "traits", "context")


@dataclass
class ExportResult:
    events: int = 0
    files: int = 0
    days: int = 0          # days written
    removed_days: int = 0  # days in the range whose old export was removed because they have no events now


def export_parquet(
    log: EventLog,
    out: Path | str,
    *,
    since: date | None = None,
    until: date | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
    file_rows: int = FILE_ROWS,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write events of the days `since` to `until` (both inclusive, UTC; open when None) under `out`.

    `progress` is called with the number of events written so far after each row group.
    """
    if since is not None and until is not None and until < since:
        raise RequestError(f"until ({until}) is before since ({since})", field="until")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = to_micros(_midnight(since)) if since is not None else _MIN_US
    end = to_micros(_midnight(until + timedelta(days=1))) if until is not None else _MAX_US
    result = ExportResult()
    written: set[date] = set()
    for day, events in _days(log.read_range(start, end)):
        result.files += _write_day(out / f"date={day.isoformat()}", events, row_group_rows, file_rows,
                                   result, progress)
        result.days += 1
        written.add(day)
    for day_dir, day in _existing_days(out):
        if day not in written and (since is None or day >= since) and (until is None or day <= until):
            _remove_parts(day_dir, keep=0)
            result.removed_days += 1
    return result


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _day(us: int) -> date:
    return from_micros(us).date()


def _days(events: Iterator[Event]) -> Iterator[tuple[date, Iterator[Event]]]:
    """Split a timestamp-ordered stream into one sub-stream per UTC day, without buffering a day."""
    pending = next(events, None)
    while pending is not None:
        day = _day(pending.timestamp)
        first = pending

        def same_day(first: Event = first, day: date = day) -> Iterator[Event]:
            nonlocal pending
            yield first
            for event in events:
                if _day(event.timestamp) != day:
                    pending = event
                    return
                yield event
            pending = None

        day_events = same_day()
        yield day, day_events
        for _ in day_events:  # whatever the consumer left of the day, so `pending` moves on
            pass


def _write_day(day_dir: Path, events: Iterator[Event], row_group_rows: int, file_rows: int,
               result: ExportResult, progress: Callable[[int], None] | None) -> int:
    day_dir.mkdir(exist_ok=True)
    files = 0
    writer: pq.ParquetWriter | None = None
    temp = final = day_dir
    in_file = 0
    rows = _Rows()

    def flush() -> None:
        nonlocal writer, temp, final, files, in_file
        if writer is None:
            final = day_dir / f"part-{files:05d}.parquet"
            temp = day_dir / f".part-{files:05d}-{uuid.uuid4().hex[:8]}.tmp"
            writer = pq.ParquetWriter(temp, SCHEMA, compression="zstd")
        writer.write_table(rows.table(), row_group_size=row_group_rows)
        in_file += len(rows)
        result.events += len(rows)
        rows.clear()
        if progress is not None:
            progress(result.events)
        if in_file >= file_rows:
            close()

    def close() -> None:
        nonlocal writer, files, in_file
        if writer is not None:
            writer.close()
            os.replace(temp, final)
            writer, files, in_file = None, files + 1, 0

    try:
        for event in events:
            rows.add(event)
            if len(rows) >= min(row_group_rows, file_rows - in_file):
                flush()
        if len(rows):
            flush()
        close()
    finally:
        if writer is not None:  # failed midway: leave the previous export of the day as it was
            writer.close()
            temp.unlink(missing_ok=True)
    _remove_parts(day_dir, keep=files)
    return files


class _Rows:
    """Column buffers for one row group."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}

    def __len__(self) -> int:
        return len(self.columns["seq"])

    def add(self, e: Event) -> None:
        c = self.columns
        c["seq"].append(e.seq)
        c["source_id"].append(e.source_id)
        c["message_id"].append(e.message_id)
        c["type"].append(e.type)
        c["name"].append(e.name)
        c["user_id"].append(e.user_id)
        c["anonymous_id"].append(e.anonymous_id)
        c["timestamp"].append(e.timestamp)
        c["received_at"].append(e.received_at)
        for name in _JSON_FIELDS:
            value = e.body.get(name)
            c[name].append(_encode(value).decode() if value is not None else None)
        c["body"].append(_encode(e.body).decode())

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(
            {f.name: pa.array(self.columns[f.name], type=f.type) for f in SCHEMA}, schema=SCHEMA)

    def clear(self) -> None:
        for values in self.columns.values():
            values.clear()


def _existing_days(out: Path) -> Iterator[tuple[Path, date]]:
    for child in out.iterdir():
        if child.is_dir() and child.name.startswith("date="):
            try:
                yield child, date.fromisoformat(child.name.removeprefix("date="))
            except ValueError:
                continue


def _remove_parts(day_dir: Path, *, keep: int) -> None:
    """Delete part files numbered `keep` and up, and stale temporaries; the directory if left empty."""
    for child in day_dir.iterdir():
        name = child.name
        if name.startswith(".part-") and name.endswith(".tmp"):
            child.unlink(missing_ok=True)
        elif name.startswith("part-") and name.endswith(".parquet"):
            number = name.removeprefix("part-").removesuffix(".parquet")
            if not number.isdigit() or int(number) >= keep:
                child.unlink(missing_ok=True)
    if not any(day_dir.iterdir()):
        day_dir.rmdir()
