"""Bulk import from real files into a real SQLite log: JSONL, CSV + mapping, Parquet; rejects; dedup."""

from __future__ import annotations

import contextlib
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from persona.cli import app
from persona.engine import Engine
from persona.errors import ConfigError, RequestError
from persona.ingest.importer import ImportProgress, ImportResult, import_file
from persona.ingest.mapping import RowMapping, load_mapping, parse_mapping
from persona.log.events import to_micros
from persona.log.export import export_parquet
from tests.support.backends import postgres_schema

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL

IMPORTED_AT = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)

POS_CSV = """\
customer_id,date,amount,sku,order_id
c-1,01.09.2026 14:30,59.90,SKU-1,o-1
c-2,02.09.2026 09:00,abc,SKU-2,o-2
,03.09.2026 10:00,5.00,SKU-3,o-3
c-1,15.12.2026 18:45,12.50,SKU-4,o-4
c-3,31.12.2026 23:30,100,SKU-5,o-5
"""

POS_YAML = """\
type: track
event: Order Completed
fields:
  userId: customer_id
  timestamp: {column: date, format: "%d.%m.%Y %H:%M", timezone: Europe/Berlin}
  properties.order_id: order_id
  properties.revenue: {column: amount, type: float}
  properties.currency: {value: EUR}
  properties.products[0].sku: sku
"""


def run_import(engine: Engine, path: Path, **options: Any) -> ImportResult:
    options.setdefault("received_at", IMPORTED_AT)
    result = import_file(path, log=engine.log, keys=engine.keys, **options)
    assert result.balanced, result
    return result


def read_rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def pos_files(tmp_path: Path) -> tuple[Path, RowMapping]:
    csv_path = tmp_path / "orders.csv"
    csv_path.write_text(POS_CSV)
    mapping_path = tmp_path / "pos.yaml"
    mapping_path.write_text(POS_YAML)
    return csv_path, load_mapping(mapping_path)


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def track(user: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Viewed", "timestamp": f"2026-09-0{n}T10:00:00Z",
            "properties": {"n": n}, **fields}


# -- JSONL -------------------------------------------------------------------------------------
def test_jsonl_import_stores_good_lines_and_reports_bad_ones_by_line(engine: Engine, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [
        track("u1", 1, messageId="m-1"),                               # line 1
        '{"type": "track", "userId": "u1", "event": ',                 # line 2: cut short
        "",                                                            # line 3: blank, not a row
        {"type": "track", "event": "Viewed"},                          # line 4: no user
        {"batch": [track("u2", 2), {"type": "page"}],                  # line 5: a batch, 2nd message bad
         "context": {"library": {"name": "backfill"}}},
        {**track("u3", 3), "properties": {"blob": "x" * 40_000}},      # line 6: over 32 KB
        [1, 2, 3],                                                     # line 7: not an object
    ])
    result = run_import(engine, path)

    assert (result.rows, result.accepted, result.duplicates, result.rejected) == (7, 2, 0, 5)
    rejects = read_rejects(tmp_path / "events.jsonl.rejects.jsonl")
    assert [(r["row"], r.get("index"), r["field"]) for r in rejects] == [
        (2, None, None), (4, None, "userId"), (5, 1, "userId"), (6, None, None), (7, None, None)]
    assert "not valid JSON" in rejects[0]["reason"] and rejects[0]["raw"].startswith('{"type": "track"')
    assert rejects[1]["reason"] == "either userId or anonymousId is required"
    assert rejects[2]["raw"] == {"type": "page"}
    assert "limit is 32768 bytes" in rejects[3]["reason"]
    assert rejects[3]["raw"].startswith('{"type":"track","userId":"u3"') and len(rejects[3]["raw"]) < 33_000
    assert "must be a JSON object" in rejects[4]["reason"]

    quarantined = sorted(engine.log.quarantined(source_id="import"), key=lambda q: q.id)
    assert [q.reason.split(":")[0] for q in quarantined] == [
        "import events.jsonl line 2", "import events.jsonl line 4", "import events.jsonl line 5 message 1",
        "import events.jsonl line 6", "import events.jsonl line 7"]
    assert quarantined[1].field == "userId" and quarantined[1].message == {"type": "track", "event": "Viewed"}

    stored = engine.log.read(0, 10)
    assert (stored[0].user_id, stored[0].message_id) == ("u1", "m-1")
    assert stored[1].user_id == "u2" and stored[1].message_id.startswith("import-")
    assert stored[1].body["context"] == {"library": {"name": "backfill"}}  # batch context merged, as /v1/batch does
    assert all(e.received_at == to_micros(IMPORTED_AT) for e in stored)
    assert stored[0].body["receivedAt"] == "2026-10-01T08:00:00.000Z"
    assert ("import", "import") in engine.keys.list_sources()


def test_lines_no_decoder_can_store_are_rejected_alone(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps(track("u1", 1)).encode()
    path.write_bytes(b"\n".join([good, b'{"type": "track", "userId": "\xff", "event": "E"}',
                                  b'{"type": "track", "userId": "u", "event": "E", "properties": {"x": 1e999}}']))
    result = run_import(engine, path)
    assert (result.accepted, result.rejected) == (1, 2)
    assert [(r.row, r.reason.split(":")[0]) for r in result.first_rejects] == [
        (2, "not valid JSON"), (3, "not valid JSON")]


def test_reimporting_a_file_stores_nothing_twice(engine: Engine, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [track("u1", 1), track("u1", 2), track("u2", 3)])
    first = run_import(engine, path)
    again = run_import(engine, path, received_at=datetime(2026, 10, 2, tzinfo=UTC))
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.rows, again.accepted, again.duplicates) == (3, 0, 3)
    assert engine.log.count() == 3
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()
    # The derived id depends on the source: the same file imported for another source is new there.
    other = run_import(engine, path, source="crm")
    assert other.accepted == 3 and engine.log.count() == 6


def test_clean_run_removes_the_rejects_file_of_an_earlier_run(engine: Engine, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [track("u1", 1), "not json"])
    assert run_import(engine, path).rejected == 1
    assert (tmp_path / "events.jsonl.rejects.jsonl").exists()
    write_jsonl(path, [track("u1", 1)])
    result = run_import(engine, path)
    assert (result.rejected, result.duplicates, result.rejects_path) == (0, 1, None)
    assert not (tmp_path / "events.jsonl.rejects.jsonl").exists()


def test_chunks_keep_the_counts_and_progress_reaches_the_end(engine: Engine, tmp_path: Path) -> None:
    lines: list[Any] = [track(f"u{i}", 1 + i % 9) if i % 4 else "{oops" for i in range(23)]
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    seen: list[ImportProgress] = []
    result = run_import(engine, path, chunk_rows=5, rejects_path=tmp_path / "bad.jsonl", progress=seen.append)
    assert (result.rows, result.accepted, result.rejected) == (23, 17, 6)
    assert [r["row"] for r in read_rejects(tmp_path / "bad.jsonl")] == [1, 5, 9, 13, 17, 21]
    assert len(engine.log.quarantined(source_id="import")) == 6
    assert len(seen) >= 4 and seen[-1].done == seen[-1].total == path.stat().st_size and seen[-1].rows == 23


# -- CSV with a mapping --------------------------------------------------------------------------
def test_csv_with_a_pos_mapping_makes_order_completed_events_in_utc(engine: Engine, tmp_path: Path) -> None:
    csv_path, mapping = pos_files(tmp_path)
    result = run_import(engine, csv_path, mapping=mapping, source="pos")
    assert (result.rows, result.accepted, result.rejected) == (5, 3, 2)

    events = {e.body["properties"]["order_id"]: e for e in engine.log.read(0, 10)}
    assert set(events) == {"o-1", "o-4", "o-5"}
    first = events["o-1"]
    assert (first.type, first.name, first.user_id, first.source_id) == ("track", "Order Completed", "c-1", "pos")
    assert first.body["properties"] == {"order_id": "o-1", "revenue": 59.9, "currency": "EUR",
                                        "products": [{"sku": "SKU-1"}]}
    assert first.body["timestamp"] == "2026-09-01T12:30:00.000Z"      # Berlin summer time, UTC+2
    assert events["o-4"].body["timestamp"] == "2026-12-15T17:45:00.000Z"  # winter time, UTC+1
    assert events["o-5"].when == datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
    assert events["o-5"].body["properties"]["revenue"] == 100.0

    rejects = read_rejects(tmp_path / "orders.csv.rejects.jsonl")
    assert [(r["row"], r["line"], r["field"]) for r in rejects] == [(2, 3, "properties.revenue"), (3, 4, "userId")]
    assert rejects[0]["reason"] == "column 'amount': cannot read 'abc' as float"
    assert rejects[0]["raw"]["order_id"] == "o-2"
    reasons = sorted(q.reason for q in engine.log.quarantined(source_id="pos"))
    assert reasons[0].startswith("import orders.csv row 2 (line 3): column 'amount'")

    again = run_import(engine, csv_path, mapping=mapping, source="pos")
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 2)
    assert engine.log.count() == 3


def test_imported_orders_end_up_in_profiles(engine: Engine, tmp_path: Path) -> None:
    csv_path, mapping = pos_files(tmp_path)
    run_import(engine, csv_path, mapping=mapping)
    assert engine.processor.run_until_caught_up() == 3
    c1 = engine.profiles.find("user_id:c-1")
    assert (c1.orders.count, c1.orders.revenue) == (2, 72.4)
    assert c1.orders.first_at == to_micros(datetime(2026, 9, 1, 12, 30, tzinfo=UTC))
    assert engine.profiles.find("user_id:c-3").orders.revenue == 100.0


def test_identify_mapping_sets_traits(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("id,email,vip,signup\nc-1,ann@example.com,yes,2026-01-05\nc-2,bob@example.com,,2026-02-01\n")
    mapping = parse_mapping({"type": "identify", "fields": {
        "userId": "id", "traits.email": "email", "traits.vip": {"column": "vip", "type": "bool", "default": False},
        "traits.created_at": {"column": "signup", "type": "timestamp", "format": "%Y-%m-%d"},
        "timestamp": {"value": "2026-03-01T00:00:00Z"}}})
    assert run_import(engine, path, mapping=mapping).accepted == 2
    engine.processor.run_until_caught_up()
    ann = engine.profiles.find("email:ann@example.com")
    assert ann.traits["vip"] is True and ann.traits["created_at"] == "2026-01-05T00:00:00.000Z"
    assert engine.profiles.find("user_id:c-2").traits["vip"] is False


def test_csv_rows_with_the_wrong_number_of_cells_are_rejected(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text('customer_id,date,amount,sku,order_id\nc-1,01.09.2026 14:30,1,"S,1",o-1\nc-2,x\n')
    result = run_import(engine, path, mapping=parse_mapping(yaml.safe_load(POS_YAML)))
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.first_rejects[0].reason == "the row has 2 cells, the header 5"
    assert engine.log.read(0, 1)[0].body["properties"]["products"] == [{"sku": "S,1"}]


def test_a_csv_needs_a_mapping_naming_columns_it_has(engine: Engine, tmp_path: Path) -> None:
    csv_path, _ = pos_files(tmp_path)
    with pytest.raises(RequestError) as no_mapping:
        run_import(engine, csv_path)
    assert no_mapping.value.field == "mapping"
    other = parse_mapping({"type": "track", "event": "E", "fields": {"userId": "customer", "properties.x": "sku"}})
    with pytest.raises(ConfigError) as missing:
        run_import(engine, csv_path, mapping=other)
    assert missing.value.field == "fields.userId" and "'customer' is not in orders.csv" in missing.value.message
    assert engine.log.count() == 0


# -- Parquet -----------------------------------------------------------------------------------
def test_parquet_of_segment_columns_with_structs_and_maps(engine: Engine, tmp_path: Path) -> None:
    table = pa.table({
        "type": ["track", "identify", "track"],
        "userId": ["u1", "u2", None],
        "event": ["Order Completed", None, "Viewed"],
        "timestamp": pa.array([datetime(2026, 9, 1, 10, tzinfo=UTC)] * 3, type=pa.timestamp("ms", tz="UTC")),
        "properties": pa.array([{"revenue": 9.5, "order_id": "o1"}, None, {"revenue": None, "order_id": "o3"}]),
        "traits": [None, '{"email": "b@example.com"}', None],
        "context": pa.array([[("ip", "1.2.3.4")], None, None], type=pa.map_(pa.string(), pa.string())),
    })
    pq.write_table(table, tmp_path / "events.parquet")
    result = run_import(engine, tmp_path / "events.parquet")
    assert (result.rows, result.accepted, result.rejected) == (3, 2, 1)
    assert result.first_rejects[0].row == 3 and result.first_rejects[0].field == "userId"
    order, identify = engine.log.read(0, 10)
    assert order.body["properties"] == {"revenue": 9.5, "order_id": "o1"}
    assert order.body["context"] == {"ip": "1.2.3.4"}
    assert order.body["timestamp"] == "2026-09-01T10:00:00.000Z"
    assert identify.body["traits"] == {"email": "b@example.com"}
    assert run_import(engine, tmp_path / "events.parquet").duplicates == 2


def test_parquet_with_a_mapping_uses_typed_columns(engine: Engine, tmp_path: Path) -> None:
    table = pa.table({
        "customer_id": pa.array([1001, 1002], type=pa.int64()),
        "sold_at": pa.array([datetime(2026, 9, 1, 14, 30), datetime(2026, 9, 2, 9, 0)]),  # naive, local time
        "amount": pa.array([59.9, None]),
        "sku": ["SKU-1", "SKU-2"],
    })
    pq.write_table(table, tmp_path / "pos.parquet")
    mapping = parse_mapping({"type": "track", "event": "Order Completed", "fields": {
        "userId": {"column": "customer_id", "type": "str"},
        "timestamp": {"column": "sold_at", "timezone": "Europe/Berlin"},
        "properties.revenue": {"column": "amount", "required": True},
        "properties.products[0].sku": "sku"}})
    result = run_import(engine, tmp_path / "pos.parquet", mapping=mapping, chunk_rows=1)
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.first_rejects[0].field == "properties.revenue"
    (event,) = engine.log.read(0, 10)
    assert (event.user_id, event.body["timestamp"]) == ("1001", "2026-09-01T12:30:00.000Z")
    assert event.body["properties"] == {"revenue": 59.9, "products": [{"sku": "SKU-1"}]}


def test_an_export_imports_back_into_an_empty_store(engine: Engine, tmp_path: Path, config: Any) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [track("u1", 1), track("u2", 2, anonymousId="a2")])
    run_import(engine, path, source="web")
    export_parquet(engine.log, tmp_path / "export")
    (part,) = (tmp_path / "export").glob("date=2026-09-01/*.parquet")
    with contextlib.ExitStack() as stack:
        fresh = stack.enter_context(postgres_schema()) if config.store else None  # an empty store either way
        other = stack.enter_context(Engine.open(config.with_overrides(data_dir=tmp_path / "other", store=fresh)))
        result = run_import(other, part, source="web")
        assert result.accepted == 1
        assert [e.body for e in other.log.read(0, 10)] == [e.body for e in engine.log.read(0, 1)]


# -- the command -------------------------------------------------------------------------------
def test_import_command_while_another_engine_has_the_store_open(engine: Engine, tmp_path: Path) -> None:
    csv_path, _ = pos_files(tmp_path)
    (tmp_path / "pos.yaml").write_text(POS_YAML)
    args = ["import", str(csv_path), "--mapping", str(tmp_path / "pos.yaml"), "--source", "pos",
            "--store", engine.config.store_url]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 1, run.output  # some rows were rejected
    assert "5 rows read, 3 accepted, 0 duplicates, 2 rejected" in run.output
    assert "row 2 (line 3): properties.revenue: column 'amount'" in run.output
    # The engine that was open all along (as a running server's would be) sees and processes them.
    assert engine.log.count() == 3
    engine.processor.run_until_caught_up()
    assert engine.profiles.find("user_id:c-1").orders.count == 2


def test_jsonl_of_flat_objects_with_a_mapping(engine: Engine, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "orders.jsonl", [
        {"customer_id": "c-1", "date": "01.09.2026 14:30", "amount": "10", "sku": "A", "order_id": "o-1"},
        {"batch": []},  # with a mapping every line is a row: this one has no customer
    ])
    result = run_import(engine, path, mapping=parse_mapping(yaml.safe_load(POS_YAML)))
    assert (result.rows, result.accepted, result.rejected) == (2, 1, 1)
    assert result.first_rejects[0].where == "line 2" and result.first_rejects[0].field == "userId"
    assert engine.log.read(0, 1)[0].body["properties"]["revenue"] == 10.0
