"""Identity resolution through the real log and processor on the embedded store."""

from __future__ import annotations

from typing import Any

import pytest

from persona.engine import Engine
from tests.support.events import event

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL


def ingest(engine: Engine, *events: Any) -> None:
    engine.log.append(list(events))
    engine.processor.run_until_caught_up()


def test_anonymous_then_identified_is_one_profile(engine: Engine) -> None:
    ingest(engine,
           event("page", anon="a1", name="Home"),
           event("track", anon="a1", event="Product Viewed", minutes=1),
           event("identify", anon="a1", user="u1", traits={"email": "Ann@Example.com"}, minutes=2),
           event("track", user="u1", event="Order Completed", properties={"revenue": 30}, minutes=3))
    by_user = engine.profiles.find("user_id:u1")
    assert engine.profiles.find("anonymous_id:a1").id == by_user.id
    assert engine.profiles.find("email:ann@example.com").id == by_user.id
    assert by_user.event_count == 4
    assert by_user.orders.count == 1 and by_user.orders.revenue == 30
    assert engine.state.counts().profiles == 1


def test_two_devices_merge_when_both_identify(engine: Engine) -> None:
    ingest(engine,
           event("track", anon="phone", event="Product Viewed"),
           event("track", anon="laptop", event="Product Viewed", minutes=1),
           event("identify", anon="phone", user="u1", minutes=2))
    assert engine.state.counts().profiles == 2
    ingest(engine, event("identify", anon="laptop", user="u1", minutes=3))
    survivor = engine.profiles.find("user_id:u1")
    assert survivor.identifiers["anonymous_id"] == ["laptop", "phone"]
    assert survivor.event_count == 4
    counts = engine.state.counts()
    assert (counts.profiles, counts.merged_profiles, counts.merges) == (1, 1, 1)
    merged_id = survivor.merged_from[0]
    assert engine.profiles.find(merged_id).id == survivor.id  # a merged-away id resolves to the survivor


def test_blocked_values_are_not_identifiers(engine: Engine) -> None:
    ingest(engine, *[event("track", user=junk, anon=f"a{i}", event="Clicked")
                     for i, junk in enumerate(["null", "undefined", "0", "-1", "anonymous", "NULL"])])
    assert engine.state.counts().profiles == 6
    ingest(engine, event("track", user="null", event="Clicked"))
    assert engine.processor.stats.unattributed == 1


def test_shared_device_does_not_glue_two_users(engine: Engine) -> None:
    ingest(engine,
           event("identify", anon="kiosk", user="alice"),
           event("identify", anon="kiosk", user="bob", minutes=1),
           event("track", user="bob", event="Order Completed", properties={"revenue": 5}, minutes=2))
    alice, bob = engine.profiles.find("user_id:alice"), engine.profiles.find("user_id:bob")
    assert alice.id != bob.id
    assert bob.identifiers == {"user_id": ["bob"]}
    assert bob.orders.revenue == 5 and alice.orders.count == 0
    dropped = engine.state_db.query("SELECT kind, value, reason FROM dropped_links")
    assert dropped == [("anonymous_id", "kiosk", "would exceed the user_id limit")]


def test_shared_email_within_limit_merges_but_not_two_user_ids(engine: Engine) -> None:
    ingest(engine,
           event("identify", user="u1", traits={"email": "family@example.com"}),
           event("identify", user="u2", traits={"email": "family@example.com"}, minutes=1))
    assert engine.profiles.find("user_id:u1").id != engine.profiles.find("user_id:u2").id
    assert engine.profiles.find("email:family@example.com").id == engine.profiles.find("user_id:u1").id


def test_alias_merges_even_two_user_ids(engine: Engine) -> None:
    ingest(engine,
           event("track", user="old-id", event="Order Completed", properties={"revenue": 10}),
           event("track", user="new-id", event="Order Completed", properties={"revenue": 20}, minutes=1),
           event("alias", user="new-id", previousId="old-id", minutes=2))
    profile = engine.profiles.find("user_id:new-id")
    assert profile.id == engine.profiles.find("user_id:old-id").id
    assert profile.orders.revenue == 30
    assert [m.reason for m in engine.state.merges(profile.id)] == ["alias"]


def test_alias_with_unknown_previous_id_links_it_as_anonymous(engine: Engine) -> None:
    ingest(engine, event("alias", user="u9", previousId="anon-9"),
           event("track", anon="anon-9", event="Viewed", minutes=1))
    assert engine.profiles.find("anonymous_id:anon-9").id == engine.profiles.find("user_id:u9").id


def test_late_event_does_not_overwrite_newer_trait(engine: Engine) -> None:
    ingest(engine, event("identify", user="u1", traits={"plan": "pro"}, minutes=10))
    ingest(engine, event("identify", user="u1", traits={"plan": "free", "city": "Oslo"}, minutes=1))
    profile = engine.profiles.find("user_id:u1")
    assert profile.traits == {"plan": "pro", "city": "Oslo"}
    assert profile.first_seen < profile.last_seen


def test_device_id_links_logged_out_events(engine: Engine) -> None:
    device = {"device": {"id": "dev-1", "type": "ios"}}
    ingest(engine, event("identify", user="u1", anon="a1", context=device),
           event("track", anon="a2", event="App Opened", context=device, minutes=1))
    assert engine.profiles.find("anonymous_id:a2").id == engine.profiles.find("user_id:u1").id
