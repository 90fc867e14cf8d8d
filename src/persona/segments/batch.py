"""The batch evaluator: every definition for every profile at once, as one vectorized query in DuckDB.

It answers the same question as the reference evaluator (`segments/evaluate.py`), for all
profiles together: used to verify what the live stage keeps (`persona segments verify`) and
to size a definition before saving it. The data is two tables:

- `events(profile, ts, seq, name, <property columns>)`: one row per event the definitions
  read, `ts` in µs UTC;
- `profiles(profile, <trait columns>)`: every profile, with the traits the definitions read.

A JSON value is spread over four typed columns so that SQL compares it the way the
reference does (`5` equals `5.0`, not `"5"` and not `true`): `_n` the number, `_t` the text,
`_o` anything else as JSON (booleans, lists, objects), `_l` a list's elements as keys (for
`contains`). JSON null and a missing value are NULL in all four.

All event aggregates are computed in a single pass over `events` (one `FILTER` clause each,
windows at the same `now`), `most_frequent` in one grouped pass each; segments compile to
boolean expressions over them, segment references inlined, computed traits are struct
columns. Differences from the reference: `regex` runs on DuckDB's RE2, which has no
backreferences or lookaround, and sums of many floats may differ in the last bits before
the rounding to six places both apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from persona.segments.definitions import (
    All,
    AnyOf,
    Comparison,
    ComputedCondition,
    ComputedTrait,
    Condition,
    EventAggregate,
    EventCondition,
    Not,
    SegmentCondition,
    SegmentDefinition,
    TraitCondition,
    aggregates_of,
    traits_used,
)
from persona.segments.evaluate import MICROS, MISSING, lookup
from persona.segments.live import Plan, input_key

_ORDER = "(ts::HUGEINT * 1099511627776 + seq)"  # (ts, seq) as one number, for seq < 2^40: cheaper than a struct
_json = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
Row = tuple[Any, int, int, str, Mapping[str, Any]]  # (profile, timestamp µs, seq, event name, properties)


@dataclass(frozen=True)
class Value:
    """SQL expressions for one JSON value's four typed columns."""

    n: str
    t: str = "NULL"
    o: str = "NULL"
    l: str = "NULL"  # noqa: E741

    @classmethod
    def columns(cls, prefix: str, filled: Container[str] | None = None) -> Value:
        """The value in columns `prefix_n`..., those known to hold nothing (not in `filled`) as NULL."""
        names = [f"{prefix}_{part}" for part in "ntol"]
        return cls(*(name if filled is None or name in filled else "NULL" for name in names))

    @property
    def present(self) -> str:
        tests = [f"{c} IS NOT NULL" for c in (self.n, self.t, self.o) if c != "NULL"]
        return f"({' OR '.join(tests)})" if tests else "false"

    @property
    def only(self) -> str | None:
        """The one part that can hold something ("n", "t" or "o"), when there is one; else None."""
        parts = [part for part in "nto" if getattr(self, part) != "NULL"]
        return parts[0] if len(parts) == 1 and self.l == "NULL" else None

    @property
    def struct(self) -> str:
        return f"struct_pack(n := {self.n}, t := {self.t}, o := {self.o}, l := {self.l})"


def spread(value: Any) -> tuple[float | None, str | None, str | None, list[str] | None]:
    """A JSON value as (number, text, other JSON, list element keys)."""
    if value is MISSING or value is None:
        return None, None, None, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None, None, None
    if isinstance(value, str):
        return None, value, None, None
    elements = [element_key(v) for v in value] if isinstance(value, list) else None
    return None, None, _json(value).decode(), elements


def element_key(value: Any) -> str:
    """A key equal for values the reference calls the same (`_same`): 5 and 5.0, not "5" or true."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"n{float(value)!r}"
    if isinstance(value, str):
        return f"s{value}"
    return f"o{_json(value).decode()}"


def unspread(struct: Mapping[str, Any] | None) -> Any:
    """A value struct from a query back to a Python value (None: no value)."""
    if struct is None:
        return None
    if struct["n"] is not None:
        return struct["n"]
    if struct["t"] is not None:
        return struct["t"]
    return None if struct["o"] is None else _decode(struct["o"])


class BatchEvaluator:
    """Definitions compiled to one DuckDB query; `load` the data, then `evaluate` at any moment."""

    def __init__(self, segments: Iterable[SegmentDefinition], computed: Iterable[ComputedTrait]) -> None:
        self.plan = Plan(segments, computed)
        aggregates = [c.of for c in self.plan.computed.values()]
        aggregates += [a for s in self.plan.segments.values() for a in aggregates_of(s.where)]
        self.aggregates = {input_key(of) + _window(of): of for of in aggregates}
        paths = sorted({p for of in aggregates for p in _paths(of)})
        self.properties = {path: f"p{i}" for i, path in enumerate(paths)}
        traits = sorted({t for s in self.plan.segments.values() for t in traits_used(s.where)})
        self.traits = {trait: f"t{i}" for i, trait in enumerate(traits)}
        self.events = {of.event for of in aggregates}
        self.filled: set[str] | None = None  # columns holding some value (known once loaded)
        self.db = duckdb.connect()
        self.db.execute("SET preserve_insertion_order = false")

    # -- data ------------------------------------------------------------------------------------
    def event_schema(self) -> pa.Schema:
        fields = [pa.field("profile", pa.string()), pa.field("ts", pa.int64()), pa.field("seq", pa.int64()),
                  pa.field("name", pa.string())]
        return pa.schema(fields + [f for prefix in self.properties.values() for f in _value_fields(prefix)])

    def profile_schema(self) -> pa.Schema:
        return pa.schema([pa.field("profile", pa.string())]
                         + [f for prefix in self.traits.values() for f in _value_fields(prefix)])

    def event_batches(self, rows: Iterable[Row], batch: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Arrow batches of the rows the definitions read (other events are dropped here)."""
        schema = self.event_schema()
        columns: list[list[Any]] = [[] for _ in schema]
        for profile, ts, seq, name, properties in rows:
            if name not in self.events:
                continue
            _append(columns, [profile, ts, seq, name, *(v for path in self.properties
                                                       for v in spread(lookup(properties, path)))])
            if len(columns[0]) >= batch:
                yield _record_batch(columns, schema)
                columns = [[] for _ in schema]
        if columns[0]:
            yield _record_batch(columns, schema)

    def profile_table(self, profiles: Mapping[Any, Mapping[str, Any]]) -> pa.Table:
        schema = self.profile_schema()
        columns: list[list[Any]] = [[] for _ in schema]
        for profile, traits in profiles.items():
            _append(columns, [profile, *(v for trait in self.traits for v in spread(traits.get(trait, MISSING)))])
        return pa.Table.from_batches([_record_batch(columns, schema)])

    def load(self, events: pa.Table | Iterable[pa.RecordBatch], profiles: pa.Table) -> None:
        """Copy the data into the evaluator's database (replacing what was there)."""
        if not isinstance(events, pa.Table):
            events = pa.Table.from_batches(list(events), schema=self.event_schema())
        self.db.register("events_in", events)
        self.db.register("profiles_in", profiles)
        # Clustered by event name, in log order within each: an event's aggregation scans only its own
        # row groups, and of those (the log being appended in time order, roughly) only its windows'.
        self.db.execute("CREATE OR REPLACE TEMP TABLE arrived AS SELECT * FROM events_in")
        self.db.execute("CREATE OR REPLACE TABLE events AS SELECT * FROM arrived WHERE false")
        for name in sorted(self.events):
            self.db.execute("INSERT INTO events SELECT * FROM arrived WHERE name = ?", [name])
        self.db.execute("DROP TABLE arrived")
        self.db.execute("CREATE OR REPLACE TABLE profiles AS SELECT * FROM profiles_in")
        self.db.unregister("events_in")
        self.db.unregister("profiles_in")
        self.filled = {column for table in ("events", "profiles") for column in self._filled(table)}

    def _filled(self, table: str) -> list[str]:
        described = self.db.execute(f"DESCRIBE {table}").fetchall()
        columns = [r[0] for r in described if r[0][-2:] in ("_n", "_t", "_o", "_l")]
        if not columns:
            return []
        row = self.db.execute(f"SELECT {', '.join(f'count({c})' for c in columns)} FROM {table}").fetchone()
        return [c for c, n in zip(columns, row or (), strict=True) if n]

    def property(self, path: str) -> Value:
        return Value.columns(self.properties[path], self.filled)

    def trait(self, name: str) -> Value:
        return Value.columns(self.traits[name], self.filled)

    # -- evaluation ------------------------------------------------------------------------------
    def sql(self, now: int) -> str:
        """The query giving every profile's segments (booleans) and computed traits (value structs)."""
        columns = {key: f"a{i}" for i, key in enumerate(self.aggregates)}
        ctes, joins = [], []
        for event in sorted(self.events):
            reads = [(key, of) for key, of in self.aggregates.items()
                     if of.event == event and of.aggregate != "most_frequent"]
            # One grouped pass per event over its rows in the longest window its aggregates read, and
            # one over all of them for those with no window: most events are old, most windows short.
            for windowed in (True, False):
                group = [(key, of) for key, of in reads if (of.within is not None) == windowed]
                if not group:
                    continue
                name = f"e{len(ctes)}"
                since = max(of.within for _, of in group) if windowed else None  # type: ignore[type-var]
                selects = ", ".join(f"{_aggregate_sql(of, self.property, now)} AS {columns[key]}" for key, of in group)
                ctes.append(f"{name} AS (SELECT profile, {selects} FROM events WHERE {_rows(event, since, now)}"
                            f" GROUP BY profile)")
                joins.append(name)
        for key, of in self.aggregates.items():
            if of.aggregate == "most_frequent":
                ctes.append(f"mf_{columns[key]} AS ({_most_frequent_sql(of, self.property, now, columns[key])})")
                joins.append(f"mf_{columns[key]}")
        compiler = _Compiler(self, columns)
        outputs = [f"{compiler.computed(c).struct} AS {_ident('c_' + c)}" for c in self.plan.computed]
        outputs += [f"{compiler.segment(s)} AS {_ident('s_' + s)}" for s in self.plan.segments]
        with_ = f"WITH {', '.join(ctes)} " if ctes else ""
        return (f"{with_}SELECT profiles.profile, {', '.join(outputs) or 'NULL AS nothing'} FROM profiles"
                + "".join(f" LEFT JOIN {name} USING (profile)" for name in joins))

    def evaluate(self, now: int) -> BatchResult:
        started = time.perf_counter()
        self.db.execute(f"CREATE OR REPLACE TABLE result AS {self.sql(now)}")
        return BatchResult(self, time.perf_counter() - started)


@dataclass
class BatchResult:
    evaluator: BatchEvaluator
    seconds: float
    _sizes: dict[str, int] | None = field(default=None, repr=False)

    def sizes(self) -> dict[str, int]:
        if self._sizes is None:
            segments = list(self.evaluator.plan.segments)
            if not segments:
                return {}
            counts = ", ".join(f"count(*) FILTER (WHERE {_ident('s_' + s)})" for s in segments)
            row = self.evaluator.db.execute(f"SELECT {counts} FROM result").fetchone()
            assert row is not None
            self._sizes = dict(zip(segments, map(int, row), strict=True))
        return self._sizes

    def members(self, segment_id: str) -> set[Any]:
        column = _ident("s_" + segment_id)
        return {r[0] for r in self.evaluator.db.execute(f"SELECT profile FROM result WHERE {column}").fetchall()}

    def profiles(self) -> dict[Any, tuple[set[str], dict[str, Any]]]:
        """profile -> (its segments, its computed traits that have a value): for checks on small data."""
        segments, computed = list(self.evaluator.plan.segments), list(self.evaluator.plan.computed)
        out = {}
        for row in self.evaluator.db.execute("SELECT * FROM result").fetchall():
            values = {c: unspread(v) for c, v in zip(computed, row[1:1 + len(computed)], strict=True)}
            flags = row[1 + len(computed):1 + len(computed) + len(segments)]
            out[row[0]] = ({s for s, inside in zip(segments, flags, strict=True) if inside},
                           {c: v for c, v in values.items() if v is not None})
        return out


# -- compiling -----------------------------------------------------------------------------------
class _Compiler:
    def __init__(self, evaluator: BatchEvaluator, columns: Mapping[str, str]) -> None:
        self.evaluator = evaluator
        self.columns = columns
        self._segments: dict[str, str] = {}

    def segment(self, segment_id: str) -> str:
        if segment_id not in self._segments:
            self._segments[segment_id] = self.condition(self.evaluator.plan.segments[segment_id].where)
        return self._segments[segment_id]

    def computed(self, trait_id: str) -> Value:
        return self.aggregate(self.evaluator.plan.computed[trait_id].of)

    def aggregate(self, of: EventAggregate) -> Value:
        column = self.columns[input_key(of) + _window(of)]
        if of.aggregate in ("count", "distinct", "sum"):
            return Value(f"coalesce({column}, 0)")
        if of.aggregate in ("first", "last") and (part := self.evaluator.property(of.property or "").only):
            return Value(**{"n": "NULL", part: column})  # picked as a plain column, not a struct
        if of.aggregate in ("first", "last", "most_frequent"):
            return Value(f"{column}.n", f"{column}.t", f"{column}.o", f"{column}.l")
        return Value(column)

    def condition(self, condition: Condition) -> str:
        if isinstance(condition, All):
            return "(" + " AND ".join(self.condition(c) for c in condition.conditions) + ")"
        if isinstance(condition, AnyOf):
            return "(" + " OR ".join(self.condition(c) for c in condition.conditions) + ")"
        if isinstance(condition, Not):
            return f"(NOT {self.condition(condition.condition)})"
        if isinstance(condition, SegmentCondition):
            return self.segment(condition.segment)
        if isinstance(condition, TraitCondition):
            return compare_sql(condition.comparison, self.evaluator.trait(condition.trait))
        if isinstance(condition, ComputedCondition):
            return compare_sql(condition.comparison, self.computed(condition.computed))
        assert isinstance(condition, EventCondition)
        return compare_sql(condition.comparison, self.aggregate(condition.of))


def compare_sql(comparison: Comparison, value: Value) -> str:
    """`evaluate.compare` as a SQL boolean that is never NULL."""
    op, expected = comparison.op, comparison.value
    if op == "exists":
        return value.present if expected else f"(NOT {value.present})"
    if op in ("eq", "ne", "in", "not_in"):
        options = expected if op in ("in", "not_in") else (expected,)
        equal = " OR ".join(_equals(value, option) for option in options)
        if op in ("eq", "in"):
            return f"coalesce({equal}, false)"
        return f"({value.present} AND NOT coalesce({equal}, false))"
    if op == "contains":
        in_list = f"list_contains({value.l}, {_literal(element_key(expected))})"
        if isinstance(expected, str):
            return f"coalesce(contains({value.t}, {_literal(expected)}) OR {in_list}, false)"
        return f"coalesce({in_list}, false)"
    if op == "regex":
        return f"coalesce(regexp_matches({value.t}, {_literal(expected)}), false)"
    if op == "between":
        low, high = expected
        return f"coalesce({value.n} BETWEEN {_number(low)} AND {_number(high)}, false)"
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"coalesce({value.n} {symbol} {_number(expected)}, false)"


def _equals(value: Value, expected: Any) -> str:
    if isinstance(expected, bool):
        return f"{value.o} = {_literal('true' if expected else 'false')}"
    if isinstance(expected, int | float):
        return f"{value.n} = {_number(expected)}"
    if isinstance(expected, str):
        return f"{value.t} = {_literal(expected)}"
    return "false"  # null equals nothing


def _rows(event: str, within: int | None, now: int) -> str:
    """The event's rows in a window (None: all) at `now`."""
    return f"name = {_literal(event)} AND ts <= {now}" + (f" AND ts >= {now - within * MICROS}" if within else "")


def _row_filter(of: EventAggregate, value_of: Callable[[str], Value], now: int) -> str:
    """The rows of the aggregate's event it reads: in its window at `now`, passing its filters."""
    parts = [f"ts <= {now}"]
    if of.within is not None:
        parts.append(f"ts >= {now - of.within * MICROS}")
    parts += [compare_sql(f.comparison, value_of(f.property)) for f in of.where]
    if of.property is not None:
        parts.append(value_of(of.property).present)
    return " AND ".join(parts)


def _aggregate_sql(of: EventAggregate, value_of: Callable[[str], Value], now: int) -> str:
    where = f"FILTER (WHERE {_row_filter(of, value_of, now)})"
    if of.aggregate == "count":
        return f"count(*) {where}"
    value = value_of(of.property or "")
    if of.aggregate == "sum":
        return f"round(sum({value.n}) {where}, 6)"
    if of.aggregate == "avg":
        return f"round(avg({value.n}) {where}, 6)"
    if of.aggregate in ("min", "max"):
        return f"{of.aggregate}({value.n}) {where}"
    if of.aggregate == "distinct":
        counts = [f"count(DISTINCT {c}) {where}" for c in (value.n, value.t, value.o) if c != "NULL"]
        return " + ".join(counts) or "0"
    pick = "arg_min" if of.aggregate == "first" else "arg_max"
    return f"{pick}({getattr(value, value.only) if value.only else value.struct}, {_ORDER}) {where}"


def _most_frequent_sql(of: EventAggregate, value_of: Callable[[str], Value], now: int, column: str) -> str:
    """The value seen most often, ties going to the one seen last: one grouped pass."""
    value = value_of(of.property or "")
    counted = (f"SELECT profile, {value.n} AS n, {value.t} AS t, {value.o} AS o, any_value({value.l}) AS l,"
               f" count(*) AS times, max({_ORDER}) AS last FROM events"
               f" WHERE {_rows(of.event, of.within, now)} AND {_row_filter(of, value_of, now)}"
               f" GROUP BY profile, {value.n}, {value.t}, {value.o}")
    return (f"SELECT profile, arg_max(struct_pack(n := n, t := t, o := o, l := l),"
            f" struct_pack(times, last)) AS {column} FROM ({counted}) GROUP BY profile")


# -- small helpers -------------------------------------------------------------------------------
def _append(columns: list[list[Any]], row: list[Any]) -> None:
    for column, value in zip(columns, row, strict=True):
        column.append(value)


def _record_batch(columns: list[list[Any]], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)],
                                      schema=schema)


def _value_fields(prefix: str) -> list[pa.Field]:
    return [pa.field(f"{prefix}_n", pa.float64()), pa.field(f"{prefix}_t", pa.string()),
            pa.field(f"{prefix}_o", pa.string()), pa.field(f"{prefix}_l", pa.list_(pa.string()))]


def _paths(of: EventAggregate) -> set[str]:
    return {f.property for f in of.where} | ({of.property} if of.property else set())


def _window(of: EventAggregate) -> str:
    return f"|{of.aggregate}|{of.within}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _number(value: float) -> str:
    return repr(float(value))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
