"""The assembled system: stores opened from the config, services wired to them.

Library users and tests start here (`Engine.open(config)`); the HTTP app and the CLI
are thin layers over an Engine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from persona.access.keys import MIGRATIONS as KEY_MIGRATIONS
from persona.access.keys import KeyKind, SQLKeyStore
from persona.activation.actions import LoggedActions
from persona.activation.delivery import Deliverer
from persona.activation.email import Mailer, SmtpSettings
from persona.activation.guards import (
    SEND_LOG_MIGRATIONS,
    SUPPRESSION_MIGRATIONS,
    Guards,
    SendLog,
    SuppressionList,
)
from persona.activation.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from persona.activation.outbox import Outbox
from persona.activation.stage import JourneyStage
from persona.activation.store import DEFINITION_MIGRATIONS as JOURNEY_DEFINITION_MIGRATIONS
from persona.activation.store import JOURNEYS, JourneyDefinitions, JourneyStore
from persona.activation.store import STATE_MIGRATIONS as JOURNEY_STATE_MIGRATIONS
from persona.activation.webhooks import Destination, read_destinations_file
from persona.catalog.store import MIGRATIONS as CATALOG_MIGRATIONS
from persona.catalog.store import CatalogStore, SQLCatalogStore
from persona.config import Config
from persona.errors import ModelNotTrained, StoreError
from persona.ingest.service import IngestService
from persona.jobs.builtin import EngineJob, in_child, models_job, personas_job, recs_job, recs_wait, rfm_job
from persona.jobs.scheduler import Job, Scheduler
from persona.jobs.store import MIGRATIONS as JOB_MIGRATIONS
from persona.jobs.store import JobStore, ModelTraitStore
from persona.log.sql import MIGRATIONS as LOG_MIGRATIONS
from persona.log.sql import SQLEventLog
from persona.personas.store import MIGRATIONS as PERSONA_MIGRATIONS
from persona.personas.store import PersonaRunStore
from persona.predict.registry import MIGRATIONS as MODEL_REGISTRY_MIGRATIONS
from persona.predict.registry import ModelRegistry
from persona.profiles.processor import IDENTITY, Processor, fold_name
from persona.profiles.reader import ProfileReader
from persona.profiles.sql import MIGRATIONS as PROFILE_MIGRATIONS
from persona.profiles.sql import SQLStateStore
from persona.profiles.worker import Worker
from persona.recommend.placement_store import MIGRATIONS as PLACEMENT_MIGRATIONS
from persona.recommend.placement_store import PlacementStore
from persona.recommend.placements import Placement, read_placements_file
from persona.recommend.store import MIGRATIONS as RECOMMEND_MIGRATIONS
from persona.recommend.store import ModelStore, Recommender
from persona.segments.reader import AudienceReader
from persona.segments.sql import MIGRATIONS as AUDIENCE_MIGRATIONS
from persona.segments.sql import AudienceStore
from persona.segments.stage import AUDIENCES, SYSTEM_SOURCE, AudienceStage
from persona.segments.store import MIGRATIONS as DEFINITION_MIGRATIONS
from persona.segments.store import DefinitionStore
from persona.storage.leases import FileLeases, Leases, PostgresLeases
from persona.storage.postgres import PostgresDatabase, PostgresURL
from persona.storage.sql import Database
from persona.storage.sqlite import SQLiteDatabase

log = logging.getLogger(__name__)

# What is not derived from events lives in the log's store: the log, keys, definitions, the catalog.
LOG_STORE_MIGRATIONS = [*LOG_MIGRATIONS, *KEY_MIGRATIONS, *DEFINITION_MIGRATIONS, *CATALOG_MIGRATIONS,
                        *SUPPRESSION_MIGRATIONS, *JOURNEY_DEFINITION_MIGRATIONS, *PLACEMENT_MIGRATIONS]
# Derived from the log: profiles and their identity graph, audiences; what scheduled jobs compute
# over them (model traits), the persona runs they compare with, and trained recommendation models.
STATE_STORE_MIGRATIONS = [*PROFILE_MIGRATIONS, *AUDIENCE_MIGRATIONS, *JOB_MIGRATIONS, *PERSONA_MIGRATIONS,
                          *RECOMMEND_MIGRATIONS, *OUTBOX_MIGRATIONS, *SEND_LOG_MIGRATIONS, *JOURNEY_STATE_MIGRATIONS,
                          *MODEL_REGISTRY_MIGRATIONS]

DEFAULT_SOURCE = "default"


@dataclass
class Engine:
    config: Config
    log_db: Database
    state_db: Database
    log: SQLEventLog
    keys: SQLKeyStore
    state: SQLStateStore
    ingest: IngestService
    processor: Processor
    profiles: ProfileReader
    definitions: DefinitionStore
    audiences: AudienceStore
    audience_stage: Callable[[], AudienceStage]  # a new one, for whoever runs the stage
    segments: AudienceReader
    model_traits: ModelTraitStore
    jobs: JobStore
    persona_runs: PersonaRunStore
    catalog: CatalogStore  # configuration, with the log's store: survives a rebuild
    rec_models: ModelStore  # trained recommendation model sets (history: a rebuild keeps them)
    recommender: Recommender  # serves the newest of them, swapping in newer ones
    placement_store: PlacementStore  # business rules and variants per placement: the file and the API
    journeys: JourneyDefinitions
    journey_store: JourneyStore
    journey_stage: Callable[[], JourneyStage]
    destinations: dict[str, Destination]  # webhook receivers, from the `destinations` file
    outbox: Outbox
    guards: Guards  # frequency caps, quiet hours, the suppression list: checked before an email goes
    models: ModelRegistry  # predictive model versions (clv, ...), the active one per kind

    @classmethod
    def open(cls, config: Config, application_name: str = "persona") -> Engine:
        """Open (and migrate) the store the config names; `application_name` labels PostgreSQL sessions."""
        # Read first: a placements file that does not parse stops the start before a store is opened.
        placement_file = read_placements_file(config.placements) if config.placements else None
        destinations = read_destinations_file(config.destinations) if config.destinations else {}
        log_db, state_db = open_databases(config, application_name)
        event_log = SQLEventLog(log_db)
        keys = SQLKeyStore(log_db)
        state = SQLStateStore(state_db)
        definitions = DefinitionStore(log_db, seen_events=event_log.event_names)
        audiences = AudienceStore(state_db, AUDIENCES)
        rec_models = ModelStore(state_db)
        model_traits = ModelTraitStore(state_db)

        def audience_stage() -> AudienceStage:
            return AudienceStage(event_log, state, audiences, definitions, config.identity, model_traits=model_traits,
                                 batch_size=config.batch_size, check_every=config.segment_time_check)

        journeys, journey_store = JourneyDefinitions(log_db, destinations), JourneyStore(state_db)
        guards = Guards(SuppressionList(log_db), SendLog(state_db), config.guards)

        catalog, recommender = SQLCatalogStore(log_db), Recommender(rec_models)

        def journey_stage() -> JourneyStage:
            actions = LoggedActions(state, config.identity, guards, audiences=audiences, model_traits=model_traits,
                                    mail=config.smtp_host is not None,
                                    recommend=lambda profile_id, k: recommend_for(recommender, catalog, profile_id, k))
            return JourneyStage(event_log, state, journey_store, journeys, actions,
                                audiences=audiences, model_traits=model_traits, batch_size=config.batch_size,
                                lateness=config.journey_lateness)

        engine = cls(
            config=config, log_db=log_db, state_db=state_db, log=event_log, keys=keys, state=state,
            ingest=IngestService(event_log, keys),
            processor=Processor(event_log, state, config.identity, batch_size=config.batch_size,
                                commit_interval=config.commit_interval, partitions=config.partitions,
                                followers=lambda: [audience_stage(), journey_stage()]),
            profiles=ProfileReader(state, event_log, config.identity),
            definitions=definitions, audiences=audiences, audience_stage=audience_stage,
            segments=AudienceReader(audiences, definitions, state, config.identity),
            model_traits=model_traits, jobs=JobStore(state_db), persona_runs=PersonaRunStore(state_db),
            catalog=catalog, rec_models=rec_models, recommender=recommender,
            placement_store=PlacementStore(log_db), journeys=journeys, journey_store=journey_store,
            journey_stage=journey_stage,
            destinations=destinations, outbox=Outbox(state_db), guards=guards, models=ModelRegistry(state_db),
        )
        engine.seed_keys()
        if placement_file is not None:  # placements as code: what the file says, other placements kept
            engine.placement_store.apply(placement_file)
        return engine

    @property
    def placements(self) -> dict[str, Placement]:
        """The placements in force (from memory; another node's change shows within a second)."""
        return self.placement_store.current()

    def seed_keys(self) -> None:
        """Create the keys named in the environment, so scripts can run unattended (and the system source)."""
        self.keys.create_source(SYSTEM_SOURCE, "persona (segment transitions)")
        if self.config.write_key:
            self.keys.create_key(KeyKind.WRITE, "seeded", DEFAULT_SOURCE, plaintext=self.config.write_key)
        if self.config.secret_key:
            self.keys.create_key(KeyKind.SECRET, "seeded", plaintext=self.config.secret_key)

    def leases(self, worker_id: str) -> Leases:
        """Who runs which processing stage: file locks on the embedded store, session locks on PostgreSQL."""
        if self.config.store is None:
            return FileLeases(self.config.data_dir, worker_id)
        return PostgresLeases(PostgresURL.parse(self.config.store), worker_id)

    def worker(self, worker_id: str) -> Worker:
        config = self.config
        return Worker(self.log, self.state, config.identity, self.leases(worker_id), batch_size=config.batch_size,
                      commit_interval=config.commit_interval, partitions=config.partitions,
                      followers={AUDIENCES: self.audience_stage, JOURNEYS: self.journey_stage})

    def scheduler(self, runner: str) -> Scheduler:
        """The scheduled jobs (`jobs/scheduler.py`), for a processing runner to run in a thread;
        each run in a child process of its own (`jobs/builtin.py`)."""
        def job(name: str, every: float, run: EngineJob, wait: Callable[[], str | None] | None = None) -> Job:
            return Job(name, every, lambda: in_child(run, self.config), wait)

        jobs = [job("rfm", self.config.rfm_refresh, rfm_job),
                job("personas", self.config.personas_refit, personas_job),
                job("models", self.config.models_refresh, models_job)]
        if self.config.recs_retrain > 0:  # 0: off
            jobs.append(job("recs", self.config.recs_retrain, recs_job, wait=lambda: recs_wait(self)))
        return Scheduler(jobs, self.jobs, runner)

    def deliverer(self) -> Deliverer | None:
        """What sends the outbox's webhooks and emails, for a processing runner to start; None with
        neither destinations nor an SMTP server."""
        c = self.config
        mailer = None if c.smtp_host is None else Mailer(SmtpSettings(
            c.smtp_host, c.smtp_from, c.smtp_port, c.smtp_security, c.smtp_username, c.smtp_password))  # type: ignore[arg-type]
        return Deliverer(self.outbox, self.destinations, mailer=mailer) if self.destinations or mailer else None

    def lease_names(self) -> list[str]:
        return [IDENTITY, *(fold_name(p) for p in range(self.processor.partitions)), AUDIENCES, JOURNEYS]

    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Throw away all derived state and replay the whole log; returns events replayed."""
        leases = self.leases(f"rebuild-{os.getpid()}")
        try:
            if not all(leases.try_acquire(name) for name in self.lease_names()):
                raise StoreError("a running processor or worker holds this store: stop it first")
            journeys_ran_to = self.state.checkpoint(JOURNEYS)
            self.state.reset()
            self.journey_store.keep_checkpoint(journeys_ran_to)  # journeys act on the world: never again
            self.audiences.reset()
            self.model_traits.reset()  # computed from what is replayed: the jobs run again at once
            self.jobs.forget()
            self.processor.reset()
            return self.processor.run_until_caught_up(progress)
        finally:
            leases.close()

    def close(self) -> None:
        self.log_db.close()
        self.state_db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_databases(config: Config, application_name: str = "persona") -> tuple[Database, Database]:
    """The log's database (events, quarantine, keys) and the derived state's, from the store URL."""
    if config.store is None:
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        return (SQLiteDatabase(data_dir / "log.db", LOG_STORE_MIGRATIONS, synchronous=config.synchronous),
                SQLiteDatabase(data_dir / "state.db", STATE_STORE_MIGRATIONS, synchronous="NORMAL"))
    url = PostgresURL.parse(config.store)
    log.info("store: %s", url.redacted())
    log_db = PostgresDatabase(url, LOG_STORE_MIGRATIONS, component="log",
                              application_name=application_name)
    try:
        state_db = PostgresDatabase(url, STATE_STORE_MIGRATIONS, component="state", application_name=application_name)
    except BaseException:
        log_db.close()
        raise
    return log_db, state_db



def recommend_for(recommender: Recommender, catalog: SQLCatalogStore, profile_id: str, k: int) -> list[dict]:
    """A journey message's recommendations: the profile's list under the default placement rules
    (in stock, not bought before); none while no model set is trained."""
    from persona.log.events import now_micros
    from persona.recommend.placements import Placement, placed_for_user

    try:
        models = recommender.current()
    except ModelNotTrained:
        return []
    return placed_for_user(models, catalog, Placement("journeys"), profile_id, k, now_micros())
