"""Sources and keys: scopes, hashed storage, revocation seen by a running server, the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.access.keys import KeyKind, SQLKeyStore, hash_key
from persona.cli import app
from persona.config import Config
from persona.engine import Engine
from persona.errors import RequestError

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def test_a_write_key_belongs_to_a_source_and_a_secret_key_to_none(engine: Engine) -> None:
    write = engine.keys.create_key(KeyKind.WRITE, "web site", "web")
    secret = engine.keys.create_key(KeyKind.SECRET, "notebooks")
    assert write.startswith("pw_") and secret.startswith("ps_")
    found = engine.keys.lookup(write)
    assert found is not None and (found.kind, found.source_id, found.name) == (KeyKind.WRITE, "web", "web site")
    assert engine.keys.lookup(secret).source_id is None  # type: ignore[union-attr]
    assert ("web", "web") in engine.keys.list_sources()
    assert engine.keys.lookup("pw_never_issued") is None
    with pytest.raises(RequestError, match="source"):
        engine.keys.create_key(KeyKind.WRITE, "no source")
    with pytest.raises(RequestError, match="lowercase"):
        engine.keys.create_source("Web Site")


def test_only_a_hash_of_a_key_is_stored(engine: Engine, config: Config) -> None:
    key = engine.keys.create_key(KeyKind.SECRET, "ops")
    stored = repr(engine.log_db.query("SELECT * FROM api_keys"))
    assert key not in stored and hash_key(key) in stored
    if config.store is None:  # and not anywhere in the file either
        engine.log_db.close()  # flush the WAL into the file
        raw = (Path(config.data_dir) / "log.db").read_bytes()
        assert key.encode() not in raw
        assert hash_key(key).encode() in raw


def test_a_key_revoked_by_another_process_stops_working_in_a_running_server(config: Config) -> None:
    with Engine.open(config) as server:
        fast = SQLKeyStore(server.log_db, cache_seconds=0.05)  # the server's store, with a short cache
        key = fast.create_key(KeyKind.WRITE, "ios app", "ios")
        assert fast.lookup(key) is not None  # now cached
        with Engine.open(config) as cli:  # `persona keys revoke` in another process
            fingerprint = hash_key(key)[:12]
            assert cli.keys.revoke(fingerprint) is True
            assert cli.keys.revoke(fingerprint) is False  # already revoked
        time.sleep(0.1)
        assert fast.lookup(key) is None


def two_keys_sharing_a_fingerprint_prefix() -> tuple[str, str, str]:
    seen: dict[str, str] = {}
    for i in range(1_000_000):
        key = f"ps_collide_{i}"
        prefix = hash_key(key)[:8]
        if prefix in seen:
            return seen[prefix], key, prefix
        seen[prefix] = key
    raise AssertionError("no two keys share 8 hex characters")


def test_revoking_needs_a_fingerprint_that_names_one_key(engine: Engine) -> None:
    first, second, prefix = two_keys_sharing_a_fingerprint_prefix()
    for key in (first, second):
        engine.keys.create_key(KeyKind.SECRET, "twin", plaintext=key)
    with pytest.raises(RequestError, match="hex"):
        engine.keys.revoke("%%%%%%%%")  # a LIKE wildcard must not revoke every key
    with pytest.raises(RequestError, match="hex"):
        engine.keys.revoke("abc")
    with pytest.raises(RequestError, match="matches 2 keys"):
        engine.keys.revoke(prefix)
    assert engine.keys.lookup(first) is not None and engine.keys.lookup(second) is not None
    assert engine.keys.revoke(hash_key(first)[:16]) is True
    assert engine.keys.lookup(first) is None and engine.keys.lookup(second) is not None


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create-write", "web", *data])
    assert created.exit_code == 0, created.output
    key = created.output.split(": ", 1)[1].split()[0]
    assert key.startswith("pw_")
    listed = runner.invoke(app, ["keys", "list", *data])
    fingerprint = hash_key(key)[:12]
    assert fingerprint in listed.output and "source=web" in listed.output
    assert runner.invoke(app, ["keys", "revoke", fingerprint, *data]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", fingerprint, *data])
    assert again.exit_code == 1 and "no active key" in again.output
    assert fingerprint not in runner.invoke(app, ["keys", "list", *data]).output
