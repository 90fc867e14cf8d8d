"""The journey stage: runs journeys on the log, behind the folds (lease `journeys`).

Like the audience stage it follows the log up to `folded_through`, one batch at a time, and
commits what it did with its checkpoint compare-and-set, so each event and each timer is acted
on exactly once, whatever the crashes. For each event, in log order, with the profile it was
folded into (its root now):

1. the profile's open instances: the journey's `goal` ends one as converted; a `wait_for` it
   waits on goes to its `then` when the event matches (name, property filters, the `match`
   properties equal to the entry event's) and its timestamp lies inside the wait;
2. every journey whose entry the event matches starts an instance, if the re-entry policy lets it;
3. an instance runs until it waits or ends: `send` steps are performed (`Actions`), branches read
   the profile's traits (model traits too), segments and computed traits, splits hash the
   instance into an arm.

**Time is event time.** A wait starts at the timestamp of the event that led to it, and a timer
fires when the stage's watermark passes its deadline: the latest event time it has read (an
event's timestamp, or its receipt if that is earlier, so a device clock set ahead cannot hurry
timers) less `lateness`; once the stage has read everything, the wall clock less `lateness`.
So an `Order Completed` with a timestamp inside the 15 minutes that arrives up to `lateness`
late still counts, and the same log gives the same outcome. Only events at most
`ENTRY_MAX_AGE` old when received start a journey: an import of last year's carts sends nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from persona.activation.journeys import (
    EXIT,
    Branch,
    EventMatch,
    Exit,
    Journey,
    Send,
    Split,
    Wait,
    WaitFor,
)
from persona.activation.known import known
from persona.activation.store import (
    JOURNEYS,
    Entries,
    Instance,
    JourneyChanges,
    JourneyDefinitions,
    JourneyStore,
)
from persona.jobs.store import ModelTraitStore
from persona.log.events import Event, now_micros
from persona.log.store import EventLog
from persona.profiles.processor import ProcessorStats
from persona.profiles.sql import SQLStateStore
from persona.segments.evaluate import MISSING, ProfileFacts, event_name, lookup, matches, passes_filters
from persona.segments.sql import AudienceStore

log = logging.getLogger(__name__)

PLAN_EVERY = 1.0         # seconds between looks at the definitions
TIMERS_PER_BATCH = 2000  # timers fired at most per batch
MICROS = 1_000_000
ENTRY_MAX_AGE = 86_400 * MICROS  # an older event (an import, a device offline for days) starts no journey


@dataclass(frozen=True)
class Step:
    """What a `send` step hands to the actions: everything a message is made from."""

    journey: Journey
    node: int
    send: Send
    instance: Instance
    event: Event | None   # the event that moved the instance here (None: a timer)
    at: int               # µs, event time

    @property
    def idempotency_key(self) -> str:
        """The same for a step redone after a crash: receivers and the outbox drop the repeat."""
        i = self.instance
        return f"journey:{i.journey_id}:{i.profile_id}:{i.number}:{self.node}"


class Actions(Protocol):
    def perform(self, step: Step, changes: JourneyChanges) -> None: ...


class JourneyStage:
    name = JOURNEYS

    def __init__(self, log_: EventLog, state: SQLStateStore, journeys: JourneyStore, definitions: JourneyDefinitions,
                 actions: Actions, *, audiences: AudienceStore | None = None,
                 model_traits: ModelTraitStore | None = None, batch_size: int = 2000, lateness: float = 2.0,
                 clock: Callable[[], int] = now_micros) -> None:
        self.log = log_
        self.state = state
        self.store = journeys
        self.definitions = definitions
        self.actions = actions
        self.audiences = audiences
        self.model_traits = model_traits
        self.batch_size = batch_size
        self.lateness = int(lateness * MICROS)
        self.clock = clock
        self.stats = ProcessorStats()
        self._start()

    def _start(self) -> None:
        self.position = self.state.checkpoint(self.name)
        self.watermark = 0  # µs: timers due up to here fire (see the module docstring)
        self.journeys: dict[str, Journey] = {}
        self._plan_read_at = float("-inf")

    # -- the Follower interface ------------------------------------------------------------------
    def flush(self) -> None: ...

    def abandon(self) -> None:
        self._start()

    def lag(self) -> int:
        return max(0, self.state.folded_through() - self.position)

    def process_batch(self) -> int:
        """Follow the log one batch and fire the timers due; commits before returning. 0: nothing to do."""
        try:
            self._refresh()
            if not self.journeys:
                through = self.state.folded_through()
                if through > self.position:  # nothing to run: skip the events
                    self._commit(JourneyChanges(), through)
                return 0
            return self._step()
        except BaseException:
            self.abandon()
            raise

    def _refresh(self) -> None:
        if time.monotonic() - self._plan_read_at < PLAN_EVERY:
            return
        self._plan_read_at = time.monotonic()
        self.journeys = {j.id: j for j in self.definitions.parsed()}

    # -- one batch -------------------------------------------------------------------------------
    def _step(self) -> int:
        through = self.state.folded_through()
        events = self.log.read(self.position, self.batch_size) if through > self.position else []
        batch = [e for e in events if e.seq <= through]
        reached = batch[-1].seq if batch else self.position
        if batch and len(events) < self.batch_size and events[-1].seq <= through:
            reached = through
        run = _Run(self, JourneyChanges())
        if batch:
            assigned = self.state.assigned(self.position, reached)
            merged = {m.merged for m in self.state.merges_between(self.position, reached)}
            roots = self.state.roots(set(assigned.values()) | merged)
            run.follow_merges(merged, roots)
            run.load_open({roots.get(pid, pid) for pid in assigned.values()})
            run.load_timers(max(self.watermark, max(_event_time(e) for e in batch) - self.lateness))
            for event in batch:
                self.watermark = max(self.watermark, _event_time(event) - self.lateness)
                run.fire_timers(self.watermark)
                pid = assigned.get(event.seq)
                if pid is not None:
                    run.on_event(event, roots.get(pid, pid))
        if reached >= self.log.last_seq():  # read everything: the wall clock is the watermark
            self.watermark = max(self.watermark, self.clock() - self.lateness)
            run.load_timers(self.watermark)
        run.fire_timers(self.watermark)
        self.stats.events += len(batch)
        done = len(batch) + run.fired
        if done or reached != self.position:
            self._commit(run.changes, reached)
        return done

    def _commit(self, changes: JourneyChanges, through: int) -> None:
        changes.checkpoint = (self.position, through)
        if changes.events:  # before the state that led to them: a redo after a crash appends nothing twice
            self.log.append(changes.events)
        self.store.commit(changes)
        self.position = through


class _Run:
    """One batch's work: the instances it touched, the timers it holds, what it changed."""

    def __init__(self, stage: JourneyStage, changes: JourneyChanges) -> None:
        self.stage = stage
        self.changes = changes
        self.open: dict[str, list[Instance]] = {}           # by profile: instances not done
        self.timers: list[tuple[int, tuple[str, str, int]]] = []
        self.by_key: dict[tuple[str, str, int], Instance] = {}
        self.entries: dict[tuple[str, str], Entries | None] = {}
        self.facts: dict[str, ProfileFacts] = {}
        self.fired = 0

    # -- loading ---------------------------------------------------------------------------------
    def load_open(self, profile_ids: set[str]) -> None:
        for instance in self.stage.store.open_instances(profile_ids):
            self._hold(instance)

    def load_timers(self, until: int) -> None:
        for instance in self.stage.store.due(until, TIMERS_PER_BATCH):
            self._hold(instance)

    def follow_merges(self, merged: set[str], roots: dict[str, str]) -> None:
        """Profiles merged into others in this batch: their instances, open or done, move to the
        profile they are part of now, numbered after its own, so a wait for the order goes on
        under the identified customer and re-entry counts the entries of both."""
        if not merged:
            return
        for instance in sorted(self.stage.store.of_profiles(merged), key=lambda i: (i.entered_at, i.number)):
            root = roots.get(instance.profile_id, instance.profile_id)
            if root == instance.profile_id:
                continue
            before = self._entries(instance.journey_id, root)
            moved = replace(instance, profile_id=root, number=(before.number if before else 0) + 1)
            self.entries[(instance.journey_id, root)] = Entries(
                moved.number, max(instance.entered_at, before.entered_at if before else instance.entered_at))
            self.changes.removed.add(instance.key)
            self.changes.instances[moved.key] = moved
            if moved.status != "done":
                self._hold(moved)

    def _hold(self, instance: Instance) -> None:
        """Work on this copy of a stored instance from now on (unless one is held already)."""
        if instance.key in self.by_key or instance.key in self.changes.removed:
            return
        self.by_key[instance.key] = instance
        self.open.setdefault(instance.profile_id, []).append(instance)
        if instance.wait_until is not None:
            heapq.heappush(self.timers, (instance.wait_until, instance.key))

    # -- timers ----------------------------------------------------------------------------------
    def fire_timers(self, until: int) -> None:
        while self.timers and self.timers[0][0] <= until and self.fired < TIMERS_PER_BATCH:
            due, key = heapq.heappop(self.timers)
            instance = self.by_key[key]
            if instance.wait_until != due or instance.status != "waiting":
                continue  # moved on since the timer was set
            journey = self._journey_of(instance)
            if journey is None:
                continue
            node = journey.nodes[instance.node]
            instance.wait_until = None
            self.fired += 1
            self._go(journey, instance, node.next if isinstance(node, Wait | WaitFor) else EXIT, None, due)

    # -- events ----------------------------------------------------------------------------------
    def on_event(self, event: Event, root: str) -> None:
        properties = event.body.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        name = event_name(event)
        for instance in list(self.open.get(root, [])):
            journey = self._journey_of(instance)
            if journey is None or instance.status == "done":
                continue
            if journey.goal is not None and event.timestamp >= instance.entered_at \
                    and _matches(journey.goal, name, properties, instance.entry):
                self._finish(journey, instance, "converted", event.timestamp)
                continue
            node = journey.nodes[instance.node] if instance.status == "waiting" else None
            if isinstance(node, WaitFor) and instance.waiting_since is not None \
                    and instance.waiting_since <= event.timestamp <= instance.waiting_since + node.within * MICROS \
                    and _matches(node.on, name, properties, instance.entry):
                instance.wait_until = None
                self._go(journey, instance, node.matched, event, event.timestamp)
        for journey in self.stage.journeys.values():
            if event.received_at - event.timestamp > ENTRY_MAX_AGE:
                break
            if _enters(journey.entry, event, name, properties) and self._may_enter(journey, root, event.timestamp):
                self._enter(journey, root, event, properties)

    def _may_enter(self, journey: Journey, root: str, at: int) -> bool:
        if journey.reentry != "always" and any(i.journey_id == journey.id and i.status != "done"
                                               for i in self.open.get(root, [])):
            return False
        before = self._entries(journey.id, root)
        if before is None or journey.reentry == "always":
            return True
        if journey.reentry == "once":
            return False
        return at >= before.entered_at + int(journey.reentry) * MICROS

    def _entries(self, journey_id: str, root: str) -> Entries | None:
        key = (journey_id, root)
        if key not in self.entries:
            self.entries[key] = self.stage.store.entries(journey_id, root)
        return self.entries[key]

    def _enter(self, journey: Journey, root: str, event: Event, properties: dict[str, Any]) -> None:
        before = self._entries(journey.id, root)
        instance = Instance(journey.id, root, (before.number if before else 0) + 1, journey.fingerprint,
                            journey.start, "active", event.timestamp, properties, updated_at=event.timestamp)
        self.entries[(journey.id, root)] = Entries(instance.number, max(event.timestamp, before.entered_at
                                                                        if before else event.timestamp))
        self.by_key[instance.key] = instance
        self.open.setdefault(root, []).append(instance)
        self.changes.count(journey.id, "entered")
        self._go(journey, instance, journey.start, event, event.timestamp)

    # -- running ---------------------------------------------------------------------------------
    def _go(self, journey: Journey, instance: Instance, node: int, event: Event | None, at: int) -> None:
        """Run the instance from `node` until it waits or ends."""
        while True:
            if node == EXIT:
                return self._finish(journey, instance, "completed", at)
            instance.node = node
            self.changes.count(journey.id, f"node:{node}")
            step = journey.nodes[node]
            if isinstance(step, Wait | WaitFor):
                seconds = step.seconds if isinstance(step, Wait) else step.within
                instance.status, instance.waiting_since = "waiting", at
                instance.wait_until = at + seconds * MICROS
                heapq.heappush(self.timers, (instance.wait_until, instance.key))
                return self._save(instance, at)
            if isinstance(step, Exit):
                return self._finish(journey, instance, "exited", at)
            if isinstance(step, Branch):
                facts = self._facts(instance.profile_id)
                node = next((target for condition, target in step.cases if matches(condition, facts, at)),
                            step.otherwise)
            elif isinstance(step, Split):
                bucket = _bucket(instance)
                arm = next(((name, target) for name, upto, target in step.arms if bucket < upto), None)
                if arm is None:
                    instance.arm = "holdout"
                    self.changes.count(journey.id, "arm:holdout")
                    return self._finish(journey, instance, "holdout", at)
                instance.arm = arm[0]
                self.changes.count(journey.id, f"arm:{arm[0]}")
                node = arm[1]
            else:
                assert isinstance(step, Send)
                self.stage.actions.perform(Step(journey, node, step, instance, event, at), self.changes)
                node = step.next

    def _finish(self, journey: Journey, instance: Instance, outcome: str, at: int) -> None:
        instance.status, instance.outcome = "done", outcome
        instance.wait_until = instance.waiting_since = None
        self.changes.count(journey.id, outcome)
        self._save(instance, at)

    def _save(self, instance: Instance, at: int) -> None:
        instance.updated_at = at
        self.changes.instances[instance.key] = instance

    def _journey_of(self, instance: Instance) -> Journey | None:
        """The definition the instance runs; an instance whose journey was changed or deleted ends."""
        journey = self.stage.journeys.get(instance.journey_id)
        if journey is not None and journey.fingerprint == instance.version:
            return journey
        if instance.status != "done":
            instance.status, instance.outcome, instance.wait_until = "done", "ended", None
            self.changes.count(instance.journey_id, "ended")
            self._save(instance, instance.updated_at)
        return None

    def _facts(self, root: str) -> ProfileFacts:
        if root not in self.facts:
            self.facts[root] = known(root, self.stage.state, self.stage.audiences, self.stage.model_traits).facts
        return self.facts[root]

def _event_time(event: Event) -> int:
    return min(event.timestamp, event.received_at)


def _enters(entry: EventMatch, event: Event, name: str, properties: dict[str, Any]) -> bool:
    if entry.trait is not None:
        traits = event.body.get("traits")
        return event.type == "identify" and isinstance(traits, dict) and entry.trait in traits
    return name == entry.event and passes_filters(entry.where, properties)


def _matches(on: EventMatch, name: str, properties: dict[str, Any], entry: dict[str, Any]) -> bool:
    if name != on.event or not passes_filters(on.where, properties):
        return False
    return all((value := lookup(entry, p)) is not MISSING and lookup(properties, p) == value for p in on.match)


def _bucket(instance: Instance) -> int:
    """0..99, stable for the instance: the same arm whenever its split is run again."""
    key = f"{instance.journey_id}:{instance.profile_id}:{instance.number}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
