"""The assembled system: stores opened from the config, services wired to them.

Library users and tests start here (`Engine.open(config)`); the HTTP app and the CLI
are thin layers over an Engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from persona.access.keys import MIGRATIONS as KEY_MIGRATIONS
from persona.access.keys import KeyKind, SQLiteKeyStore
from persona.config import Config
from persona.errors import StoreError
from persona.ingest.service import IngestService
from persona.log.sqlite import MIGRATIONS as LOG_MIGRATIONS
from persona.log.sqlite import SQLiteEventLog
from persona.profiles.processor import Processor
from persona.profiles.reader import ProfileReader
from persona.profiles.runner import ProcessorLock
from persona.profiles.sqlite import MIGRATIONS as STATE_MIGRATIONS
from persona.profiles.sqlite import SQLiteStateStore
from persona.storage.sqlite import Database

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "default"


@dataclass
class Engine:
    config: Config
    log_db: Database
    state_db: Database
    log: SQLiteEventLog
    keys: SQLiteKeyStore
    state: SQLiteStateStore
    ingest: IngestService
    processor: Processor
    profiles: ProfileReader

    @classmethod
    def open(cls, config: Config) -> Engine:
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        log_db = Database(data_dir / "log.db", [*LOG_MIGRATIONS, *KEY_MIGRATIONS], synchronous=config.synchronous)
        state_db = Database(data_dir / "state.db", STATE_MIGRATIONS, synchronous="NORMAL")
        event_log = SQLiteEventLog(log_db)
        keys = SQLiteKeyStore(log_db)
        state = SQLiteStateStore(state_db)
        engine = cls(
            config=config, log_db=log_db, state_db=state_db, log=event_log, keys=keys, state=state,
            ingest=IngestService(event_log, keys),
            processor=Processor(event_log, state, config.identity, batch_size=config.batch_size,
                                commit_interval=config.commit_interval),
            profiles=ProfileReader(state, event_log, config.identity),
        )
        engine.seed_keys()
        return engine

    def seed_keys(self) -> None:
        """Create the keys named in the environment, so scripts can run unattended."""
        if self.config.write_key:
            self.keys.create_key(KeyKind.WRITE, "seeded", DEFAULT_SOURCE, plaintext=self.config.write_key)
        if self.config.secret_key:
            self.keys.create_key(KeyKind.SECRET, "seeded", plaintext=self.config.secret_key)

    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Throw away all derived state and replay the whole log; returns events replayed."""
        lock = ProcessorLock(self.config.data_dir)
        if not lock.acquire(timeout=5):
            raise StoreError("a running processor holds this data directory: stop the server first")
        try:
            self.state.reset()
            self.processor.reset()
            return self.processor.run_until_caught_up(progress)
        finally:
            lock.release()

    def close(self) -> None:
        self.processor.stop()
        self.log_db.close()
        self.state_db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
