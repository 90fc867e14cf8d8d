"""Parquet export: Hive day partitions that read back as the log's events, and re-runs that replace."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from persona.cli import app
from persona.engine import Engine
from persona.log.events import Event, from_micros
from persona.log.export import SCHEMA, export_parquet
from tests.support.events import event

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def fill(engine: Engine) -> list[Event]:
    """Events over three days, out of timestamp order, one on the last microsecond of a day."""
    events = [
        event("track", user="u1", minutes=60 * 24 + 5, event="Order Completed",
              properties={"revenue": 12.5, "order_id": "o1"}, context={"ip": "1.2.3.4"}),
        event("identify", user="u1", anon="a1", minutes=10, traits={"email": "ann@example.com"}),
        event("page", anon="a2", minutes=60 * 24 - 1 / 60_000_000, name="Home"),
        event("track", anon="a2", minutes=60 * 24 * 2 + 1, event="Viewed"),
    ]
    engine.log.append(events)
    return engine.log.read(0, 100)


def read_back(out: Path) -> pa.Table:
    return ds.dataset(out, partitioning="hive").to_table().sort_by("seq")


def test_export_round_trips_the_events_in_day_partitions(engine: Engine, tmp_path: Path) -> None:
    stored = fill(engine)
    result = export_parquet(engine.log, tmp_path / "out", row_group_rows=1)
    assert (result.events, result.files, result.days) == (4, 3, 3)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "date=2026-09-01", "date=2026-09-01/part-00000.parquet",
        "date=2026-09-02", "date=2026-09-02/part-00000.parquet",
        "date=2026-09-03", "date=2026-09-03/part-00000.parquet"]
    assert pq.ParquetFile(tmp_path / "out/date=2026-09-01/part-00000.parquet").num_row_groups == 2

    table = read_back(tmp_path / "out")
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert [r["seq"] for r in rows] == [e.seq for e in stored]
    for row, e in zip(rows, stored, strict=True):
        assert (row["source_id"], row["message_id"], row["type"], row["name"], row["user_id"], row["anonymous_id"]) \
            == (e.source_id, e.message_id, e.type, e.name, e.user_id, e.anonymous_id)
        assert row["timestamp"] == from_micros(e.timestamp) and row["received_at"] == from_micros(e.received_at)
        assert json.loads(row["body"]) == e.body
        assert row["date"] == from_micros(e.timestamp).date().isoformat()
    order = rows[0]
    assert json.loads(order["properties"]) == {"revenue": 12.5, "order_id": "o1"}
    assert json.loads(order["context"]) == {"ip": "1.2.3.4"} and order["traits"] is None
    assert json.loads(rows[1]["traits"]) == {"email": "ann@example.com"}
    assert rows[2]["date"] == "2026-09-01"  # 23:59:59.999999 is still the first day


def test_re_export_replaces_days_instead_of_adding(engine: Engine, tmp_path: Path) -> None:
    stored = fill(engine)
    out = tmp_path / "out"
    export_parquet(engine.log, out, file_rows=1)  # two files for the first day
    assert len(list(out.glob("date=2026-09-01/part-*.parquet"))) == 2
    (out / "_SUCCESS").write_text("")  # not ours: kept

    engine.log.delete([e.seq for e in stored if e.timestamp >= stored[3].timestamp])  # erase the third day
    result = export_parquet(engine.log, out)
    assert (result.events, result.days, result.removed_days) == (3, 2, 1)
    assert read_back(out).num_rows == 3
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "date=2026-09-01", "date=2026-09-02"]
    assert len(list(out.glob("date=2026-09-01/*"))) == 1
    assert not list(out.rglob(".part-*"))


def test_since_and_until_export_and_replace_only_their_days(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    out = tmp_path / "out"
    export_parquet(engine.log, out)
    engine.log.append([event("track", user="u9", minutes=60 * 24 + 30, event="Late")])  # a new event on day 2
    result = export_parquet(engine.log, out, since=date(2026, 9, 2), until=date(2026, 9, 2))
    assert (result.events, result.days) == (2, 1)
    table = read_back(out)
    assert table.num_rows == 5
    assert table.filter(ds.field("date") == "2026-09-02").column("name").to_pylist() == ["Order Completed", "Late"]
    one_day = export_parquet(engine.log, tmp_path / "day3", since=date(2026, 9, 3))
    assert one_day.events == 1 and read_back(tmp_path / "day3").column("date").to_pylist() == ["2026-09-03"]


def test_empty_log_exports_nothing(engine: Engine, tmp_path: Path) -> None:
    result = export_parquet(engine.log, tmp_path / "out")
    assert (result.events, result.files, result.days) == (0, 0, 0)
    assert list((tmp_path / "out").iterdir()) == []


def test_export_command(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    run = CliRunner().invoke(app, ["export", "--format", "parquet", "--out", str(tmp_path / "warehouse"),
                                   "--since", "2026-09-02", "--store", engine.config.store_url])
    assert run.exit_code == 0, run.output
    assert "exported 2 events in 2 files over 2 days" in run.output
    assert read_back(tmp_path / "warehouse").schema.names == [*SCHEMA.names, "date"]
    bad = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "x"), "--since", "1.9.2026",
                                   "--data-dir", str(engine.config.data_dir)])
    assert bad.exit_code == 2 and "not a date" in bad.output
