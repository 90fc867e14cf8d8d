"""The batch evaluator over the store, and the check that the live audience state agrees with it.

`persona segments verify` recomputes every segment and computed trait for every profile
from the log (`from_store`) and compares with what the audience stage keeps. Profiles whose
time check is due (a window moved since their last evaluation and the next look has not
come round) are left out and counted, since the stage is allowed to be that late.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from persona.jobs.store import ModelTraitStore
from persona.log.store import EventLog
from persona.profiles.history import folded_events, raw_body
from persona.profiles.sql import SQLStateStore
from persona.segments.batch import BatchEvaluator, BatchResult
from persona.segments.evaluate import event_name
from persona.segments.sql import AudienceStore
from persona.segments.store import DefinitionStore


def from_store(log: EventLog, state: SQLStateStore, definitions: DefinitionStore, model_traits: ModelTraitStore,
               progress: Callable[[int], None] | None = None) -> BatchEvaluator:
    """A batch evaluator for the stored definitions, loaded with every folded event and profile
    (its traits over its model traits, as the live stage reads them)."""
    evaluator = BatchEvaluator(*definitions.parsed())

    def rows() -> Any:
        for batch in folded_events(log, state, decode=raw_body):  # bodies decoded only where an aggregate reads them
            for pid, event in batch:
                name = event_name(event)
                if name in evaluator.events:
                    properties = _properties(event.body["raw"]).properties
                    yield pid, event.timestamp, event.seq, name, properties if isinstance(properties, dict) else {}
            if progress is not None:
                progress(len(batch))

    traits = {p.id: p.traits for p in state.all_profiles()}
    scores = model_traits.of_profiles(traits)
    profiles = {pid: {**scores.get(pid, {}), **own} for pid, own in traits.items()}
    evaluator.load(evaluator.event_batches(rows()), evaluator.profile_table(profiles))
    return evaluator


class _Body(msgspec.Struct):
    properties: Any = None  # the one part of a body the batch evaluator reads


_properties = msgspec.json.Decoder(_Body).decode


@dataclass
class Verification:
    now: int
    profiles: int = 0
    left_out: int = 0           # due for a time check: the live state may lag by design
    load_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # segment -> (live, batch)
    segments: list[tuple[str, str, bool]] = field(default_factory=list)         # (segment, profile, live member)
    computed: list[tuple[str, str, Any, Any]] = field(default_factory=list)     # (trait, profile, live, batch)

    @property
    def agrees(self) -> bool:
        return not self.segments and not self.computed


def verify(log: EventLog, state: SQLStateStore, audiences: AudienceStore, definitions: DefinitionStore,
           model_traits: ModelTraitStore, now: int, progress: Callable[[int], None] | None = None) -> Verification:
    report = Verification(now=now)
    started = time.perf_counter()
    evaluator = from_store(log, state, definitions, model_traits, progress)
    report.load_seconds = time.perf_counter() - started
    result: BatchResult = evaluator.evaluate(now)
    report.evaluate_seconds = result.seconds
    batch = result.profiles()
    live = audiences.states(batch)
    due = {pid for pid, s in live.items() if s.next_check is not None and s.next_check <= now}
    report.profiles, report.left_out = len(batch), len(due)
    for segment_id in evaluator.plan.segments:
        members = _members(audiences, segment_id)
        expected = {pid for pid, (segments, _) in batch.items() if segment_id in segments}
        report.sizes[segment_id] = (len(members), len(expected))
        for pid in sorted((members ^ expected) - due):
            report.segments.append((segment_id, pid, pid in members))
    for pid, (_, values) in sorted(batch.items()):
        if pid in due:
            continue
        kept = live[pid].computed if pid in live else {}
        for trait_id in evaluator.plan.computed:
            if not _same(kept.get(trait_id), values.get(trait_id)):
                report.computed.append((trait_id, pid, kept.get(trait_id), values.get(trait_id)))
    return report


def _members(audiences: AudienceStore, segment_id: str) -> set[str]:
    out: set[str] = set()
    after = ""
    while page := audiences.members(segment_id, after, 10_000):
        out.update(pid for pid, _ in page)
        after = page[-1][0]
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool) | isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)
