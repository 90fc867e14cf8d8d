"""The seeded synthetic shop, filled into an engine, for recommendation tests."""

from __future__ import annotations

from datetime import UTC, datetime

from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, to_micros
from persona.synth import Workload
from persona.synth.catalog import catalog_items


def fill_shop(engine: Engine, seed: int = 7, customers: int = 300, days: int = 30) -> Workload:
    """The workload's catalog imported and its events appended and folded; returns the workload."""
    workload = Workload(seed=seed, customers=customers, days=days)
    engine.catalog.upsert(catalog_items(workload.catalog))
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    for batch in workload.batches(size=2000):
        engine.log.append([e for i, m in enumerate(batch)
                           if isinstance(e := normalize(m, index=i, source_id="test", defaults=defaults), Event)])
    engine.processor.run_until_caught_up()
    return workload


def end_of(workload: Workload) -> int:
    return to_micros(workload.end)
