"""Journeys: the language (every mistake named by its path) and the journey stage on the log."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from persona.activation.journeys import EXIT, Branch, Send, Split, WaitFor, parse_journey
from persona.activation.stage import _bucket
from persona.activation.store import Instance
from persona.activation.webhooks import new_secret
from persona.cli import app
from persona.config import load_config
from persona.engine import Engine
from persona.ingest.messages import BatchDefaults, normalize
from persona.log.events import Event
from persona.segments.definitions import DefinitionError
from persona.status import processing_of
from tests.activation.support import Receiver
from tests.activation.test_email import Inbox

pytestmark = pytest.mark.backends
_ids = itertools.count()

CART = {
    "id": "cart_abandoned",
    "entry": {"event": "Product Added"},
    "goal": {"event": "Subscribed"},
    "steps": [
        {"wait_for": {"event": "Order Completed", "match": ["cart_id"], "within": "15m"}},
        {"branch": [{"if": {"trait": "plan", "eq": "vip"}, "then": [{"send": {"webhook": "vip_desk"}}]},
                    {"else": [{"send": {"webhook": "crm", "payload": {"kind": "cart_reminder"}}}]}]},
    ],
}


def test_a_journey_compiles_to_nodes_that_know_where_they_go() -> None:
    journey = parse_journey(CART)
    first = journey.nodes[journey.start]
    assert isinstance(first, WaitFor) and first.within == 900 and first.on.match == ("cart_id",)
    assert first.matched == EXIT  # the order came: done
    branch = journey.nodes[first.next]
    assert isinstance(branch, Branch)
    vip, other = journey.nodes[branch.cases[0][1]], journey.nodes[branch.otherwise]
    assert isinstance(vip, Send) and vip.target == "vip_desk" and vip.next == EXIT
    assert isinstance(other, Send) and other.options["payload"] == {"kind": "cart_reminder"}
    assert journey.labels[branch.otherwise] == "steps[1].branch[1].else[0]"


@pytest.mark.parametrize(("change", "field"), [
    ({"entry": {"evnt": "x"}}, "entry.evnt"),
    ({"steps": [{"wait": "soon"}]}, "steps[0].wait"),
    ({"steps": [{"wait_for": {"event": "Order Completed"}}]}, "steps[0].wait_for.within"),
    ({"steps": [{"branch": [{"if": {"event": "Order Completed", "within": "7d"}}]}]}, "steps[0].branch[0].if"),
    ({"steps": [{"branch": [{"else": []}, {"if": {"segment": "x"}}]}]}, "steps[0].branch[0]"),
    ({"steps": [{"split": [{"name": "a", "percent": 60}, {"name": "b", "percent": 50}]}]},
     "steps[0].split[1].percent"),
    ({"steps": [{"send": {"sms": "x"}}]}, "steps[0].send"),
    ({"steps": [{"wait": "1h", "send": {"webhook": "x"}}]}, "steps[0]"),
    ({"steps": []}, "steps"),
    ({"reentry": "twice"}, "reentry"),
    ({"id": "no spaces"}, "id"),
])
def test_mistakes_name_their_path(change: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError) as err:
        parse_journey({**CART, **change})
    assert err.value.field == field


def test_split_buckets_are_stable_and_near_their_share() -> None:
    journey = parse_journey({"id": "s", "entry": {"event": "x"}, "steps": [
        {"split": [{"name": "a", "percent": 45, "then": [{"send": {"event": "A"}}]}, {"name": "b", "percent": 45}]}]})
    split = journey.nodes[journey.start]
    assert isinstance(split, Split) and [a[1] for a in split.arms] == [45, 90]
    buckets = [_bucket(Instance("s", f"p{n}", 1, "v", 0, "active", 0, {})) for n in range(4000)]
    assert buckets == [_bucket(Instance("s", f"p{n}", 1, "v", 0, "active", 0, {})) for n in range(4000)]
    holdout = sum(b >= 90 for b in buckets) / len(buckets)
    assert 0.08 < holdout < 0.12


# -- the stage, on the log ------------------------------------------------------------------------
def track(user: str, name: str, at: datetime, **properties: Any) -> Event:
    body = {"type": "track", "userId": user, "event": name, "properties": properties,
            "messageId": f"j-{next(_ids)}", "timestamp": at.isoformat()}
    outcome = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
    assert isinstance(outcome, Event), outcome
    return outcome


def identify(user: str, at: datetime, **traits: Any) -> Event:
    body = {"type": "identify", "userId": user, "traits": traits, "messageId": f"j-{next(_ids)}",
            "timestamp": at.isoformat()}
    outcome = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
    assert isinstance(outcome, Event)
    return outcome


def in_time_order(events: list[Event], engine: Engine) -> None:
    """Appended as a live stream would bring them: by time."""
    engine.log.append(sorted(events, key=lambda e: e.timestamp))


def sent(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """`Message Sent` events by the user they were addressed to."""
    out: dict[str, list[dict[str, Any]]] = {}
    for event in engine.log.read(0, 10_000):
        if event.name == "Message Sent":
            out.setdefault(event.user_id or "", []).append(event.body["properties"])
    return out


def instances(engine: Engine, journey_id: str) -> dict[str, Instance]:
    roots = {}
    for instance in engine.journey_store.instances(journey_id):
        profile = engine.state.combined([instance.profile_id])[instance.profile_id]
        roots[profile.identifiers["user_id"][0]] = instance
    return roots


def test_the_abandoned_cart_reminds_only_those_who_did_not_order_that_cart(engine: Engine) -> None:
    engine.journeys.save(CART)
    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=20)
    in_time_order([
        identify("vip", t0, plan="vip"),
        track("ann", "Product Added", t0, cart_id="c1", product_id="p1"),
        track("bob", "Product Added", t0, cart_id="c2", product_id="p1"),
        track("vip", "Product Added", t0, cart_id="c9", product_id="p1"),
        track("cid", "Product Added", now - timedelta(minutes=1), cart_id="c3", product_id="p2"),
        track("ann", "Order Completed", t0 + timedelta(minutes=5), cart_id="c1"),    # this cart: no reminder
        track("bob", "Order Completed", t0 + timedelta(minutes=3), cart_id="other"),  # another cart: reminded
        track("vip", "Order Completed", t0 + timedelta(minutes=16), cart_id="c9"),   # too late
    ], engine)
    engine.processor.run_until_caught_up()
    engine.processor.run_until_caught_up()  # the Message Sent events resolve and fold too
    runs = instances(engine, "cart_abandoned")
    assert runs["ann"].status == "done" and runs["ann"].outcome == "completed"
    assert runs["bob"].outcome == "completed" and runs["vip"].outcome == "completed"
    assert runs["cid"].status == "waiting"  # 14 minutes to go
    assert runs["cid"].wait_until is not None
    journeys = processing_of(engine)["journeys"]
    assert journeys["pending_timers"] == 1 and journeys["lag"] == 0
    # Enqueued with the journey state; no destination is configured here, so they wait.
    assert journeys["deliveries"] == {"crm": {"pending": 1}, "vip_desk": {"pending": 1}}
    messages = sent(engine)
    assert set(messages) == {"bob", "vip"}
    assert [m["target"] for m in messages["bob"]] == ["crm"] and messages["bob"][0]["channel"] == "webhook"
    assert [m["target"] for m in messages["vip"]] == ["vip_desk"]  # the branch read the trait
    counts = engine.journey_store.counts("cart_abandoned")
    assert counts["entered"] == 4 and counts["completed"] == 3
    assert sum(v for k, v in counts.items() if k.startswith("waiting:")) == 1
    # The reminder is on bob's timeline: the event resolved to his profile.
    bob = engine.profiles.find("user_id:bob")
    timeline = engine.log.get([seq for _, seq in engine.state.timeline(bob.id, None, 50)])
    assert any(e.name == "Message Sent" for e in timeline)


def test_goal_converts_reentry_is_policed_and_a_changed_journey_ends_its_instances(engine: Engine) -> None:
    engine.journeys.save({**CART, "reentry": {"every": "1h"}})
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=3)
    in_time_order([
        track("ann", "Product Added", t0, cart_id="c1"),
        track("ann", "Subscribed", t0 + timedelta(minutes=2)),                     # goal: converted
        track("ann", "Product Added", t0 + timedelta(minutes=30), cart_id="c2"),   # within the hour: no entry
        track("ann", "Product Added", t0 + timedelta(minutes=70), cart_id="c3"),   # an hour on: enters again
        track("ann", "Order Completed", t0 + timedelta(minutes=71), cart_id="c3"),
    ], engine)
    engine.processor.run_until_caught_up()
    runs = engine.journey_store.instances("cart_abandoned")
    assert [(i.number, i.outcome) for i in runs] == [(1, "converted"), (2, "completed")]
    assert sent(engine) == {}
    engine.journeys.save({**CART, "steps": [{"wait": "1d"}]}, replace="cart_abandoned")
    engine.log.append([track("ann", "Product Added", now, cart_id="c4")])
    engine.processor.run_until_caught_up()
    assert [i.outcome for i in engine.journey_store.instances("cart_abandoned")][-1:] == [None]  # waits a day


def test_old_events_start_no_journey_and_a_rebuild_sends_nothing_again(engine: Engine) -> None:
    engine.journeys.save(CART)
    now = datetime.now(UTC)
    engine.log.append([track("old", "Product Added", now - timedelta(days=3), cart_id="c0"),
                       track("bob", "Product Added", now - timedelta(hours=1), cart_id="c2")])
    engine.processor.run_until_caught_up()
    assert set(instances(engine, "cart_abandoned")) == {"bob"}
    assert len(sent(engine)["bob"]) == 1
    engine.rebuild()
    assert len(sent(engine)["bob"]) == 1
    assert len(engine.journey_store.instances("cart_abandoned")) == 1


def test_an_event_late_by_less_than_the_lateness_still_counts_and_one_later_does_not(engine: Engine) -> None:
    engine.journeys.save(CART)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    engine.log.append([
        track("ann", "Product Added", t0, cart_id="c1"),
        track("bob", "Product Added", t0, cart_id="c2"),
        track("cid", "Viewed", t0 + timedelta(minutes=15, seconds=1)),           # event time passes the deadline
        track("ann", "Order Completed", t0 + timedelta(minutes=14), cart_id="c1"),  # 1 s late: within 2 s
        track("dan", "Viewed", t0 + timedelta(minutes=15, seconds=30)),          # the watermark passes deadline + 2 s
        track("bob", "Order Completed", t0 + timedelta(minutes=14), cart_id="c2"),  # 30 s late: too late
    ])
    engine.processor.run_until_caught_up()
    assert set(sent(engine)) == {"bob"}


def test_journeys_over_http_and_the_cli(engine: Engine, client: Any, reader_headers: dict[str, str],
                                        tmp_path: Any) -> None:
    def call(method: str, path: str, **kwargs: Any) -> Any:
        return client.request(method, path, headers=reader_headers, auth=None, **kwargs)

    assert call("POST", "/v1/journeys", json=CART).status_code == 201
    assert call("POST", "/v1/journeys", json=CART).status_code == 409
    bad = call("POST", "/v1/journeys", json={**CART, "id": "x", "steps": [{"wait": "soon"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "steps[0].wait"
    assert [j["id"] for j in call("GET", "/v1/journeys").json()["data"]] == ["cart_abandoned"]
    in_time_order([track("bob", "Product Added", datetime.now(UTC) - timedelta(hours=1), cart_id="c2")], engine)
    engine.processor.run_until_caught_up()
    stats = call("GET", "/v1/journeys/cart_abandoned/stats").json()
    assert stats["entered"] == 1 and stats["completed"] == 1
    assert [s["step"] for s in stats["steps"]] == ["steps[0]", "steps[1].branch", "steps[1].branch[0].then[0]",
                                                   "steps[1].branch[1].else[0]"]
    assert [s["reached"] for s in stats["steps"]] == [1, 1, 0, 1]
    assert call("DELETE", "/v1/journeys/cart_abandoned").status_code == 204
    assert call("GET", "/v1/journeys/cart_abandoned").status_code == 404

    path = tmp_path / "journeys.yaml"
    path.write_text(yaml.safe_dump({"journeys": [CART]}))
    store = engine.config.store or f"sqlite:///{engine.config.data_dir}"
    applied = CliRunner().invoke(app, ["journeys", "apply", str(path), "--store", store])
    assert applied.exit_code == 0, applied.output
    assert "created journey:cart_abandoned" in applied.output
    shown = CliRunner().invoke(app, ["journeys", "stats", "--store", store])
    assert shown.exit_code == 0 and "steps[1].branch[1].else[0]" in shown.output


def test_a_webhook_step_is_delivered_signed_once_to_a_real_receiver(config: Any, tmp_path: Any) -> None:
    receiver = Receiver(secret=new_secret()).start()
    try:
        destinations = tmp_path / "destinations.yaml"
        destinations.write_text(yaml.safe_dump({"crm": {"url": receiver.url, "secret": receiver.secret},
                                                "vip_desk": {"url": receiver.url, "secret": receiver.secret}}))
        with Engine.open(replace(config, destinations=destinations)) as engine:
            with pytest.raises(DefinitionError) as err:  # a destination nobody configured: refused on save
                engine.journeys.save({**CART, "id": "typo", "steps": [{"send": {"webhook": "crn"}}]})
            assert err.value.field == "steps[0].send.webhook"
            engine.journeys.save({**CART, "steps": [*CART["steps"][:1], {"send": {"webhook": "crm",
                                                                                  "payload": {"coupon": "SAVE5"}}}]})
            in_time_order([track("bob", "Product Added", datetime.now(UTC) - timedelta(hours=1), cart_id="c2")],
                          engine)
            engine.processor.run_until_caught_up()
            engine.processor.run_until_caught_up()  # a second pass changes nothing
            deliverer = engine.deliverer()
            assert deliverer is not None
            with deliverer:
                deadline = time.monotonic() + 10
                while not receiver.received and time.monotonic() < deadline:
                    time.sleep(0.05)
            assert receiver.bad_signatures == 0
            [(webhook_id, body)] = receiver.received
            payload = json.loads(body)
            assert webhook_id == payload["id"] and webhook_id.startswith("journey:cart_abandoned:")
            assert payload["journey"]["step"] == "steps[1]" and payload["data"] == {"coupon": "SAVE5"}
            assert payload["profile"]["identifiers"]["user_id"] == ["bob"]
            assert payload["entry"]["properties"]["cart_id"] == "c2"
            assert payload["event"] is None  # the wait for an order ran out: no event led here
            assert engine.outbox.counts()["crm"]["delivered"] == 1
    finally:
        receiver.stop()


EMAIL_JOURNEY = {
    "id": "welcome", "entry": {"event": "Signed Up"},
    "steps": [{"send": {"channel": "transactional", "email": {
        "subject": "Welcome, {{ traits.first_name }}",
        "text": "{% if 'vip' in segments %}VIP {% endif %}plan {{ event.properties.plan }}"}}}],
}


def test_an_email_step_is_rendered_guarded_and_sent_through_smtp(config: Any, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = replace(config, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                       smtp_from="Shop <news@shop.test>")
    with Engine.open(settings) as engine:
        with pytest.raises(DefinitionError) as err:  # checked on save, with the line
            engine.journeys.save({**EMAIL_JOURNEY, "id": "bad", "steps": [{"send": {"email": {
                "subject": "x", "text": "line one\n{% if %}"}}}]})
        assert err.value.field == "steps[0].send.email.text" and "line 2" in err.value.message
        engine.journeys.save(EMAIL_JOURNEY)
        engine.guards.suppressions.add("email", "nope@example.com")
        now = datetime.now(UTC)
        in_time_order([identify("ada", now - timedelta(minutes=2), email="ada@example.com", first_name="Ada"),
                       identify("bea", now - timedelta(minutes=2), email="nope@example.com", first_name="Bea"),
                       track("ada", "Signed Up", now - timedelta(minutes=1), plan="pro"),
                       track("bea", "Signed Up", now - timedelta(minutes=1), plan="free")], engine)
        engine.processor.run_until_caught_up()
        messages = sent(engine)
        assert messages["ada"][0]["status"] == "queued" and messages["ada"][0]["to"] == "ada@example.com"
        assert messages["bea"][0]["status"] == "refused" and "suppress" in messages["bea"][0]["reason"]
        deliverer = engine.deliverer()
        assert deliverer is not None
        deliverer.run_once()
        [envelope] = inbox.envelopes
        assert envelope.rcpt_tos == ["ada@example.com"]
        received = inbox.message()
        assert received["Subject"] == "Welcome, Ada" and received.get_content().strip() == "plan pro"
        assert engine.outbox.counts()["email"]["delivered"] == 1


def test_without_an_smtp_server_an_email_step_is_recorded_as_refused(engine: Engine) -> None:
    engine.journeys.save(EMAIL_JOURNEY)
    in_time_order([track("ada", "Signed Up", datetime.now(UTC), plan="pro")], engine)
    engine.processor.run_until_caught_up()
    [message] = sent(engine)["ada"]
    assert message["status"] == "refused" and "smtp_host" in message["reason"]
    assert engine.deliverer() is None


def zone_at(local_hour: int) -> str:
    """A time zone where it is now `local_hour` o'clock (Etc/GMT-5 is UTC+5)."""
    offset = (local_hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return f"Etc/GMT{-offset:+d}"


def test_quiet_hours_defer_an_email_and_the_frequency_cap_refuses_the_third(config: Any,
                                                                          smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = replace(config, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    journey = {**EMAIL_JOURNEY, "id": "promo", "reentry": "always", "steps": [
        {"send": {"channel": "marketing", "email": {"subject": "Sale", "text": "{{ event.properties.plan }}"}}}]}
    with Engine.open(settings) as engine:
        engine.journeys.save(journey)
        now = datetime.now(UTC)
        in_time_order([identify("owl", now - timedelta(minutes=5), email="owl@example.com", timezone=zone_at(23)),
                       identify("lark", now - timedelta(minutes=5), email="lark@example.com", timezone=zone_at(12)),
                       track("owl", "Signed Up", now - timedelta(minutes=4), plan="a"),
                       *(track("lark", "Signed Up", now - timedelta(minutes=3 - n), plan=str(n)) for n in range(3))],
                      engine)
        engine.processor.run_until_caught_up()
        messages = sent(engine)
        [owl] = messages["owl"]
        assert owl["status"] == "deferred" and "quiet hours" in owl["reason"]
        assert datetime.fromisoformat(owl["send_at"]) > now + timedelta(hours=8)
        assert [m["status"] for m in messages["lark"]] == ["queued", "queued", "refused"]  # 2 marketing a day
        deliverer = engine.deliverer()
        assert deliverer is not None
        deliverer.run_once()
        assert sorted(e.rcpt_tos[0] for e in inbox.envelopes) == ["lark@example.com", "lark@example.com"]


def test_the_guards_are_the_configured_ones(config: Any, tmp_path: Any, smtp: tuple[Inbox, int]) -> None:
    """The config file's `messaging:` section: one marketing email a day, no quiet hours."""
    _, port = smtp
    (tmp_path / "persona.yaml").write_text("messaging:\n  frequency_caps: [{channel: marketing, max: 1, per: 1d}]\n"
                                           "  quiet_hours: null\n")
    settings = replace(config, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                       guards=load_config(env={}, config=str(tmp_path / "persona.yaml")).guards)
    journey = {**EMAIL_JOURNEY, "id": "promo", "reentry": "always", "steps": [
        {"send": {"channel": "marketing", "email": {"subject": "Sale", "text": "{{ event.properties.plan }}"}}}]}
    with Engine.open(settings) as engine:
        engine.journeys.save(journey)
        now = datetime.now(UTC)
        in_time_order([identify("owl", now - timedelta(minutes=5), email="owl@example.com", timezone=zone_at(23)),
                       track("owl", "Signed Up", now - timedelta(minutes=4), plan="a"),
                       track("owl", "Signed Up", now - timedelta(minutes=3), plan="b")], engine)
        engine.processor.run_until_caught_up()
        assert [m["status"] for m in sent(engine)["owl"]] == ["queued", "refused"]  # at 23:00 local: no quiet hours


def anonymous(anonymous_id: str, name: str, at: datetime, **properties: Any) -> Event:
    body = {"type": "track", "anonymousId": anonymous_id, "event": name, "properties": properties,
            "messageId": f"j-{next(_ids)}", "timestamp": at.isoformat()}
    outcome = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
    assert isinstance(outcome, Event)
    return outcome


def logs_in(user: str, anonymous_id: str, at: datetime) -> Event:
    body = {"type": "identify", "userId": user, "anonymousId": anonymous_id, "messageId": f"j-{next(_ids)}",
            "timestamp": at.isoformat()}
    outcome = normalize(body, index=0, source_id="test", defaults=BatchDefaults(received_at=datetime.now(UTC)))
    assert isinstance(outcome, Event)
    return outcome


def test_instances_follow_a_visitor_who_logs_in_to_a_known_profile(engine: Engine) -> None:
    """A visitor fills a cart anonymously, then logs in as a customer known from another device
    (two profiles merge) and orders that cart: the wait, started under the visitor's profile,
    sees the order under the merged one; no reminder. Re-entry counts both profiles' entries."""
    engine.journeys.save(CART)
    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=5)
    in_time_order([identify("dan", t0 - timedelta(hours=3), plan="basic"),
                   track("dan", "Product Added", t0 - timedelta(hours=2), cart_id="old")], engine)
    engine.processor.run_until_caught_up()  # dan's own cart, on another device: reminded
    in_time_order([anonymous("a1", "Product Added", t0, cart_id="c1")], engine)
    engine.processor.run_until_caught_up()  # the visitor waits for the order, under the anonymous profile
    [(visitor, waiting)] = [(i.profile_id, i) for i in engine.journey_store.instances("cart_abandoned")
                            if i.status == "waiting"]
    in_time_order([logs_in("dan", "a1", t0 + timedelta(minutes=1)),
                   track("dan", "Order Completed", t0 + timedelta(minutes=2), cart_id="c1"),
                   track("dan", "Product Added", t0 + timedelta(minutes=3), cart_id="c2")], engine)
    engine.processor.run_until_caught_up()
    engine.processor.run_until_caught_up()
    dan = engine.profiles.find("user_id:dan")
    assert visitor != dan.id or waiting.number == 1
    runs = engine.journey_store.instances("cart_abandoned")
    assert {i.profile_id for i in runs} == {dan.id}  # moved, none left under the merged-away profile
    assert sorted((i.number, i.entry["cart_id"], i.outcome) for i in runs) == [(1, "old", "completed"),
                                                                              (2, "c1", "completed")]
    assert [m["target"] for m in sent(engine)["dan"]] == ["crm"]  # the old cart's reminder only
    assert engine.journey_store.counts("cart_abandoned")["entered"] == 2  # c2: entered once already
    assert processing_of(engine)["journeys"]["pending_timers"] == 0


def test_a_webhook_payload_is_rendered_with_the_profile_and_its_recommendations(config: Any,
                                                                               tmp_path: Any) -> None:
    from persona.engine import recommend_for
    from tests.recommend.test_session import trained

    receiver = Receiver(secret=new_secret()).start()
    try:
        destinations = tmp_path / "destinations.yaml"
        destinations.write_text(yaml.safe_dump({"crm": {"url": receiver.url, "secret": receiver.secret}}))
        with Engine.open(replace(config, destinations=destinations)) as engine:
            payload = {"greeting": "Hi {{ profile.identifiers.user_id[0] }}", "plain": "a {single} brace",
                       "picks": "{% for r in recommendations %}{{ r.item_id }},{% endfor %}"}
            with pytest.raises(DefinitionError) as err:
                engine.journeys.save({"id": "bad", "entry": {"event": "Came Back"},
                                      "steps": [{"send": {"webhook": "crm", "payload": {"x": ["{{ oops"]}}}]})
            assert err.value.field == "steps[0].send.payload.x[0]"
            engine.journeys.save({"id": "welcome_back", "entry": {"event": "Came Back"},
                                  "steps": [{"send": {"webhook": "crm", "payload": payload}}]})
            models = trained(engine)  # after the save: the stage reads the journeys when it first runs
            root = next(u for u in models.histories.user_ids
                        if engine.state.combined([u])[u].identifiers.get("user_id"))
            user = engine.state.combined([root])[root].identifiers["user_id"][0]
            in_time_order([track(user, "Came Back", datetime.now(UTC))], engine)
            engine.processor.run_until_caught_up()
            expected = [r["item_id"] for r in recommend_for(engine.recommender, engine.catalog, root, 6)]
            deliverer = engine.deliverer()
            assert deliverer is not None
            deliverer.run_once()
        [(_, body)] = receiver.received
        data = json.loads(body)["data"]
        assert data["greeting"] == f"Hi {user}" and data["plain"] == "a {single} brace"
        assert expected and data["picks"] == "".join(f"{item_id}," for item_id in expected)
    finally:
        receiver.stop()
