"""Catalog files: `persona catalog import` reads CSV or JSONL into the store, `export` writes them.

    CSV    a header row: id, name, category ("Outdoor > Hiking > Backpacks"), brand, price,
           currency, tags (separated by | or ;), text (or description), in_stock
           (true/false, 1/0, yes/no); any other column goes to the item's attributes
    JSONL  one object per line with the same fields (tags and category may be lists)

A mapping (YAML: `file column: item field`) renames a shop's own columns. Bad rows do not
stop the import: each is reported with its line and field ("line 7: price: 'abc' is not a
number"), written to a rejects file (`<file>.rejects.jsonl`), and the good rows are stored,
a chunk per transaction. Imported items replace what the store held for their ids: the
import is the authority over the catalog.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import msgspec
import yaml

from persona.catalog.items import FIELDS, Item, ItemError, parse_item
from persona.catalog.store import CatalogStore
from persona.errors import ConfigError, RequestError

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
CHUNK_ROWS = 2000
SHOWN_REJECTS = 20
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class RejectedItem:
    line: int  # in the file, 1-based (a CSV header is line 1)
    field: str | None
    reason: str
    raw: Any

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class CatalogImport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rejects_path: Path | None = None
    first_rejects: list[RejectedItem] = field(default_factory=list)


def infer_format(path: Path) -> Format:
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise RequestError(f"cannot tell the format of {path.name} from its extension; give --format csv|jsonl",
                           field="format")
    return found


def read_mapping(path: Path) -> dict[str, str]:
    """A YAML mapping `file column: item field` (say `sku: id`, `title: name`)."""
    try:
        mapping = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the mapping {path}: {exc}", field="mapping") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ConfigError(f"{path}: a mapping is `file column: item field` lines", field="mapping")
    unknown = sorted(set(mapping.values()) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: {', '.join(unknown)} is not an item field ({', '.join(FIELDS)})", field="mapping")
    return mapping


def import_catalog(path: Path | str, store: CatalogStore, *, format: Format | None = None,
                   mapping: dict[str, str] | None = None, rejects_path: Path | str | None = None,
                   chunk_rows: int = CHUNK_ROWS, progress: Callable[[int, int], object] | None = None
                   ) -> CatalogImport:
    """Import a catalog file (see the module docstring); `progress(bytes read, file size)`."""
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"{path} is not a file", field="file")
    fmt = format or infer_format(path)
    if fmt not in FORMATS:
        raise RequestError(f"unknown format {fmt!r}; use csv or jsonl", field="format")
    rejects_file = Path(rejects_path) if rejects_path is not None else path.with_name(path.name + ".rejects.jsonl")
    result = CatalogImport()
    good: list[Item] = []
    rejects: IO[bytes] | None = None
    total = path.stat().st_size

    def flush(position: int) -> None:
        stored = store.upsert(good)
        result.created += stored.created
        result.updated += stored.updated
        good.clear()
        if progress is not None:
            progress(position, total)

    with path.open("rb") as raw:
        try:
            for line, record in _records(raw, fmt, path.name):
                result.rows += 1
                try:
                    if isinstance(record, RejectedItem):
                        raise ItemError(record.reason)
                    good.append(parse_item(_renamed(record, mapping)))
                except ItemError as bad:
                    reject = RejectedItem(line, bad.field, bad.message, record.raw if isinstance(
                        record, RejectedItem) else record)
                    if rejects is None:
                        rejects = rejects_file.open("wb")
                    rejects.write(_encode({"line": reject.line, "field": reject.field, "reason": reject.reason,
                                           "raw": reject.raw}) + b"\n")
                    result.rejected += 1
                    if len(result.first_rejects) < SHOWN_REJECTS:
                        result.first_rejects.append(reject)
                if len(good) >= chunk_rows:
                    flush(raw.tell())
            flush(total)
        finally:
            if rejects is not None:
                rejects.close()
    if rejects is None and rejects_file.exists():
        rejects_file.unlink()  # an earlier run's rejects, which no longer describe this file
    result.rejects_path = rejects_file if result.rejected else None
    return result


def _renamed(record: dict[str, Any], mapping: dict[str, str] | None) -> dict[str, Any]:
    if not mapping:
        return record
    return {mapping.get(key, key): value for key, value in record.items()}


def _records(raw: IO[bytes], fmt: Format, name: str) -> Iterator[tuple[int, dict[str, Any] | RejectedItem]]:
    """(line, record) for each row; a row that is not even a record comes as a RejectedItem."""
    if fmt == "jsonl":
        for number, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            try:
                yield number, _decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                yield number, RejectedItem(number, None, f"not valid JSON: {exc}", line.decode("utf-8", "replace"))
        return
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or "" in header or len(set(header)) != len(header):
            raise RequestError(f"{name}: the first line must name every column, once each", field="file")
        while True:
            line = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                return
            if not cells:
                continue
            if len(cells) != len(header):
                yield line, RejectedItem(line, None, f"the row has {len(cells)} cells, the header {len(header)}",
                                         cells)
                continue
            yield line, dict(zip(header, cells, strict=True))
    except UnicodeDecodeError as exc:
        raise RequestError(f"{name} is not UTF-8 text: {exc.reason}; rows before it were imported",
                           field="file") from None
    except csv.Error as exc:
        raise RequestError(f"{name} line {reader.line_num}: {exc}; rows before it were imported",
                           field="file") from None
    finally:
        text.detach()


# -- writing -----------------------------------------------------------------------------------
CSV_COLUMNS = ("id", "name", "category", "brand", "price", "currency", "tags", "text", "in_stock")


def write_catalog(items: Iterable[Item], path: Path | str, format: Format | None = None) -> int:
    """Write items as a file `import_catalog` reads back to the same items; returns how many.
    CSV keeps attributes as extra columns (their values as text)."""
    path = Path(path)
    fmt = format or infer_format(path)
    items = list(items)
    if fmt == "jsonl":
        with path.open("wb") as out:
            for item in items:
                body = item.to_json()
                for written_by_persona in ("source", "updated_at", "category_levels"):
                    body.pop(written_by_persona)
                out.write(_encode({k: v for k, v in body.items() if v not in (None, [], {})}) + b"\n")
        return len(items)
    extra = sorted({key for item in items for key in item.attributes} - set(CSV_COLUMNS))
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS, *extra])
        for i in items:
            writer.writerow([i.id, i.name or "", i.category_path, i.brand or "",
                             "" if i.price is None else repr(i.price), i.currency or "", "|".join(i.tags),
                             i.text or "", "true" if i.in_stock else "false",
                             *(_cell(i.attributes.get(key)) for key in extra)])
    return len(items)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _encode(value).decode()
