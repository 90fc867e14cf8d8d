"""The single writer: group commit, isolation of a failing caller, durability on resolve."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from persona.errors import StoreError
from persona.storage.sql import Migration
from persona.storage.sqlite import SQLiteDatabase as Database

MIGRATIONS = [Migration(1, "t", ["CREATE TABLE t (x INTEGER PRIMARY KEY)"])]


def test_a_failing_write_does_not_undo_the_others_in_its_group(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", MIGRATIONS)
    gate = threading.Event()
    blocker = db.writer.submit(lambda c: gate.wait())  # holds the writer so the next three form a group
    ok1 = db.writer.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    bad = db.writer.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"))  # duplicate key
    ok2 = db.writer.submit(lambda c: c.execute("INSERT INTO t VALUES (2)"))
    gate.set()
    blocker.result()
    ok1.result(), ok2.result()
    with pytest.raises(sqlite3.IntegrityError):
        bad.result()
    assert [r[0] for r in db.read().execute("SELECT x FROM t ORDER BY x")] == [1, 2]
    db.close()


def test_resolved_writes_are_visible_to_a_new_connection(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", MIGRATIONS)
    db.write(lambda c: c.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)]))
    other = sqlite3.connect(tmp_path / "a.db")
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 100
    other.close()
    db.close()


def test_migrations_run_once(tmp_path: Path) -> None:
    Database(tmp_path / "a.db", MIGRATIONS).close()
    db = Database(tmp_path / "a.db", MIGRATIONS)  # would fail if the CREATE TABLE ran again
    assert db.read().execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 1
    db.close()


def test_closed_writer_refuses_work(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", MIGRATIONS)
    db.close()
    with pytest.raises(StoreError):
        db.writer.submit(lambda c: None).result()
