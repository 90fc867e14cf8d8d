"""The ingest write path piece by piece, in-process, without HTTP:

    python benchmarks/write_path.py --customers 8000

1. validation and normalization of 100-event bodies (`decode_body` + `IngestService.prepare`);
2. `EventLog.append_async` with 8 requests in flight (group commit, savepoints, futures);
3. plain `sqlite3` `executemany` of the same rows in groups of 800, with the log's indexes,
   without the timestamp index, and without any index: the floor under (2).

Each line gives events/s and the CPU per event of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from persona.config import load_config
from persona.engine import Engine
from persona.ingest.service import IngestService, decode_body
from persona.log.events import Event
from persona.log.sql import MIGRATIONS
from persona.synth import Workload


def measure(label: str, n: int, work: Callable[[], object]) -> None:
    wall, cpu = time.perf_counter(), os.times()
    work()
    wall, after = time.perf_counter() - wall, os.times()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    print(f"{label:58s} {n / wall:9,.0f} events/s  {used / n * 1e6:5.1f} µs CPU/event", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=8000)
    args = parser.parse_args()
    encode = msgspec.json.Encoder().encode
    bodies = [encode({"batch": batch}) for batch in Workload(seed=1, customers=args.customers).batches(100)]
    service = IngestService(None, None)  # type: ignore[arg-type]  # prepare needs neither
    batches: list[list[Event]] = []

    def validate() -> None:
        for body in bodies:
            batches.append(service.prepare(decode_body(body, None, 600_000), "default", endpoint_type=None)[0])

    n = sum(body.count(b'"messageId"') for body in bodies)
    measure("validate + normalize (100-event bodies)", n, validate)

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.open(load_config(env={}, data_dir=Path(tmp) / "store"))

        async def append() -> None:
            pending = []
            for batch in batches:
                pending.append(engine.log.append_async(batch))
                if len(pending) == 8:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)

        measure("EventLog.append_async, 8 requests in flight", n, lambda: asyncio.run(append()))
        engine.close()

        rows = [(e.source_id, e.message_id, e.type, e.name, e.user_id, e.anonymous_id, e.timestamp, e.received_at,
                 e.encoded) for batch in batches for e in batch]
        table, *indexes = MIGRATIONS[0].statements[:3]
        for label, keep in (("sqlite3 executemany, both indexes", indexes),
                            ("sqlite3 executemany, no timestamp index", indexes[:1]),
                            ("sqlite3 executemany, no index", [])):
            conn = sqlite3.connect(Path(tmp) / f"raw-{len(keep)}.db", isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-65536", "wal_autocheckpoint=10000"):
                conn.execute(f"PRAGMA {pragma}")
            for statement in (table, *keep):
                conn.execute(statement)

            def insert(conn: sqlite3.Connection = conn) -> None:
                for i in range(0, len(rows), 800):
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany("INSERT OR IGNORE INTO events (source_id, message_id, type, name, user_id,"
                                     " anonymous_id, timestamp, received_at, body) VALUES (?,?,?,?,?,?,?,?,?)",
                                     rows[i:i + 800])
                    conn.execute("COMMIT")

            measure(label, len(rows), insert)
            conn.close()


if __name__ == "__main__":
    main()
