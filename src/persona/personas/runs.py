"""One persona run, start to end: features, fit, descriptions, comparison, traits, record, report.

What `persona personas fit` and the scheduled `personas` job both run. The personas are
written as model traits (`persona`, `persona_id`) of every customer clustered, replacing
the previous run's (customers left out lose theirs); the run, with its HTML report, is
recorded for the next one to compare with; the report (and a JSON summary beside it) is
also written to a file if asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persona.jobs.store import ModelTraitStore, now_us
from persona.log.events import iso
from persona.log.store import EventLog
from persona.personas.describe import Persona, describe
from persona.personas.features import CustomerFeatures, extract_features
from persona.personas.fit import PersonaFit, fit_personas
from persona.personas.report import render, write_report
from persona.personas.stability import Stability, compare
from persona.personas.store import PersonaRunStore, RunModel
from persona.profiles.sql import SQLStateStore

PERSONAS_JOB = "personas"


@dataclass
class PersonaOptions:
    k_min: int = 2
    k_max: int = 8
    method: str = "auto"
    seed: int = 0
    min_events: int = 2
    since: int | None = None  # µs: the window of events the features are built from
    until: int | None = None
    report: Path | None = None  # where to write the HTML report too; the JSON summary goes beside it


@dataclass
class PersonaRun:
    id: str
    started_at: int
    options: PersonaOptions
    features: CustomerFeatures
    fit: PersonaFit
    personas: list[Persona]
    stability: Stability | None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    report: Path | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON summary: what the report says, without the plots."""
        f, chosen = self.features, self.fit.chosen
        return {
            "run": self.id, "started_at": iso(self.started_at),
            "window": {"since": iso(f.since) if f.since is not None else None,
                       "until": iso(f.until) if f.until is not None else None, "as_of": iso(f.as_of)},
            "customers": len(f.customers), "left_out": f.left_out, "min_events": self.options.min_events,
            "events": f.events, "features": [c.name for c in f.columns],
            "chosen": {"method": chosen.method, "k": self.fit.k, "silhouette": _round(chosen.silhouette),
                       "davies_bouldin": _round(chosen.davies_bouldin), "note": chosen.note},
            "rule": "smallest sum of silhouette rank and Davies-Bouldin rank; ties: higher silhouette, smaller k,"
                    " kmeans before gmm before dbscan",
            "candidates": [c.to_json() for c in self.fit.candidates],
            "personas": [p.to_json() for p in self.personas],
            "stability": self.stability.to_json() if self.stability else None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "report": str(self.report) if self.report else None,
        }

    def line(self) -> str:
        """What the scheduler logs: `2,000 customers in 4 personas (kmeans, silhouette 0.41); ...`"""
        chosen = self.fit.chosen
        names = ", ".join(f"{p.name} {p.size:,}" for p in self.personas)
        drift = (f"; vs previous: ARI {self.stability.ari:.2f}, PSI {self.stability.psi:.3f}"
                 if self.stability and self.stability.ari is not None else "")
        return (f"{len(self.features.customers):,} customers in {self.fit.k} personas ({chosen.method}, "
                f"silhouette {chosen.silhouette:.2f}); {names}{drift}")


def run_personas(log: EventLog, state: SQLStateStore, traits: ModelTraitStore, runs: PersonaRunStore,
                 options: PersonaOptions | None = None, *, progress: Callable[[str, int], object] | None = None,
                 clock: Callable[[], int] = now_us) -> PersonaRun:
    """Fit personas now; `progress(step, done)` hears of events read ("features") and of each step."""
    options = options or PersonaOptions()
    started_at = clock()
    timings: dict[str, float] = {}
    mark = _Stopwatch(timings)
    features = extract_features(log, state, since=options.since, until=options.until,
                                now=started_at, min_events=options.min_events,
                                progress=(lambda n: progress("features", n)) if progress else None)
    mark("features")
    if progress is not None:
        progress("fit", 0)
    fit = fit_personas(features, k_min=options.k_min, k_max=options.k_max, method=options.method,
                       seed=options.seed)
    mark("fit")
    personas = describe(features, fit)
    previous = runs.latest()
    stability = compare(previous, features, fit) if previous is not None else None
    mark("describe")
    run = PersonaRun(_run_id(started_at), started_at, options, features, fit, personas, stability, timings,
                     report=options.report)
    html = render(run)
    mark("report")
    traits.replace(PERSONAS_JOB, {customer: {"persona": personas[label].name, "persona_id": int(label)}
                                  for customer, label in zip(features.customers, fit.labels, strict=True)})
    model = RunModel(features.customers, fit.labels.tolist(), fit.space, fit.centroids.tolist(),
                     [p.name for p in personas], [p.share for p in personas])
    runs.save(run.id, started_at, run.summary(), model, html)
    mark("store")
    if options.report is not None:
        write_report(run, options.report, html)
    return run


def _run_id(started_at: int) -> str:
    return datetime.fromtimestamp(started_at / 1e6, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class _Stopwatch:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.at = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = now - self.at
        self.at = now


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
