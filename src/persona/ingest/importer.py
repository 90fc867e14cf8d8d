"""Bulk import: stream a JSONL, CSV or Parquet file into the event log.

Every row goes through the same `normalize` as an HTTP message (received now), so the
log cannot tell an imported event from a sent one. Rows are appended in chunks, each
chunk's events and quarantined rejects in one transaction, so a large file never sits in
memory and a running server keeps ingesting between chunks (its processor picks the new
events up). A row without a messageId gets one derived from the source and the row's
content, so importing the same file twice stores every event once. Nothing is dropped
silently: each bad row is counted, written to a rejects file with its row number and
reason, and quarantined; rows read = accepted + duplicates + rejected.

    JSONL    one Segment message per line, or a line holding `{"batch": [...]}` (as /v1/batch)
    CSV      flat rows, turned into messages by a mapping (`ingest/mapping.py`)
    Parquet  Segment messages as columns (structs, maps, JSON strings), or flat rows + a mapping

`.jsonl.gz` and `.csv.gz` are read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from persona.access.keys import KeyStore
from persona.errors import RequestError
from persona.ingest.mapping import RowError, RowMapping, plain
from persona.ingest.messages import BatchDefaults, InvalidField, Rejection, normalize, parse_timestamp
from persona.log.events import Event, to_micros
from persona.log.store import EventLog, Rejected

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
DEFAULT_SOURCE = "import"
CHUNK_ROWS = 2000
MAX_RAW_CHARS = 32 * 1024  # a rejected row bigger than this as JSON is kept as the start of its JSON text
SHOWN_REJECTS = 20
_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
                                ".parquet": "parquet", ".pq": "parquet"}
_JSON_COLUMNS = ("properties", "traits", "context", "integrations")
_decode = msgspec.json.Decoder().decode
_canonical = msgspec.json.Encoder(order="sorted").encode
_encode_line = msgspec.json.Encoder(enc_hook=str).encode


@dataclass(frozen=True)
class ImportProgress:
    done: int   # bytes read (JSONL, CSV) or rows read (Parquet)
    total: int  # file size in bytes, or rows in the file
    rows: int   # rows read so far


@dataclass(frozen=True)
class RejectedRow:
    row: int             # 1-based: line number (JSONL), data row after the header (CSV), row (Parquet)
    field: str | None    # the message field (or mapping target) at fault, if one is
    reason: str
    raw: Any             # the row as read: a dict of cells, the message, or the line's text
    line: int | None = None   # CSV: the file line the record starts on (the header is line 1)
    index: int | None = None  # JSONL: position of the message in a `{"batch": [...]}` line
    unit: str = "row"         # what `row` counts, for people: "line" in JSONL

    @property
    def where(self) -> str:
        where = f"{self.unit} {self.row}" + (f" (line {self.line})" if self.line is not None else "")
        return where + (f" message {self.index}" if self.index is not None else "")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"row": self.row}
        if self.line is not None:
            body["line"] = self.line
        if self.index is not None:
            body["index"] = self.index
        body.update(field=self.field, reason=self.reason, raw=self.raw)
        return body


@dataclass
class ImportResult:
    path: Path
    format: Format
    source_id: str
    rows: int = 0        # rows (messages) read
    accepted: int = 0    # new events in the log
    duplicates: int = 0  # already in the log (same source and messageId)
    rejected: int = 0    # bad rows: in the rejects file and the quarantine
    rejects_path: Path | None = None  # set when there were rejects
    first_rejects: list[RejectedRow] = field(default_factory=list)  # up to SHOWN_REJECTS, for display

    @property
    def balanced(self) -> bool:
        return self.accepted + self.duplicates + self.rejected == self.rows


@dataclass
class _Row:
    """One record of the input on its way to normalize: a message, or why there is none."""

    row: int
    raw: Any
    message: Any = None
    error: RowError | None = None
    defaults: BatchDefaults | None = None
    line: int | None = None
    index: int | None = None
    unit: str = "row"


class _Reader:
    """The rows of one input file, and how far through it we are."""

    total: int = 0

    def __iter__(self) -> Iterator[_Row]:
        raise NotImplementedError

    def position(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def infer_format(path: Path) -> Format:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise RequestError(f"cannot tell the format of {path.name} from its extension; give --format "
                           f"({', '.join(FORMATS)})", field="format")
    return found


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.jsonl")


def import_file(
    path: Path | str,
    *,
    log: EventLog,
    keys: KeyStore,
    source: str = DEFAULT_SOURCE,
    mapping: RowMapping | None = None,
    format: Format | None = None,
    rejects_path: Path | str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    received_at: datetime | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportResult:
    """Import one file into `log` for `source` (created if new); see the module docstring.

    The rejects file (default `<file>.rejects.jsonl`) holds one JSON object per bad row:
    row, field, reason, raw. It is written only when a row is rejected; a rejects file left
    at that path by an earlier run is removed, so it always describes the latest import.
    Raises RequestError/ConfigError, before anything is stored, for an unreadable file,
    an unknown format, a CSV without a mapping or a mapping naming a missing column.
    """
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"{path} is not a file", field="file")
    fmt = format or infer_format(path)
    if fmt not in FORMATS:
        raise RequestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
    rejects_file = Path(rejects_path) if rejects_path is not None else default_rejects_path(path)
    if not rejects_file.parent.is_dir() or rejects_file.resolve() == path.resolve():
        raise RequestError(f"cannot write the rejects file {rejects_file}: give a path in an existing directory",
                           field="rejects")
    keys.create_source(source)
    now = received_at or datetime.now(UTC)
    reader = _open(path, fmt, mapping, now, chunk_rows)
    result = ImportResult(path=path, format=fmt, source_id=source)
    sink = _Rejects(rejects_file, source, to_micros(now), path.name)
    try:
        _run(reader, result, sink, log, source, BatchDefaults(received_at=now), chunk_rows, progress)
    finally:
        reader.close()
        sink.close()
    result.rejects_path = rejects_file if result.rejected else None
    return result


def _run(reader: _Reader, result: ImportResult, sink: _Rejects, log: EventLog, source: str,
         defaults: BatchDefaults, chunk_rows: int, progress: Callable[[ImportProgress], None] | None) -> None:
    events: list[Event] = []

    def flush() -> None:
        appended = log.append(events, sink.pending)
        result.accepted += appended.accepted
        result.duplicates += appended.duplicates
        sink.committed(result)
        events.clear()
        if progress is not None:
            progress(ImportProgress(reader.position(), reader.total, result.rows))

    for row in reader:
        result.rows += 1
        outcome = _event(row, source, defaults)
        if isinstance(outcome, Event):
            events.append(outcome)
        else:
            sink.add(outcome)
        if len(events) + len(sink.pending) >= chunk_rows:
            flush()
    flush()
    sink.finish()


def _event(row: _Row, source: str, defaults: BatchDefaults) -> Event | RejectedRow:
    def rejected(field: str | None, reason: str) -> RejectedRow:
        return RejectedRow(row.row, field, reason, row.raw, row.line, row.index, row.unit)

    if row.error is not None:
        return rejected(row.error.field, row.error.reason)
    message = row.message
    if isinstance(message, dict) and message.get("messageId") in (None, ""):
        message = {**message, "messageId": derived_message_id(source, message)}
    outcome = normalize(message, index=row.row, source_id=source, defaults=row.defaults or defaults)
    if isinstance(outcome, Rejection):
        return rejected(outcome.field, outcome.reason)
    return outcome


def derived_message_id(source: str, message: dict[str, Any]) -> str:
    """A messageId for a message without one: the same source and content give the same id."""
    try:
        content = _canonical(message)
    except (TypeError, ValueError, OverflowError):
        content = repr(message).encode()
    return "import-" + hashlib.sha256(source.encode() + b"\n" + content).hexdigest()[:32]


class _Rejects:
    """Rejected rows of the current chunk, then (after its commit) the rejects file."""

    def __init__(self, path: Path, source: str, received_us: int, name: str) -> None:
        self.path = path
        self.source = source
        self.received_us = received_us
        self.name = name
        self.rows: list[RejectedRow] = []
        self.pending: list[Rejected] = []
        self.file: IO[bytes] | None = None

    def add(self, rejected: RejectedRow) -> None:
        encoded = _encode_line(rejected.raw)
        if len(encoded) > MAX_RAW_CHARS:  # keep the rejects file and the quarantine small: the start is enough
            rejected = replace(rejected, raw=encoded[:MAX_RAW_CHARS].decode("utf-8", "ignore") + "...")
        self.rows.append(rejected)
        reason = f"import {self.name} {rejected.where}: {rejected.reason}"
        self.pending.append(Rejected(self.source, self.received_us, rejected.field, reason, rejected.raw))

    def committed(self, result: ImportResult) -> None:
        """The chunk is in the log: record its rejects in the rejects file and the result."""
        if self.rows and self.file is None:
            self.file = self.path.open("wb")
        for r in self.rows:
            assert self.file is not None
            self.file.write(_encode_line(r.to_json()) + b"\n")
            if len(result.first_rejects) < SHOWN_REJECTS:
                result.first_rejects.append(r)
        result.rejected += len(self.rows)
        self.rows.clear()
        self.pending = []

    def finish(self) -> None:
        if self.file is None and self.path.exists():
            self.path.unlink()  # an earlier run's rejects, which no longer describe this file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# -- readers -----------------------------------------------------------------------------------
def _open(path: Path, fmt: Format, mapping: RowMapping | None, now: datetime, chunk_rows: int) -> _Reader:
    if fmt == "csv":
        if mapping is None:
            raise RequestError("a CSV import needs a mapping (--mapping) saying how rows become messages",
                               field="mapping")
        return _CsvReader(path, mapping)
    if fmt == "parquet":
        return _ParquetReader(path, mapping, chunk_rows)
    return _JsonlReader(path, mapping, now)


def _binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """The file to read (gunzipped if `.gz`) and the raw file whose position measures progress."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise RequestError(f"cannot read {path}: {exc.strerror}", field="file") from None
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    return raw, raw


class _JsonlReader(_Reader):
    def __init__(self, path: Path, mapping: RowMapping | None, now: datetime) -> None:
        self.path = path
        self.mapping = mapping
        self.now = now
        self.file, self.raw = _binary(path)
        self.total = path.stat().st_size

    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.file.close()
        self.raw.close()

    def __iter__(self) -> Iterator[_Row]:
        for row in self._rows():
            row.unit = "line"
            yield row

    def _rows(self) -> Iterator[_Row]:
        for number, line in enumerate(_lines(self.file, self.path), start=1):
            if not line.strip():
                continue
            try:
                payload = _decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # also a number out of range
                yield _Row(number, _text(line), error=RowError(None, f"not valid JSON: {exc}"))
                continue
            if self.mapping is not None:
                yield _mapped(self.mapping, number, payload)
            elif isinstance(payload, dict) and "batch" in payload and "type" not in payload:
                yield from self._batch(number, payload)
            else:
                yield _Row(number, payload, message=payload)

    def _batch(self, number: int, payload: dict[str, Any]) -> Iterator[_Row]:
        messages = payload.get("batch")
        try:
            if not isinstance(messages, list):
                raise InvalidField("batch", "`batch` must be an array of messages")
            for name in ("context", "integrations"):
                if payload.get(name) is not None and not isinstance(payload[name], dict):
                    raise InvalidField(name, f"batch-level {name} must be an object")
            defaults = BatchDefaults(received_at=self.now, sent_at=parse_timestamp(payload.get("sentAt"), "sentAt"),
                                     context=payload.get("context"), integrations=payload.get("integrations"))
        except InvalidField as bad:
            yield _Row(number, payload, error=RowError(bad.field, bad.reason))
            return
        for index, message in enumerate(messages):
            yield _Row(number, message, message=message, defaults=defaults, index=index)


def _lines(file: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from file
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise RequestError(f"cannot read {path.name}: {exc}", field="file") from None


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")[:MAX_RAW_CHARS]


def _mapped(mapping: RowMapping, number: int, cells: Any, line: int | None = None) -> _Row:
    if not isinstance(cells, dict):
        return _Row(number, cells, error=RowError(None, "a mapped row must be an object of columns"), line=line)
    try:
        return _Row(number, cells, message=mapping.apply(cells), line=line)
    except RowError as bad:
        return _Row(number, cells, error=bad, line=line)


class _CsvReader(_Reader):
    def __init__(self, path: Path, mapping: RowMapping) -> None:
        self.path = path
        self.mapping = mapping
        self.file, self.raw = _binary(path)
        self.text = io.TextIOWrapper(self.file, encoding="utf-8-sig", newline="")
        self.total = path.stat().st_size
        self.reader = csv.reader(self.text)
        try:
            self.header = self._header()
            mapping.check_columns(self.header, path.name)
        except BaseException:
            self.close()
            raise

    def _header(self) -> list[str]:
        try:
            header = next(self.reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise RequestError(f"{self.path.name}: cannot read the header: {exc}", field="file") from None
        if not header:
            raise RequestError(f"{self.path.name} is empty: a CSV import needs a header row", field="file")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise RequestError(f"{self.path.name}: the header has the column {name!r} twice", field="file")
            seen.add(name)
        return header

    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.text.close()
        self.raw.close()

    def __iter__(self) -> Iterator[_Row]:
        number = 0
        width = len(self.header)
        while True:
            start = self.reader.line_num + 1
            try:
                cells = next(self.reader, None)
            except UnicodeDecodeError as exc:
                raise RequestError(f"{self.path.name} is not UTF-8 text near line {start}: {exc.reason}; rows "
                                   "before it were imported", field="file") from None
            except csv.Error as exc:
                raise RequestError(f"{self.path.name} line {start}: {exc}; rows before it were imported",
                                   field="file") from None
            if cells is None:
                return
            if not cells:
                continue  # a blank line
            number += 1
            if len(cells) != width:
                yield _Row(number, cells, line=start,
                           error=RowError(None, f"the row has {len(cells)} cells, the header {width}"))
                continue
            yield _mapped(self.mapping, number, dict(zip(self.header, cells, strict=True)), line=start)


class _ParquetReader(_Reader):
    def __init__(self, path: Path, mapping: RowMapping | None, chunk_rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.mapping = mapping
        self.chunk_rows = chunk_rows
        try:
            self.file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise RequestError(f"{path.name} is not a readable Parquet file: {exc}", field="file") from None
        self.total = self.file.metadata.num_rows
        self.done = 0
        names = self.file.schema_arrow.names
        if mapping is not None:
            try:
                mapping.check_columns(names, path.name)
            except BaseException:
                self.close()
                raise
        self.columns = mapping.columns if mapping is not None else None
        self.body = mapping is None and "body" in names  # a file written by `persona export`

    def position(self) -> int:
        return self.done

    def close(self) -> None:
        self.file.close()

    def __iter__(self) -> Iterator[_Row]:
        columns = ["body"] if self.body else self.columns
        for batch in self.file.iter_batches(batch_size=self.chunk_rows, columns=columns):
            for cells in _pylist(batch):
                self.done += 1
                number = self.done
                if isinstance(cells, RowError):
                    yield _Row(number, None, error=cells)
                elif self.mapping is not None:
                    yield _mapped(self.mapping, number, cells)
                else:
                    yield _segment_row(number, cells, self.body)


def _pylist(batch: Any) -> list[dict[str, Any] | RowError]:
    """A record batch as rows; maps become dicts (a map with a repeated key fails its row alone)."""
    try:
        return batch.to_pylist(maps_as_pydicts="strict")
    except KeyError:
        rows: list[dict[str, Any] | RowError] = []
        for i in range(batch.num_rows):
            try:
                rows.extend(batch.slice(i, 1).to_pylist(maps_as_pydicts="strict"))
            except KeyError as exc:
                rows.append(RowError(None, f"a map column repeats the key {exc}"))
        return rows


def _segment_row(number: int, cells: dict[str, Any], body: bool) -> _Row:
    """A Parquet row whose columns are message fields; null means absent."""
    try:
        shown = plain(cells)
        if body:
            raw = cells.get("body")
            message = _decode(raw) if isinstance(raw, str | bytes) else raw
            return _Row(number, shown, message=message)
        message = dict(shown)
        for name in _JSON_COLUMNS:
            if isinstance(message.get(name), str):
                try:
                    message[name] = _decode(message[name])
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    raise RowError(name, f"{name} is a string but not valid JSON: {exc}") from None
        return _Row(number, shown, message=message)
    except RowError as bad:
        return _Row(number, _safe(cells), error=bad)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return _Row(number, _safe(cells), error=RowError("body", f"body is not valid JSON: {exc}"))


def _safe(cells: dict[str, Any]) -> Any:
    return {k: (repr(v)[:MAX_RAW_CHARS] if isinstance(v, bytes) else v) for k, v in cells.items()}
