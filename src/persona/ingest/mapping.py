"""Bulk import mappings: how a flat row (a CSV line, a Parquet record) becomes a Segment message.

A mapping file is small YAML, validated when it is loaded so a typo fails before a single
row is read (the error names the field). Each row becomes one message of the mapping's
`type`; `fields` maps a target path in the message (`userId`, `properties.revenue`,
`properties.products[0].sku`, `traits.email`) to a column, or to a constant, with an
optional cast. A cast that fails raises `RowError` naming the target field, and the
importer rejects that row alone. docs/configuration.md ("Bulk import mapping") is the
user's reference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from persona.errors import ConfigError
from persona.log.events import iso, to_micros

CastType = Literal["str", "int", "float", "bool", "timestamp"]
MessageType = Literal["track", "identify", "page", "screen", "group", "alias"]

# Top-level message fields a mapping may set: scalars, and objects that need a sub-path.
SCALAR_ROOTS = frozenset({"userId", "anonymousId", "messageId", "timestamp", "originalTimestamp", "event", "name",
                          "category", "groupId", "previousId"})
OBJECT_ROOTS = frozenset({"properties", "traits", "context", "integrations"})
_TIME_ROOTS = frozenset({"timestamp", "originalTimestamp"})
_SEGMENT = re.compile(r"^([A-Za-z_$][\w$-]*)((?:\[\d+\])*)$")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Where one message field comes from. A bare string in `fields` is `{column: <string>}`."""

    column: str | None = None
    value: Any = msgspec.UNSET          # a constant, instead of a column
    type: CastType | None = None        # cast; `timestamp` is implied for timestamp/originalTimestamp
    format: str | None = None           # timestamps: a strptime format, or `unix` / `unix_ms`
    timezone: str | None = None         # timestamps without an offset are in this zone (default UTC)
    default: Any = msgspec.UNSET        # used when the cell is empty
    required: bool = False              # an empty cell rejects the row (instead of leaving the field out)


class Mapping(msgspec.Struct, forbid_unknown_fields=True):
    """The mapping file: one message of `type` per row."""

    type: MessageType
    fields: dict[str, str | FieldSpec]
    event: str | None = None  # the event name of every row (track); or map `event` from a column


class RowError(Exception):
    """A row the mapping cannot turn into a message; `field` is the target path at fault."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


Key = str | int


@dataclass(frozen=True)
class _Rule:
    target: str
    keys: tuple[Key, ...]
    spec: FieldSpec
    cast: CastType | None
    zone: tzinfo | None
    constant: Any  # the cast constant, or UNSET
    default: Any   # the cast default, or UNSET


class RowMapping:
    """A validated mapping, ready to turn rows into messages."""

    def __init__(self, mapping: Mapping, origin: str = "mapping") -> None:
        self.mapping = mapping
        self.origin = origin
        if not mapping.fields:
            raise ConfigError(f"{origin}: `fields` is empty; map at least userId or anonymousId", field="fields")
        self.rules = [_compile(target, spec, origin) for target, spec in mapping.fields.items()]
        _check_paths(self.rules, origin)
        targets = {r.target for r in self.rules}
        if mapping.event is not None and "event" in targets:
            raise ConfigError(f"{origin}: give the event name either as `event` or in `fields.event`, not both",
                              field="event")
        if mapping.type == "track" and mapping.event is None and "event" not in targets:
            raise ConfigError(f"{origin}: a track mapping needs `event` (the event name) or `fields.event`",
                              field="event")
        if mapping.type != "track" and mapping.event is not None:
            raise ConfigError(f"{origin}: `event` is only for track mappings; use fields.name for a "
                              f"{mapping.type} name", field="event")

    @property
    def columns(self) -> list[str]:
        """The columns the mapping reads, in order of first use."""
        return list(dict.fromkeys(r.spec.column for r in self.rules if r.spec.column is not None))

    def check_columns(self, available: Iterable[str], source: str) -> None:
        """Fail before reading rows if the mapping names a column the file does not have."""
        have = set(available)
        for rule in self.rules:
            if rule.spec.column is not None and rule.spec.column not in have:
                shown = ", ".join(sorted(have)[:30])
                raise ConfigError(f"{self.origin}: fields.{rule.target}: column {rule.spec.column!r} is not in "
                                  f"{source} (columns: {shown})", field=f"fields.{rule.target}")

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        """One row to a Segment message (not yet normalized); raises RowError."""
        message: dict[str, Any] = {"type": self.mapping.type}
        if self.mapping.event is not None:
            message["event"] = self.mapping.event
        for rule in self.rules:
            value = _value(rule, row)
            if value is not msgspec.UNSET:
                _put(message, rule.keys, value)
        return _compact(message)


def load_mapping(path: Path | str) -> RowMapping:
    """Read and validate a mapping file; a ConfigError names the field at fault."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the mapping file {path}: {exc.strerror}", field="mapping") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="mapping") from None
    return parse_mapping(raw, origin=str(path))


def parse_mapping(raw: Any, origin: str = "mapping") -> RowMapping:
    """Validate a mapping given as plain data (what the YAML file holds)."""
    top = _convert(raw, _MappingFile, origin, "")
    fields = {str(target): _convert(spec, str | FieldSpec, origin, f"fields.{target}")  # type: ignore[arg-type]
              for target, spec in top.fields.items()}
    return RowMapping(Mapping(type=top.type, fields=fields, event=top.event), origin)


class _MappingFile(msgspec.Struct, forbid_unknown_fields=True):
    """`Mapping` with the specs left raw, so each is checked on its own and errors name its target."""

    type: MessageType
    fields: dict[str, Any]
    event: str | None = None


def _convert(raw: Any, kind: Any, origin: str, prefix: str) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.split(" - at `$", 1)[1].rstrip("`").lstrip(".") if " - at `$" in text else ""
        unknown = re.search(r"(?:unknown|missing required) field `([^`]+)`", text)
        where = ".".join(p for p in (prefix, path, unknown.group(1) if unknown else "") if p) or None
        reason = text.split(" - at `$", 1)[0]
        raise ConfigError(f"{origin}: {where}: {reason}" if where else f"{origin}: {reason}", field=where) from None


# -- compiling ---------------------------------------------------------------------------------
def _compile(target: str, given: str | FieldSpec, origin: str) -> _Rule:
    spec = FieldSpec(column=given) if isinstance(given, str) else given
    where = f"fields.{target}"

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{origin}: {where}: {reason}", field=where)

    keys = _parse_path(target)
    if keys is None:
        raise bad("not a valid path; use dotted names with optional [index], e.g. properties.products[0].sku")
    root = keys[0]
    if root == "type":
        raise bad("the message type is the mapping's `type`, not a field")
    if root not in SCALAR_ROOTS and root not in OBJECT_ROOTS:
        raise bad(f"unknown message field {root!r}; use one of {sorted(SCALAR_ROOTS | OBJECT_ROOTS)}")
    if root in SCALAR_ROOTS and len(keys) > 1:
        raise bad(f"{root} is a single value and has no sub-fields")
    if root in OBJECT_ROOTS and len(keys) == 1:
        raise bad(f"{root} is an object: map its fields, e.g. {root}.name")
    if (spec.column is None) == (spec.value is msgspec.UNSET):
        raise bad("give exactly one of `column` or `value`")
    if spec.column is not None and not spec.column:
        raise bad("`column` is empty")
    cast = spec.type or ("timestamp" if root in _TIME_ROOTS else None)
    if cast != "timestamp" and (spec.format is not None or spec.timezone is not None):
        raise bad("`format` and `timezone` apply to timestamps only (type: timestamp)")
    zone: tzinfo | None = None
    if spec.timezone is not None:
        try:
            zone = ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad(f"unknown timezone {spec.timezone!r}; use an IANA name such as Europe/Berlin") from None
    rule = _Rule(target, keys, spec, cast, zone, msgspec.UNSET, msgspec.UNSET)
    try:
        constant = spec.value if spec.value is msgspec.UNSET else _cast(rule, spec.value)
        default = spec.default if spec.default is msgspec.UNSET else _cast(rule, spec.default)
    except RowError as exc:
        raise bad(exc.reason) from None
    return _Rule(target, keys, spec, cast, zone, constant, default)


def _parse_path(target: str) -> tuple[Key, ...] | None:
    keys: list[Key] = []
    for part in target.split("."):
        match = _SEGMENT.match(part)
        if match is None:
            return None
        keys.append(match.group(1))
        keys.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(keys)


def _check_paths(rules: list[_Rule], origin: str) -> None:
    """No path may be a prefix of another: `properties.a` and `properties.a.b` cannot both be set."""
    seen = sorted(rules, key=lambda r: len(r.keys))
    for i, short in enumerate(seen):
        for long in seen[i + 1:]:
            if long.keys[:len(short.keys)] == short.keys:
                raise ConfigError(f"{origin}: fields.{long.target}: conflicts with fields.{short.target}",
                                  field=f"fields.{long.target}")


# -- applying ----------------------------------------------------------------------------------
def _value(rule: _Rule, row: dict[str, Any]) -> Any:
    if rule.constant is not msgspec.UNSET:
        return rule.constant
    cell = row.get(rule.spec.column)  # type: ignore[arg-type]
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        if rule.default is not msgspec.UNSET:
            return rule.default
        if rule.spec.required:
            raise RowError(rule.target, f"column {rule.spec.column!r} is empty")
        return msgspec.UNSET
    try:
        return _cast(rule, cell)
    except RowError as exc:
        raise RowError(rule.target, f"column {rule.spec.column!r}: {exc.reason}") from None


def _cast(rule: _Rule, value: Any) -> Any:
    cast = rule.cast
    if cast is None:
        return plain(value)
    if cast == "timestamp":
        return _timestamp(rule, value)
    if cast == "str":
        return plain(value) if isinstance(value, str | datetime | date) else str(plain(value))
    if cast == "bool":
        return _bool(value)
    if cast == "int":
        return _int(value)
    return _float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(None, f"cannot read {_shown(value)} as bool (use true/false, yes/no, 1/0)")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise RowError(None, f"cannot read {_shown(value)} as int")
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise RowError(None, f"cannot read {_shown(value)} as int") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise RowError(None, f"cannot read {_shown(value)} as int")
    return int(number)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise RowError(None, f"cannot read {_shown(value)} as float")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise RowError(None, f"cannot read {_shown(value)} as float") from None
    if not math.isfinite(number):
        raise RowError(None, f"{_shown(value)} is not a finite number")
    return number


def _timestamp(rule: _Rule, value: Any) -> str:
    fmt = rule.spec.format
    zone = rule.zone or UTC
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, date):
            dt = datetime(value.year, value.month, value.day)
        elif fmt in ("unix", "unix_ms"):
            seconds = float(value) / (1000 if fmt == "unix_ms" else 1)
            dt = datetime.fromtimestamp(seconds, UTC)
        elif not isinstance(value, str):
            raise RowError(None, f"cannot read {_shown(value)} as a timestamp")
        elif fmt is not None:
            dt = datetime.strptime(value.strip(), fmt)
        else:
            dt = datetime.fromisoformat(value.strip())
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        return iso(to_micros(dt.astimezone(UTC)))
    except (ValueError, OverflowError, OSError):
        expected = f"the format {fmt!r}" if fmt else "ISO 8601"
        raise RowError(None, f"cannot read {_shown(value)} as a timestamp in {expected}") from None


def plain(value: Any) -> Any:
    """A cell as a JSON value: Parquet gives datetimes, dates, decimals and bytes too."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return iso(to_micros(value.replace(tzinfo=UTC)))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.is_finite() else float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise RowError(None, "a binary value is not UTF-8 text") from None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


_HOLE = object()


def _put(message: dict[str, Any], keys: tuple[Key, ...], value: Any) -> None:
    node: Any = message
    for key, nxt in pairwise(keys):
        node = _child(node, key, [] if isinstance(nxt, int) else {})
    last = keys[-1]
    if isinstance(last, int):
        node.extend([_HOLE] * (last + 1 - len(node)))
    node[last] = value


def _child(node: Any, key: Key, empty: Any) -> Any:
    if isinstance(key, int):
        node.extend([_HOLE] * (key + 1 - len(node)))
        if node[key] is _HOLE:
            node[key] = empty
        return node[key]
    return node.setdefault(key, empty)


def _compact(value: Any) -> Any:
    """Drop list slots no cell filled (`products[1]` when its cells are empty) and emptied objects."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_compact(v) for v in value if v is not _HOLE]
        return [v for v in items if v != {}]
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
