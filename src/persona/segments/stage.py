"""The audience stage: keeps computed traits and segment memberships live, behind the folds.

It follows the log up to the position through which every event is resolved and folded
(`folded_through`), one at a time like the identity stage (lease `audiences`). For each
event it finds the profile the event was folded into (the timeline) and that profile's
root now, adds the event to the root's window inputs (see `segments/live.py`) and notes
what changed; merged profiles' inputs join the survivor's. After each batch it evaluates
the profiles touched, only for the definitions that read what changed, and every
`check_every` seconds the profiles whose windows moved (`next_check` has come).

A membership that changes is announced as a `Segment Entered` / `Segment Exited` event
appended to the log from the system source `persona`, with a message id made of the
segment, the profile and the transition's number, so a batch redone after a crash appends
nothing twice. Reading those events back restores the transition counters, which is how a
replay of the log (`persona rebuild`) knows what was announced and announces only what
has changed since. The events resolve to the profile like any other, so they count on it
and triggers consume them.

A trait condition reads the profile's traits with its model traits (scores) beneath them, as
journeys and decisions do. When a scheduled job changes a model trait, the change is queued
in the job's own transaction (`jobs/store.py`); the stage re-evaluates the segments reading
traits for those profiles and deletes the queued rows in its commit, so a segment such as
`churn_probability > 0.7` follows each scoring.

When definitions change, every profile is re-evaluated (a sweep); if they read events no
earlier definition read, the stage first re-reads the log from the start to fill the new
inputs, evaluating nothing until it is back where it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from persona.identity.rules import IdentityRules
from persona.jobs.store import ModelTraitStore
from persona.log.events import Event, iso, now_micros
from persona.log.store import EventLog
from persona.profiles.history import raw_body
from persona.profiles.processor import ProcessorStats, trim_cache
from persona.profiles.sql import SQLStateStore
from persona.segments.evaluate import event_name
from persona.segments.live import EVERYTHING, TRAITS, AudienceState, Plan, Transition, absorb, add_entry
from persona.segments.sql import AudienceChanges, AudienceStore
from persona.segments.store import DefinitionStore

log = logging.getLogger(__name__)

AUDIENCES = "audiences"
SYSTEM_SOURCE = "persona"
SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"
PLAN_EVERY = 1.0  # seconds between looks at the definitions
_EVERYTHING = frozenset({EVERYTHING})
_TRAITS = frozenset({TRAITS})
_decode = msgspec.json.Decoder().decode


class AudienceStage:
    name = AUDIENCES

    def __init__(self, log_: EventLog, state: SQLStateStore, audiences: AudienceStore, definitions: DefinitionStore,
                 rules: IdentityRules, *, model_traits: ModelTraitStore | None = None, batch_size: int = 2000,
                 check_every: float = 60.0, clock: Callable[[], int] = now_micros,
                 max_cached: int = 100_000) -> None:
        self.log = log_
        self.state = state
        self.model_traits = model_traits
        self.audiences = audiences
        self.definitions = definitions
        self.rules = rules
        self.batch_size = batch_size
        self.check_every = check_every
        self.clock = clock
        self.max_cached = max_cached
        self.stats = ProcessorStats()
        self.cache: dict[str, AudienceState] = {}
        self._start()

    def _start(self) -> None:
        self.position = self._read_from = self.state.checkpoint(self.name)
        self.plan = Plan([], [])
        self._plan_read_at = float("-inf")
        self._planned: tuple[str, list[str]] | None = None  # to record once the sweep is through
        self._catch_up_to = 0       # evaluate nothing before the log is read this far
        self._sweep: str | None = None  # re-evaluating every profile: the last id done
        self._next_time_check = 0.0
        self.cache.clear()

    # -- the Follower interface the worker drives (every batch commits before it returns) --------
    def flush(self) -> None: ...

    def abandon(self) -> None:
        self._start()

    def lag(self) -> int:
        return max(0, self.state.folded_through() - self.position)

    def process_batch(self) -> int:
        """Follow the log one batch, evaluate what is due; commits before returning. 0: nothing to do."""
        try:
            self._refresh_plan()
            changes = AudienceChanges()
            now = self.clock()
            done, through = self._follow_log(changes, now)
            if self._evaluating:
                done += self._sweep_or_check(changes, now)
                done += self._follow_scores(changes, now)
            if done or through != self.position:
                self._commit(changes, through)
            return done
        except BaseException:
            self.abandon()
            raise

    @property
    def _evaluating(self) -> bool:
        return self._read_from >= self._catch_up_to

    # -- definitions -----------------------------------------------------------------------------
    def _refresh_plan(self) -> None:
        if time.monotonic() - self._plan_read_at < PLAN_EVERY:
            return
        self._plan_read_at = time.monotonic()
        plan = Plan(*self.definitions.parsed())
        if plan.fingerprint == self.plan.fingerprint and self._plan_read_at != float("-inf"):
            return
        self.plan = plan
        stored = self.audiences.plan()
        if stored is not None and stored[0] == plan.fingerprint:
            return  # the state was built for these definitions (a restart)
        if plan.empty and stored is None:
            return
        new_inputs = set(plan.inputs) - (stored[1] if stored is not None else set())
        if new_inputs:  # fill them from the whole log before evaluating anything
            self._catch_up_to = self.state.folded_through()
            self._read_from = 0
        self._sweep = ""
        self._planned = (plan.fingerprint, sorted(plan.inputs))
        log.info("audiences: %s segments, %s computed traits; %sre-evaluating every profile",
                 len(plan.segments), len(plan.computed), "re-reading the log for new inputs, then " * bool(new_inputs))

    # -- following the log -----------------------------------------------------------------------
    def _follow_log(self, changes: AudienceChanges, now: int) -> tuple[int, int]:
        """Add the next batch of folded events to their profiles; (events, position reached)."""
        through = self.state.folded_through()
        if through <= self._read_from:
            return 0, self._read_from
        if self.plan.empty and self._sweep is None:
            self._read_from = through  # nothing reads events: skip them
            return 0, through
        events = self.log.read(self._read_from, self.batch_size, raw_body)
        batch = [e for e in events if e.seq <= through]
        reached = through if len(events) < self.batch_size or events[-1].seq >= through else batch[-1].seq
        assigned = self.state.assigned(self._read_from, reached)
        merges = self.state.merges_between(self._read_from, reached)
        bodies = {e.seq: _decode(e.body["raw"]) for e in batch if self._reads_body(e)}
        announced = {e.seq: bodies[e.seq]["properties"] for e in batch
                     if e.source_id == SYSTEM_SOURCE and _is_announcement(bodies[e.seq])}
        ids = ({*assigned.values(), *(m.merged for m in merges)}
               | {p["profile_id"] for p in announced.values() if isinstance(p.get("profile_id"), str)})
        roots = self.state.roots(ids)
        dirty: dict[str, set[str]] = {}
        self._load({roots.get(pid, pid) for pid in assigned.values()} | {m.merged for m in merges}
                   | {roots[pid] for pid in ids if pid in roots}, dirty)
        for merge in merges:
            root = roots.get(merge.merged)
            merged = self.cache.pop(merge.merged, None)
            if root is None or root == merge.merged or merged is None:
                continue
            absorb(self.cache[root], merged)
            changes.remove(merge.merged)
            dirty.pop(merge.merged, None)
            dirty.setdefault(root, set()).add(EVERYTHING)
        for event in batch:
            pid = assigned.get(event.seq)
            if pid is None:
                continue  # not attributed to anyone
            root = roots.get(pid, pid)
            state = self.cache[root]
            reasons = dirty.setdefault(root, set())
            body = bodies.get(event.seq)
            if body is not None:
                properties = body.get("properties")
                properties = properties if isinstance(properties, dict) else {}
                for key, value in self.plan.feeds(event_name(event), properties):
                    if add_entry(state, key, (event.timestamp, event.seq, value)):
                        reasons.add(key)
                if event.seq in announced:
                    corrected = self._read_back(announced[event.seq], roots, changes)
                    if corrected is not None:  # what was announced is not what this stage had: judge it again
                        dirty.setdefault(corrected, set()).add(EVERYTHING)
            if event.type == "identify" or b'"traits"' in event.body["raw"]:
                reasons.add(TRAITS)
        self.stats.events += len(batch)
        touched = {root: frozenset(reasons) for root, reasons in dirty.items() if reasons}
        for root in touched:
            changes.states[root] = self.cache[root]
        self._read_from = reached
        if self._evaluating:
            self._evaluate(touched, changes, now)
        return len(batch), reached

    def _reads_body(self, event: Event) -> bool:
        return event.source_id == SYSTEM_SOURCE or event_name(event) in self.plan.by_event

    def _load(self, ids: set[str], dirty: dict[str, set[str]]) -> None:
        missing = ids - self.cache.keys()
        if not missing:
            return
        found = self.audiences.states(missing)
        for pid in missing:
            state = found.get(pid)
            if state is None:  # new here: everything applies to it for the first time
                state = AudienceState()
                dirty.setdefault(pid, set()).add(EVERYTHING)
            self.cache[pid] = state

    def _read_back(self, properties: dict[str, Any], roots: dict[str, str], changes: AudienceChanges) -> str | None:
        """An announcement read back from the log: the counter it carries is what was announced.

        Ahead of the state only when a stage announced and died before committing; the profile
        it returns must then be evaluated again, as its membership may not hold any more."""
        pid, segment_id = properties.get("profile_id"), properties.get("segment_id")
        number = properties.get("transition")
        if not (isinstance(pid, str) and isinstance(segment_id, str) and isinstance(number, int)):
            return None
        if roots.get(pid) != pid or pid not in self.cache:
            return None  # merged away since
        state = self.cache[pid]
        if state.transitions.get(segment_id, 0) >= number:
            return None
        was = state.member_of(segment_id)
        state.transitions[segment_id] = number
        if state.member_of(segment_id) and not was:
            state.since[segment_id] = properties.get("at") if isinstance(properties.get("at"), int) else 0
            if segment_id in self.plan.segments:
                changes.join(segment_id, pid, state.since[segment_id])
        elif was and not state.member_of(segment_id):
            state.since.pop(segment_id, None)
            if segment_id in self.plan.segments:
                changes.leave(segment_id, pid)
        changes.states[pid] = state
        return pid

    # -- evaluating ------------------------------------------------------------------------------
    def _sweep_or_check(self, changes: AudienceChanges, now: int) -> int:
        """One page of the sweep after a definitions change, or of the profiles due by time."""
        if self._sweep is not None:
            ids = self.audiences.profile_ids(self._sweep, self.batch_size)
            live = [pid for pid in ids if pid not in changes.removed]  # merged away in this batch: gone
            self._load(set(live), {})
            self._evaluate(dict.fromkeys(live, _EVERYTHING), changes, now)
            if len(ids) < self.batch_size:
                self._sweep = None
                changes.plan, self._planned = self._planned, None
                changes.dropped_segments = set(self.audiences.sizes()) - set(self.plan.segments)
                log.info("audiences: every profile evaluated for the current definitions")
            else:
                self._sweep = ids[-1]
            return len(ids) or 1
        if time.monotonic() < self._next_time_check:
            return 0
        ids = self.audiences.due(now, self.batch_size)
        if len(ids) < self.batch_size:  # all caught up: look again in check_every
            self._next_time_check = time.monotonic() + self.check_every
            changes.history_at = now
        live = [pid for pid in ids if pid not in changes.removed]
        self._load(set(live), {})
        self._evaluate(dict.fromkeys(live, frozenset(self.plan.inputs)), changes, now)
        return len(ids)

    def _follow_scores(self, changes: AudienceChanges, now: int) -> int:
        """Re-evaluate the profiles whose model traits a job changed, for the segments reading traits."""
        if self.model_traits is None:
            return 0
        queued = self.model_traits.changes(self.batch_size)
        read = self.plan.traits_read
        changes.score_changes = [row_id for row_id, _, name in queued if name in read]
        if len(changes.score_changes) < len(queued):
            changes.scores_read = read  # the commit drops every queued change of a trait nothing reads
        ids = {pid for _, pid, name in queued if name in read}
        if ids:
            roots = self.state.roots(ids)  # traits are kept under the id their job saw
            live = {roots[pid] for pid in ids if pid in roots} - changes.removed
            self.cache.update(self.audiences.states(live - self.cache.keys()))
            # A profile the stage has not reached yet is evaluated when its events are.
            self._evaluate({pid: _TRAITS for pid in live if pid in self.cache}, changes, now)
        return len(queued)

    def _evaluate(self, dirty: dict[str, frozenset[str]], changes: AudienceChanges, now: int) -> None:
        if not dirty:
            return
        plan = self.plan
        reading = [pid for pid, reasons in dirty.items() if plan.needs_traits(self.cache[pid], now, reasons)]
        traits = self._traits(reading) if reading else {}
        announce: list[tuple[str, Transition]] = []
        for pid, reasons in dirty.items():
            state = self.cache[pid]
            for transition in plan.evaluate(state, traits.get(pid, {}), now, reasons):
                segment_id = transition.segment.id
                state.transitions[segment_id] = transition.number
                if transition.entered:
                    state.since[segment_id] = now
                    changes.join(segment_id, pid, now)
                else:
                    state.since.pop(segment_id, None)
                    changes.leave(segment_id, pid)
                announce.append((pid, transition))
            for segment_id, number in list(state.transitions.items()):
                if number % 2 and segment_id not in plan.segments:  # no longer defined: left, unannounced
                    state.transitions[segment_id] = number + 1
                    state.since.pop(segment_id, None)
            changes.states[pid] = state
        if announce:
            self._announce(announce, now)

    def _traits(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """What trait conditions read: each profile's traits, over its model traits."""
        scores = self.model_traits.of_profiles(ids) if self.model_traits is not None else {}
        return {pid: {**scores.get(pid, {}), **p.traits} for pid, p in self.state.combined(ids).items()}

    def _announce(self, transitions: list[tuple[str, Transition]], now: int) -> None:
        """Append the transitions to the log (before the state that counts them commits)."""
        records = self.state.profiles({pid for pid, _ in transitions})
        events = []
        for pid, transition in transitions:
            name = SEGMENT_ENTERED if transition.entered else SEGMENT_EXITED
            message_id = f"segment:{transition.segment.id}:{pid}:{transition.number}"
            body: dict[str, Any] = {
                "type": "track", "event": name, "messageId": message_id, "timestamp": iso(now),
                "properties": {"segment_id": transition.segment.id, "segment_name": transition.segment.name,
                               "profile_id": pid, "transition": transition.number, "at": now},
                "context": {"library": {"name": "persona", "version": "audiences"}},
            }
            record = records.get(pid)
            if record is not None:
                address(body, record.identifiers, self.rules)
            events.append(Event(source_id=SYSTEM_SOURCE, message_id=message_id, type="track", name=name,
                                user_id=body.get("userId"), anonymous_id=body.get("anonymousId"),
                                timestamp=now, received_at=now, body=body))
        self.log.append(events)

    def _commit(self, changes: AudienceChanges, through: int) -> None:
        changes.checkpoint = (self.position, through)
        self.audiences.commit(changes).result()
        self.position = through
        trim_cache(self.cache, self.max_cached)


def address(body: dict[str, Any], identifiers: dict[str, list[str]], rules: IdentityRules) -> None:
    """Put the profile's strongest identifier where the identity rules read it, so it resolves back."""
    for rule in rules.identifiers:
        values = identifiers.get(rule.kind)
        if values and rule.paths:
            *parents, leaf = rule.paths[0].split(".")
            target = body
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = values[0]
            return


def _is_announcement(body: dict[str, Any]) -> bool:
    return body.get("event") in (SEGMENT_ENTERED, SEGMENT_EXITED) and isinstance(body.get("properties"), dict)
