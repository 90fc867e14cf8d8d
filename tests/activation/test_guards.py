"""Guards before a send, on both backends: suppression, the consent hook, frequency caps counted from
the send log (recorded in the caller's transaction), quiet hours in the customer's time zone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from persona.activation.guards import (
    SEND_LOG_MIGRATIONS,
    SUPPRESSION_MIGRATIONS,
    Decision,
    FrequencyCap,
    Guards,
    GuardSettings,
    QuietHours,
    SendLog,
    SuppressionList,
    timezone_of,
)
from persona.errors import ConfigError
from persona.storage.postgres import PostgresDatabase, PostgresURL
from persona.storage.sql import Database
from persona.storage.sqlite import SQLiteDatabase

pytestmark = pytest.mark.backends  # the contract suite: SQLite and PostgreSQL

NOON = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # a Wednesday, outside any quiet hours in UTC
ADA = {"email": ["ada@example.com"], "user_id": ["u1"]}


def open_db(store_url: str | None, tmp_path: Path, component: str) -> Database:
    migrations = SUPPRESSION_MIGRATIONS if component == "log" else SEND_LOG_MIGRATIONS
    if store_url is None:
        return SQLiteDatabase(tmp_path / f"{component}.db", migrations, synchronous="NORMAL")
    return PostgresDatabase(PostgresURL.parse(store_url), migrations, component=component)


@pytest.fixture
def dbs(store_url: str | None, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    log_db, state_db = open_db(store_url, tmp_path, "log"), open_db(store_url, tmp_path, "state")
    yield log_db, state_db
    log_db.close()
    state_db.close()


@pytest.fixture
def guards(dbs: tuple[Database, Database]) -> Guards:
    return Guards(SuppressionList(dbs[0]), SendLog(dbs[1]))


def send(guards: Guards, n: int, at: datetime, profile: str = "p1", channel: str = "marketing") -> bool:
    return guards.sends.record(f"{profile}-{channel}-{n}", profile, channel, at)


def test_two_marketing_messages_a_day_then_refused_until_the_window_moves_on(guards: Guards) -> None:
    assert guards.check("p1", ADA, "marketing", NOON) == Decision.allow()
    send(guards, 1, NOON)
    assert guards.check("p1", ADA, "marketing", NOON + timedelta(hours=1)).allowed
    send(guards, 2, NOON + timedelta(hours=1))
    third = guards.check("p1", ADA, "marketing", NOON + timedelta(hours=2))
    assert third.outcome == "refused" and third.reason == "frequency cap: at most 2 marketing messages per day"
    assert not guards.check("p1", ADA, "marketing", NOON + timedelta(hours=23, minutes=59)).allowed
    assert guards.check("p1", ADA, "marketing", NOON + timedelta(hours=24)).allowed  # the first has left the window
    assert guards.check("p2", {}, "marketing", NOON + timedelta(hours=2)).allowed  # per profile
    assert guards.check("p1", ADA, "transactional", NOON + timedelta(hours=2)).allowed  # per channel: no cap
    assert guards.sends.count("p1", "marketing", NOON - timedelta(days=1), NOON + timedelta(days=1)) == 2
    assert guards.sends.prune(NOON + timedelta(minutes=30)) == 1


def test_several_caps_per_channel(dbs: tuple[Database, Database]) -> None:
    caps = (FrequencyCap("marketing", 1, 3600), FrequencyCap("marketing", 3, 7 * 86_400))
    guards = Guards(SuppressionList(dbs[0]), SendLog(dbs[1]), GuardSettings(caps=caps, quiet_hours=None))
    for hour in range(3):
        assert guards.check("p1", ADA, "marketing", NOON + timedelta(hours=hour)).allowed
        send(guards, hour, NOON + timedelta(hours=hour))
    assert guards.check("p1", ADA, "marketing", NOON + timedelta(minutes=150)).reason == (
        "frequency cap: at most 1 marketing message per hour")
    assert guards.check("p1", ADA, "marketing", NOON + timedelta(hours=5)).reason == (
        "frequency cap: at most 3 marketing messages per 7 days")
    with pytest.raises(ConfigError):
        FrequencyCap("marketing", 2, 0)


def test_a_send_is_recorded_in_the_callers_transaction(guards: Guards, dbs: tuple[Database, Database]) -> None:
    state = dbs[1]
    state.write(lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS outbox_test (id TEXT PRIMARY KEY)"))

    def send_and_fail(conn: object) -> None:
        conn.execute("INSERT INTO outbox_test VALUES ('m1')")  # type: ignore[attr-defined]
        assert guards.sends.record_in(conn, "m1", "p1", "marketing", NOON)  # type: ignore[arg-type]
        raise RuntimeError("the caller's own write failed")

    with pytest.raises(RuntimeError):
        state.write(send_and_fail)
    assert guards.sends.count("p1", "marketing", NOON - timedelta(1), NOON + timedelta(1)) == 0  # rolled back together

    def send_ok(conn: object) -> bool:
        conn.execute("INSERT INTO outbox_test VALUES ('m1')")  # type: ignore[attr-defined]
        return guards.sends.record_in(conn, "m1", "p1", "marketing", NOON)  # type: ignore[arg-type]

    assert state.write(send_ok)
    assert guards.sends.record("m1", "p1", "marketing", NOON)  # the same send again: recorded once
    assert guards.sends.count("p1", "marketing", NOON - timedelta(1), NOON + timedelta(1)) == 1


def test_concurrent_sends_cannot_take_more_than_the_cap(store_url: str | None, tmp_path: Path,
                                                        dbs: tuple[Database, Database]) -> None:
    other = open_db(store_url, tmp_path, "state")  # a second process's writer on the same store
    try:
        logs = [SendLog(dbs[1]), SendLog(other)]
        caps = [FrequencyCap("marketing", 2, 86_400)]
        results: list[bool] = []

        def racer(i: int) -> None:
            results.append(logs[i % 2].record(f"m{i}", "p1", "marketing", NOON + timedelta(seconds=i), caps))

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 6 + [True] * 2
        assert logs[0].count("p1", "marketing", NOON - timedelta(1), NOON + timedelta(1)) == 2
    finally:
        other.close()


def test_quiet_hours_across_midnight_defer_to_their_end(guards: Guards) -> None:
    late = datetime(2026, 6, 10, 22, 30, tzinfo=UTC)
    decision = guards.check("p1", ADA, "marketing", late)
    assert decision == Decision("deferred", "quiet hours 21:00-08:00 in UTC", datetime(2026, 6, 11, 8, 0, tzinfo=UTC))
    early = guards.check("p1", ADA, "marketing", datetime(2026, 6, 11, 3, 0, tzinfo=UTC))
    assert early.deferred_until == datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    assert guards.check("p1", ADA, "marketing", datetime(2026, 6, 11, 8, 0, tzinfo=UTC)).allowed
    assert guards.check("p1", ADA, "marketing", datetime(2026, 6, 10, 20, 59, tzinfo=UTC)).allowed
    assert guards.check("p1", ADA, "transactional", late).allowed  # a receipt is not held back


def test_quiet_hours_are_the_customers_own(guards: Guards) -> None:
    # 22:30 UTC is 07:30 the next morning in Tokyo (quiet until 08:00) and 15:30 in Los Angeles.
    late = datetime(2026, 6, 10, 22, 30, tzinfo=UTC)
    tokyo = guards.check("p1", ADA, "marketing", late, "Asia/Tokyo")
    assert tokyo.deferred_until == datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    assert guards.check("p1", ADA, "marketing", late, "America/Los_Angeles").allowed
    # 06:00 UTC is 23:00 the day before in Los Angeles: quiet until 08:00 there, 15:00 UTC
    assert guards.check("p1", ADA, "marketing", datetime(2026, 6, 11, 6, 0, tzinfo=UTC),
                        "America/Los_Angeles").deferred_until == datetime(2026, 6, 11, 15, 0, tzinfo=UTC)
    unknown = guards.check("p1", ADA, "marketing", late, "Mars/Olympus_Mons")  # falls back to UTC
    assert unknown.deferred_until == datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    assert timezone_of({"timezone": "Europe/Paris"}, {"timezone": "Asia/Tokyo"}) == "Europe/Paris"
    assert timezone_of({}, {"timezone": "Asia/Tokyo"}) == "Asia/Tokyo" and timezone_of({"timezone": 3}) is None


def test_quiet_hours_over_a_daylight_saving_change(guards: Guards) -> None:
    # Berlin moves from UTC+1 to UTC+2 at 02:00 on 29 March 2026: the night is an hour shorter.
    evening = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 in Berlin
    assert guards.check("p1", ADA, "marketing", evening, "Europe/Berlin").deferred_until == (
        datetime(2026, 3, 29, 6, 0, tzinfo=UTC))  # 08:00 CEST, 9 hours later, not 10
    # and back on 25 October 2026: 08:00 CET is 07:00 UTC
    assert guards.check("p1", ADA, "marketing", datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
                        "Europe/Berlin").deferred_until == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_quiet_hours_within_a_day_and_their_settings(dbs: tuple[Database, Database]) -> None:
    lunch = QuietHours(time(12, 0), time(13, 30), frozenset({"marketing", "push"}))
    guards = Guards(SuppressionList(dbs[0]), SendLog(dbs[1]), GuardSettings(caps=(), quiet_hours=lunch))
    assert guards.check("p1", ADA, "push", NOON).deferred_until == NOON + timedelta(minutes=90)
    assert guards.check("p1", ADA, "push", NOON + timedelta(minutes=90)).allowed
    assert guards.check("p1", ADA, "push", NOON - timedelta(minutes=1)).allowed
    with pytest.raises(ConfigError):
        QuietHours(time(8), time(8))
    with pytest.raises(ValueError, match="time zone"):
        guards.check("p1", ADA, "push", datetime(2026, 6, 10, 12, 0))


def test_suppressed_identifiers_are_never_messaged(guards: Guards) -> None:
    suppressions = guards.suppressions
    assert suppressions.add("email", " Ada@Example.com ", "complained")
    assert not suppressions.add("email", "ada@example.com", "again")  # already there; the reason is kept
    assert suppressions.contains("email", "ADA@example.com") and not suppressions.contains("user_id", "ada@example.com")
    decision = guards.check("p1", ADA, "transactional", NOON)  # whatever the channel
    assert decision == Decision.refuse("suppressed (email ada@example.com: complained)")
    assert guards.check("p2", {"email": ["bob@example.com"]}, "marketing", NOON).allowed

    suppressions.add("*", "u9")  # any kind
    assert guards.check("p9", {"external_id": ["u9"]}, "marketing", NOON).outcome == "refused"
    suppressions.add("phone", "+4915100000")
    assert [(s.kind, s.value, s.reason) for s in suppressions.list()] == [
        ("*", "u9", None), ("email", "ada@example.com", "complained"), ("phone", "+4915100000", None)]
    assert [s.value for s in suppressions.list(limit=1, after=("*", "u9"))] == ["ada@example.com"]
    assert suppressions.count() == 3
    assert suppressions.remove("email", "ADA@example.com") and not suppressions.remove("email", "ada@example.com")
    assert guards.check("p1", ADA, "transactional", NOON).allowed


def test_the_consent_hook_is_asked_after_suppression(dbs: tuple[Database, Database]) -> None:
    asked: list[tuple[str, str]] = []

    def consent(profile_id: str, identifiers: object, purpose: str) -> bool:
        asked.append((profile_id, purpose))
        return purpose != "marketing"

    guards = Guards(SuppressionList(dbs[0]), SendLog(dbs[1]), consent=consent)
    assert guards.check("p1", ADA, "marketing", NOON) == Decision.refuse("no consent to marketing messages")
    assert guards.check("p1", ADA, "transactional", NOON).allowed
    assert asked == [("p1", "marketing"), ("p1", "transactional")]
