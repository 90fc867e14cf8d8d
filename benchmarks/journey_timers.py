"""Journey timers: how late they fire with a million pending, and whether they slow ingest.

    python benchmarks/journey_timers.py --pending 1000000 --due 20000 --over 60

A fresh embedded store holds one journey (`wait 1d`, then `send: {event: Reminder}`) and
`--pending` waiting instances written straight into the state store (what the journey stage
would have left after that many entries): all but `--due` of them wait for days; `--due` have
deadlines spread evenly over the next `--over` seconds. The processor (identity, folds,
journey stage) then runs in a thread of this process, as `persona serve` runs it, while
`--events` events are appended to the log in batches of 500 (the ingest path).

A timer's delay is the wall-clock time when the stage performs the step after the wait, less
the timer's deadline (so it includes the stage's polling and batch work, not its commit). The
append rate with the million timers pending is compared with the same run before any timer
existed (the processor running alike).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from persona.activation.actions import LoggedActions
from persona.activation.journeys import parse_journey
from persona.activation.stage import JourneyStage, Step
from persona.activation.store import Instance, JourneyChanges
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event, now_micros
from persona.profiles.processor import Processor

JOURNEY = {"id": "reminder", "entry": {"event": "Product Added"},
           "steps": [{"wait": "1d"}, {"send": {"event": "Reminder"}}]}
DAY = 86_400 * 1_000_000


class Timed(LoggedActions):
    """Records, per step performed, how long after its deadline it ran."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.delays: list[float] = []

    def perform(self, step: Step, changes: JourneyChanges) -> None:
        self.delays.append((now_micros() - step.at) / 1e6)
        super().perform(step, changes)


def fill_timers(engine: Engine, pending: int, due: int, over: float) -> tuple[int, float]:
    """`pending` waiting instances; `due` of them with deadlines over the next `over` seconds."""
    journey = parse_journey(JOURNEY)
    engine.journeys.save(JOURNEY)
    wait_node = journey.start
    now = now_micros()
    start = now + 5_000_000  # the stage has started by then
    deadlines = np.concatenate([start + np.linspace(0, over * 1e6, due).astype(np.int64),
                                now + DAY + np.arange(pending - due, dtype=np.int64) * 1000])
    began = time.perf_counter()
    for first in range(0, pending, 50_000):
        changes = JourneyChanges()
        for i in range(first, min(pending, first + 50_000)):
            until = int(deadlines[i])
            instance = Instance("reminder", f"p{i}", 1, journey.fingerprint, wait_node, "waiting", now, {},
                                waiting_since=until - DAY, wait_until=until, updated_at=now)
            changes.instances[instance.key] = instance
        engine.journey_store.commit(changes)
    return start, time.perf_counter() - began


def append_events(engine: Engine, n: int, stop: threading.Event | None = None) -> float:
    """Append `n` page events in batches of 500; events per second."""
    defaults = BatchDefaults(received_at=datetime.now(UTC))
    began = time.perf_counter()
    for first in range(0, n, 500):
        batch = []
        for i in range(first, min(n, first + 500)):
            event = normalize({"type": "page", "anonymousId": f"a{i}", "messageId": f"m{i}-{began}"}, index=i,
                              source_id="bench", defaults=defaults)
            assert isinstance(event, Event)
            batch.append(event)
        engine.log.append(batch)
    return n / (time.perf_counter() - began)


def run_processor(processor: Processor, stop: threading.Event) -> None:
    while not stop.is_set():
        processor.run_until_caught_up()
        time.sleep(0.05)


def appending_while_processing(engine: Engine, stage: JourneyStage, n: int) -> tuple[float, threading.Event,
                                                                                     threading.Thread]:
    """Append `n` events with the processor running; the append rate, and how to stop the processor."""
    config = engine.config
    processor = Processor(engine.log, engine.state, config.identity, batch_size=config.batch_size,
                          commit_interval=config.commit_interval, partitions=config.partitions,
                          followers=lambda: [stage])
    stop = threading.Event()
    runner = threading.Thread(target=run_processor, args=(processor, stop))
    runner.start()
    return append_events(engine, n), stop, runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--over", type=float, default=60.0)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="persona-journey-timers-"))
    try:
        with Engine.open(load_config(env={}, data_dir=data_dir)) as engine:
            actions = Timed(engine.state, engine.config.identity)

            def stage() -> JourneyStage:
                return JourneyStage(engine.log, engine.state, engine.journey_store, engine.journeys, actions,
                                    lateness=engine.config.journey_lateness)

            baseline, stop, runner = appending_while_processing(engine, stage(), args.events)
            stop.set()
            runner.join()
            start, filled = fill_timers(engine, args.pending, args.due, args.over)
            print(f"{args.pending:,} waiting instances written in {filled:.1f} s; {args.due:,} due over "
                  f"{args.over:g} s; pending timers: {engine.journey_store.pending_timers():,}", flush=True)
            with_timers, stop, runner = appending_while_processing(engine, stage(), args.events)
            deadline = start / 1e6 + args.over + 30
            while len(actions.delays) < args.due and time.time() < deadline:
                time.sleep(0.5)
            stop.set()
            runner.join()
            delays = np.asarray(actions.delays)
            lateness = engine.config.journey_lateness
            print(f"\nfired {len(delays):,} of {args.due:,} due timers with {args.pending:,} pending "
                  f"(journey_lateness {lateness:g} s)\n")
            print("| timers fired | p50 s | p90 s | p99 s | max s |\n|---:|---:|---:|---:|---:|")
            if len(delays):
                p50, p90, p99 = np.percentile(delays, [50, 90, 99])
                print(f"| {len(delays):,} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {delays.max():.2f} |")
            print(f"\nappend rate, {args.events:,} events in batches of 500, the processor running: "
                  f"{baseline:,.0f} events/s before any timer, {with_timers:,.0f} events/s with "
                  f"{args.pending:,} pending")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
