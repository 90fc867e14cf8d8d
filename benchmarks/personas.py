"""Personas and RFM over a store: how long feature extraction, the fit and the report take.

    python benchmarks/personas.py --customers 20000
    python benchmarks/personas.py --customers 20000 --store postgres

Fills a fresh store's log with the seeded synthetic workload (straight through the library),
processes it into profiles, then times, in this process: the RFM refresh (profiles read,
scored, traits written); feature extraction from the log; the fit with every method and
k = 2..8 (and k-means alone, for comparison); descriptions, traits and the run record; the
HTML report; and a second run on the last half of the window, which adds the comparison with
the first. Peak memory is the process's maximum resident set size, after filling and
processing the store, and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import POSTGRES_URL, drop_schema
from benchmarks.processing import fill
from persona.config import load_config
from persona.engine import Engine
from persona.jobs.rfm import refresh_rfm
from persona.log.events import to_micros
from persona.personas.features import extract_features
from persona.personas.fit import fit_personas
from persona.personas.runs import PersonaOptions, run_personas
from persona.synth.workload import DEFAULT_START


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - started, 2)


def run(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-personas-"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES_URL}?schema={schema}" if args.store == "postgres" else None
    config = load_config(env={}, data_dir=data_dir, store=store)
    try:
        with Engine.open(config) as engine:
            print(f"filling the log with {args.customers} customers...", flush=True)
            events = fill(engine, args.customers, args.seed)
            _, processing = timed(engine.processor.run_until_caught_up)
            rss_processed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"{events} events processed in {processing} s; RFM...", flush=True)
            rfm, rfm_s = timed(lambda: refresh_rfm(engine.state, engine.model_traits))
            print("features...", flush=True)
            features, features_s = timed(lambda: extract_features(engine.log, engine.state))
            print(f"{len(features.customers)} customers; fitting...", flush=True)
            fit, fit_s = timed(lambda: fit_personas(features))
            _, kmeans_s = timed(lambda: fit_personas(features, method="kmeans"))
            print("a whole run with report, then a refit on the last half...", flush=True)
            report = data_dir / "personas" / "report.html"
            first, first_s = timed(lambda: run_personas(engine.log, engine.state, engine.model_traits,
                                                        engine.persona_runs, PersonaOptions(report=report)))
            half = to_micros(DEFAULT_START + timedelta(days=30))
            later, later_s = timed(lambda: run_personas(engine.log, engine.state, engine.model_traits,
                                                        engine.persona_runs, PersonaOptions(since=half)))
            if args.report:
                shutil.copy(report, args.report)
                shutil.copy(report.with_suffix(".json"), Path(args.report).with_suffix(".json"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if store:
            drop_schema(schema)
    stability = later.stability
    return {
        "store": args.store, "customers_simulated": args.customers, "events": events,
        "processing_s": processing,
        "rfm": {"customers": len(rfm.scores), "seconds": rfm_s},
        "features": {"customers": len(features.customers), "left_out": features.left_out,
                     "columns": len(features.columns), "seconds": features_s,
                     "events_per_s": round(features.events / features_s) if features_s else None},
        "fit_auto": {"seconds": fit_s, "candidates": len(fit.candidates), "chosen": fit.chosen.to_json()},
        "fit_kmeans_only_s": kmeans_s,
        "run_with_report": {"seconds": first_s, "steps": {k: round(v, 2) for k, v in first.timings.items()},
                            "personas": [f"{p.name} ({p.size})" for p in first.personas]},
        "refit_last_half": {"seconds": later_s, "customers": len(later.features.customers),
                            "ari": None if stability is None or stability.ari is None else round(stability.ari, 3),
                            "psi": None if stability is None else round(stability.psi, 4)},
        "peak_rss_mb": {"filling_and_processing": round(rss_processed / 1024),
                        "at_the_end": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--report", help="keep the first run's HTML report (and JSON summary) here")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
