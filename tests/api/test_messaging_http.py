"""Messaging operations over HTTP and the CLI: deliveries and dead letters with replay, and the
suppression list the guards read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from persona.activation.outbox import NewDelivery
from persona.cli import app
from persona.engine import Engine

pytestmark = pytest.mark.backends


def call(client: Any, headers: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, headers=headers, auth=None, **kwargs)


def one_dead_letter(engine: Engine) -> None:
    """Three deliveries to `crm`: the first attempted and refused for good, the others pending."""
    engine.outbox.enqueue([NewDelivery.json("crm", f"k{i}", {"n": i}) for i in range(3)])
    [first] = engine.outbox.claim_due("crm", limit=1)
    assert engine.outbox.mark_failed(first.id, first.claim or "", "410 Gone", status_code=410)


def cli(engine: Engine, *args: str) -> str:
    store = engine.config.store or f"sqlite:///{engine.config.data_dir}"
    result = CliRunner().invoke(app, [*args, "--store", store])
    assert result.exit_code == 0, result.output
    return result.output


def test_dead_letters_are_listed_inspected_and_replayed(engine: Engine, client: Any,
                                                       reader_headers: dict[str, str]) -> None:
    one_dead_letter(engine)
    listed = call(client, reader_headers, "GET", "/v1/deliveries", params={"status": "dead"}).json()
    [dead] = listed["data"]
    assert dead["idempotency_key"] == "k0" and dead["attempts"] == 1 and dead["last_status_code"] == 410
    assert listed["counts"] == {"crm": {"dead": 1, "pending": 2}}
    shown = call(client, reader_headers, "GET", f"/v1/deliveries/{dead['id']}").json()
    assert shown["payload"] == {"n": 0} and shown["last_error"] == "410 Gone"
    assert call(client, reader_headers, "GET", "/v1/deliveries/999999").status_code == 404
    bad = call(client, reader_headers, "GET", "/v1/deliveries", params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"
    assert call(client, reader_headers, "POST", "/v1/deliveries/replay", json={}).status_code == 400
    paged = call(client, reader_headers, "GET", "/v1/deliveries", params={"limit": 2}).json()
    assert len(paged["data"]) == 2 and paged["next"] == paged["data"][-1]["id"]

    replayed = call(client, reader_headers, "POST", "/v1/deliveries/replay", json={"destination": "crm"})
    assert replayed.json() == {"replayed": 1}
    again = engine.outbox.get(dead["id"])
    assert again is not None and again.status == "pending" and again.attempts == 0
    assert engine.outbox.counts() == {"crm": {"pending": 3}}


def test_the_deliveries_cli_lists_and_replays(engine: Engine) -> None:
    one_dead_letter(engine)
    shown = cli(engine, "deliveries", "list", "--status", "dead")
    assert "crm: 1 dead, 2 pending" in shown and "410 Gone" in shown
    [dead] = engine.outbox.dead_letters("crm")
    assert "1 deliveries put back in line" in cli(engine, "deliveries", "replay", str(dead.id))
    assert engine.outbox.counts() == {"crm": {"pending": 3}}
    refused = CliRunner().invoke(app, ["deliveries", "replay", "--data-dir", str(engine.config.data_dir)])
    assert refused.exit_code == 2 and "--destination" in refused.output


def test_the_suppression_list_over_http(engine: Engine, client: Any, reader_headers: dict[str, str]) -> None:
    added = call(client, reader_headers, "POST", "/v1/suppressions",
                 json={"kind": "email", "value": " Ada@Example.com", "reason": "bounced"})
    assert added.status_code == 201 and added.json()["added"] is True
    again = call(client, reader_headers, "POST", "/v1/suppressions", json={"kind": "email", "value": "ada@example.com"})
    assert again.status_code == 200 and again.json()["added"] is False
    empty = call(client, reader_headers, "POST", "/v1/suppressions", json={"kind": "email", "value": " "})
    assert empty.status_code == 400 and empty.json()["field"] == "value"
    assert call(client, reader_headers, "POST", "/v1/suppressions", json={"kind": "email"}).status_code == 400
    assert engine.guards.suppressions.contains("email", "ADA@example.com")
    listed = call(client, reader_headers, "GET", "/v1/suppressions").json()
    assert listed["count"] == 1 and listed["data"][0]["value"] == "ada@example.com"
    assert listed["data"][0]["reason"] == "bounced"
    assert call(client, reader_headers, "DELETE", "/v1/suppressions/email/ada@example.com").status_code == 204
    assert call(client, reader_headers, "DELETE", "/v1/suppressions/email/ada@example.com").status_code == 404
    assert call(client, {}, "GET", "/v1/suppressions").status_code == 401


def test_the_suppressions_cli_adds_imports_lists_and_removes(engine: Engine, tmp_path: Path) -> None:
    assert "2 added, 0 already" in cli(engine, "suppressions", "add", "user_id", "u1", "u2", "--reason", "support")
    exported = tmp_path / "bounces.csv"
    exported.write_text("kind,value,reason\nemail,BOB@shop.test,hard bounce\nuser_id,u1,\nemail,eve@shop.test,\n")
    assert "2 added, 1 already" in cli(engine, "suppressions", "import", str(exported))
    shown = cli(engine, "suppressions", "list")
    assert "bob@shop.test" in shown and "hard bounce" in shown and "4 suppressed" in shown
    assert "1 removed, 1 were not" in cli(engine, "suppressions", "remove", "user_id", "u2", "u9")
    assert not engine.guards.suppressions.contains("user_id", "u2")
    broken = tmp_path / "broken.csv"
    broken.write_text("kind,value\nemail,\n")
    refused = CliRunner().invoke(app, ["suppressions", "import", str(broken),
                                       "--data-dir", str(engine.config.data_dir)])
    assert refused.exit_code == 2 and "line 2" in refused.output
