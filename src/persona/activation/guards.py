"""Over-personalization guards: whether a message may go to a customer now, asked before each send.

In the order `Guards.check` asks:

1. **Suppression** (`SuppressionList`, in the log's store since it is configuration, not derived:
   a replay must never forget it): identifiers that must never be messaged — an email address
   that bounced or complained, a user id a support agent blocked. Refused.
2. **Consent** for the message's purpose: persona does not record consent yet, so this is a
   hook (`ConsentCheck`) whose default, `consent_not_recorded`, allows everything. Refused.
3. **Frequency caps** (`FrequencyCap`): at most `max` messages of a channel per profile in any
   window of `per` seconds, counted from the `SendLog` (in the state store). Refused. Sends are
   counted `per` seconds either side of the moment asked about: one recorded with a later time
   (another node's clock) counts as well.
4. **Quiet hours** (`QuietHours`) in the customer's time zone (a `timezone` trait or the
   event's `context.timezone`; UTC when unknown or invalid): the send is deferred to the end of
   the quiet hours, and `Decision.deferred_until` says when it may go (the caller checks again then).

Checking and recording are two steps: the caller records the send with `SendLog.record_in(conn,
…)` in the transaction that records its own state (an outbox row, a journey step), so a send is
counted exactly when it is committed. Given the caps, `record_in` counts again inside that
transaction and refuses if a concurrent send took the last slot: on SQLite the single writer
serializes it, on PostgreSQL a transaction-level advisory lock per profile and channel does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from persona.errors import ConfigError
from persona.log.events import from_micros, to_micros
from persona.segments.definitions import DefinitionError, parse_duration
from persona.storage.sql import Connection, Database, Migration, where_in

log = logging.getLogger(__name__)

SUPPRESSION_MIGRATIONS = [  # the log's store
    Migration(800, "suppression list", [
        "CREATE TABLE suppressions (kind TEXT NOT NULL, value TEXT NOT NULL, reason TEXT,"
        " added_at INTEGER NOT NULL, PRIMARY KEY (kind, value))",
        "CREATE INDEX suppressions_value ON suppressions (value)",
    ], postgres=[
        "CREATE TABLE suppressions (kind TEXT NOT NULL, value TEXT NOT NULL, reason TEXT,"
        " added_at BIGINT NOT NULL, PRIMARY KEY (kind, value))",
        "CREATE INDEX suppressions_value ON suppressions (value)",
    ]),
]

SEND_LOG_MIGRATIONS = [  # the state store
    Migration(810, "send log", [
        "CREATE TABLE send_log (send_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL, channel TEXT NOT NULL,"
        " sent_at INTEGER NOT NULL)",
        "CREATE INDEX send_log_profile ON send_log (profile_id, channel, sent_at)",
        "CREATE INDEX send_log_sent_at ON send_log (sent_at)",
    ], postgres=[
        "CREATE TABLE send_log (send_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL, channel TEXT NOT NULL,"
        " sent_at BIGINT NOT NULL)",
        "CREATE INDEX send_log_profile ON send_log (profile_id, channel, sent_at)",
        "CREATE INDEX send_log_sent_at ON send_log (sent_at)",
    ]),
]

ANY = "*"  # the suppression kind that matches an identifier value of any kind


# -- configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrequencyCap:
    """At most `max` messages on `channel` to one profile in any `per` seconds."""

    channel: str
    max: int
    per: float

    def __post_init__(self) -> None:
        if self.max < 0 or self.per <= 0:
            raise ConfigError(f"frequency cap for {self.channel!r}: max must be ≥ 0 and per > 0",
                              field="frequency_caps")

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.per)

    def describe(self) -> str:
        return f"at most {self.max} {self.channel} message{'s' if self.max != 1 else ''} per {_duration(self.per)}"


@dataclass(frozen=True)
class QuietHours:
    """No message on `channels` between `start` and `end`, local time; `start` > `end` spans midnight."""

    start: time = time(21, 0)
    end: time = time(8, 0)
    channels: frozenset[str] = frozenset({"marketing"})

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ConfigError("quiet hours must start and end at different times", field="quiet_hours")

    def ends_after(self, local: datetime) -> datetime | None:
        """When the quiet hours that `local` falls in end (local time), or None if it is outside them."""
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            quiet, day = self.start <= now < self.end, local.date()
        else:  # across midnight: 21:00-08:00
            quiet = now >= self.start or now < self.end
            day = local.date() + timedelta(days=1) if now >= self.start else local.date()
        if not quiet:
            return None
        return datetime.combine(day, self.end, tzinfo=local.tzinfo)


@dataclass(frozen=True)
class GuardSettings:
    caps: tuple[FrequencyCap, ...] = (FrequencyCap("marketing", 2, 86_400.0),)
    quiet_hours: QuietHours | None = QuietHours()
    default_timezone: str = "UTC"

    @property
    def longest_window(self) -> timedelta:
        return max((cap.window for cap in self.caps), default=timedelta(0))


def parse_guard_settings(raw: Any, path: str = "messaging") -> GuardSettings:
    """The config file's `messaging:` section; what it leaves out keeps its default.

        messaging:
          frequency_caps: [{channel: marketing, max: 2, per: 1d}]   # [] for none
          quiet_hours: {start: "21:00", end: "08:00", channels: [marketing]}   # null for none
          default_timezone: Europe/Paris
    """
    if raw is None:
        return GuardSettings()
    body = _section(raw, path, {"frequency_caps", "quiet_hours", "default_timezone"})
    defaults = GuardSettings()
    caps = defaults.caps
    if "frequency_caps" in body:
        if not isinstance(body["frequency_caps"], list):
            raise ConfigError("must be a list of {channel, max, per}", field=f"{path}.frequency_caps")
        caps = tuple(_cap(entry, f"{path}.frequency_caps[{i}]") for i, entry in enumerate(body["frequency_caps"]))
    quiet = defaults.quiet_hours
    if "quiet_hours" in body:
        quiet = None if body["quiet_hours"] is None else _quiet_hours(body["quiet_hours"], f"{path}.quiet_hours")
    zone = body.get("default_timezone", defaults.default_timezone)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{zone!r} is not an IANA time zone such as Europe/Paris",
                          field=f"{path}.default_timezone") from None
    return GuardSettings(caps, quiet, zone)


def _section(raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping of {', '.join(sorted(allowed))}", field=path)
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r}; expected {', '.join(sorted(allowed))}", field=f"{path}.{key}")
    return raw


def _cap(raw: Any, path: str) -> FrequencyCap:
    body = _section(raw, path, {"channel", "max", "per"})
    channel, most = body.get("channel"), body.get("max")
    if not isinstance(channel, str) or not channel:
        raise ConfigError("a cap names the channel it counts (marketing, transactional, ...)", field=f"{path}.channel")
    if not isinstance(most, int) or isinstance(most, bool) or most < 0:
        raise ConfigError("must be a whole number of messages, 0 or more", field=f"{path}.max")
    return FrequencyCap(channel, most, float(_seconds(body.get("per"), f"{path}.per")))


def _quiet_hours(raw: Any, path: str) -> QuietHours:
    body = _section(raw, path, {"start", "end", "channels"})
    start, end = _clock(body.get("start", "21:00"), f"{path}.start"), _clock(body.get("end", "08:00"), f"{path}.end")
    channels = body.get("channels", ["marketing"])
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise ConfigError("must be a list of channel names", field=f"{path}.channels")
    if start == end:
        raise ConfigError("quiet hours must start and end at different times", field=f"{path}.end")
    return QuietHours(start, end, frozenset(channels))


def _clock(raw: Any, path: str) -> time:
    try:
        return time.fromisoformat(raw) if isinstance(raw, str) else time.fromisoformat("")
    except ValueError:
        raise ConfigError(f"{raw!r} is not a time of day like \"21:00\"", field=path) from None


def _seconds(raw: Any, path: str) -> int:
    try:
        return parse_duration(raw, path)
    except DefinitionError as exc:
        raise ConfigError(exc.message, field=path) from None


# -- the answer ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    outcome: Literal["allowed", "deferred", "refused"]
    reason: str | None = None
    deferred_until: datetime | None = None  # UTC, when `deferred`

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"

    @classmethod
    def allow(cls) -> Decision:
        return cls("allowed")

    @classmethod
    def defer(cls, until: datetime, reason: str) -> Decision:
        return cls("deferred", reason, until.astimezone(UTC))

    @classmethod
    def refuse(cls, reason: str) -> Decision:
        return cls("refused", reason)


# Consent per purpose does not exist in persona yet. When it does, pass a check that looks it up:
# (profile id, identifiers, channel/purpose) -> whether the customer agreed to such messages.
ConsentCheck = Callable[[str, Mapping[str, Sequence[str]], str], bool]


def consent_not_recorded(profile_id: str, identifiers: Mapping[str, Sequence[str]], channel: str) -> bool:
    """The default `ConsentCheck` while persona records no consent: every purpose is allowed."""
    return True


# -- the stores ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suppression:
    kind: str
    value: str
    reason: str | None
    added_at: datetime


def normalize(kind: str, value: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces; other identifiers as given."""
    value = value.strip()
    return value.lower() if kind in ("email", ANY) and "@" in value else value


class SuppressionList:
    """Identifiers never to message, by kind (`email`, `user_id`, `phone`, …; `*`: any kind)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, kind: str, value: str, reason: str | None = None, at: datetime | None = None) -> bool:
        """Suppress one identifier; False if it already was (its reason is kept)."""
        return self.add_many([(kind, value, reason)], at) == 1

    def add_many(self, entries: Iterable[tuple[str, str, str | None]], at: datetime | None = None) -> int:
        """Suppress (kind, value, reason) entries in one transaction; how many were new."""
        added_at = to_micros(at or datetime.now(UTC))
        rows = list({(kind, normalize(kind, value)): (kind, normalize(kind, value), reason, added_at)
                     for kind, value, reason in entries}.values())

        def write(conn: Connection) -> int:
            return sum(conn.execute("INSERT INTO suppressions (kind, value, reason, added_at) VALUES (?, ?, ?, ?)"
                                    " ON CONFLICT (kind, value) DO NOTHING", row).rowcount for row in rows)

        return int(self.db.write(write))

    def remove(self, kind: str, value: str) -> bool:
        key = (kind, normalize(kind, value))
        return bool(self.db.write(lambda conn: conn.execute(
            "DELETE FROM suppressions WHERE kind = ? AND value = ?", key).rowcount))

    def contains(self, kind: str, value: str) -> bool:
        return self.find({kind: [value]}) is not None

    def find(self, identifiers: Mapping[str, Iterable[str]]) -> Suppression | None:
        """The suppression that matches any of a profile's identifiers (kind -> values), if one does."""
        wanted = {(kind, normalize(kind, v)) for kind, values in identifiers.items() for v in values}
        if not wanted:
            return None
        clause, params = where_in(self.db.dialect, "value", sorted({v for _, v in wanted}))
        rows = self.db.query(f"SELECT kind, value, reason, added_at FROM suppressions WHERE {clause}"
                             " ORDER BY kind, value", params)
        for kind, value, reason, added_at in rows:
            if (kind, value) in wanted or (kind == ANY and any(value == normalize(ANY, v) for _, v in wanted)):
                return Suppression(kind, value, reason, from_micros(added_at))
        return None

    def list(self, limit: int = 1000, after: tuple[str, str] | None = None) -> list[Suppression]:
        """A page in (kind, value) order; pass the last one's (kind, value) as `after` for the next."""
        where, params = ("WHERE (kind, value) > (?, ?)", list(after)) if after else ("", [])
        rows = self.db.query(f"SELECT kind, value, reason, added_at FROM suppressions {where}"
                             " ORDER BY kind, value LIMIT ?", [*params, limit])
        return [Suppression(k, v, r, from_micros(a)) for k, v, r, a in rows]

    def count(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM suppressions")
        return int(row[0]) if row else 0


class SendLog:
    """Every message sent, per profile and channel: what frequency caps count."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_in(self, conn: Connection, send_id: str, profile_id: str, channel: str, at: datetime,
                  caps: Iterable[FrequencyCap] = ()) -> bool:
        """Record a send inside the caller's transaction. Idempotent by `send_id` (a retried write
        records it once). With `caps`, counts again first and returns False, recording nothing, if
        the send would go over one of them (a concurrent send took the last slot)."""
        if conn.execute("SELECT 1 FROM send_log WHERE send_id = ?", (send_id,)).fetchone() is not None:
            return True
        relevant = [cap for cap in caps if cap.channel == channel]
        if relevant and self.db.dialect == "postgres":
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(profile_id, channel),))
        for cap in relevant:
            if _count(conn, profile_id, channel, at - cap.window, at + cap.window) >= cap.max:
                return False
        conn.execute("INSERT INTO send_log (send_id, profile_id, channel, sent_at) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (send_id) DO NOTHING", (send_id, profile_id, channel, to_micros(at)))
        return True

    def record(self, send_id: str, profile_id: str, channel: str, at: datetime,
               caps: Iterable[FrequencyCap] = ()) -> bool:
        """`record_in` in a transaction of its own."""
        caps = list(caps)
        return bool(self.db.write(lambda conn: self.record_in(conn, send_id, profile_id, channel, at, caps)))

    def count(self, profile_id: str, channel: str, since: datetime, until: datetime) -> int:
        """Sends strictly between `since` and `until`."""
        clause = "profile_id = ? AND channel = ? AND sent_at > ? AND sent_at < ?"
        row = self.db.query_one(f"SELECT count(*) FROM send_log WHERE {clause}",
                                (profile_id, channel, to_micros(since), to_micros(until)))
        return int(row[0]) if row else 0

    def prune(self, before: datetime) -> int:
        """Forget sends older than `before` (older than the longest cap window: no cap counts them)."""
        cutoff = to_micros(before)
        return int(self.db.write(lambda conn: conn.execute("DELETE FROM send_log WHERE sent_at < ?",
                                                           (cutoff,)).rowcount))


def _count(conn: Connection, profile_id: str, channel: str, since: datetime, until: datetime) -> int:
    row = conn.execute("SELECT count(*) FROM send_log WHERE profile_id = ? AND channel = ? AND sent_at > ?"
                       " AND sent_at < ?", (profile_id, channel, to_micros(since), to_micros(until))).fetchone()
    return int(row[0])


def _lock_key(profile_id: str, channel: str) -> int:
    digest = hashlib.blake2b(f"send_log:{profile_id}:{channel}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- the check -------------------------------------------------------------------------------------
class Guards:
    def __init__(self, suppressions: SuppressionList, sends: SendLog, settings: GuardSettings = GuardSettings(),
                 consent: ConsentCheck = consent_not_recorded) -> None:
        self.suppressions = suppressions
        self.sends = sends
        self.settings = settings
        self.consent = consent

    def check(self, profile_id: str, identifiers: Mapping[str, Sequence[str]], channel: str,
              now: datetime, timezone: str | None = None, unrecorded: Sequence[datetime] = ()) -> Decision:
        """May a `channel` message go to this profile at `now` (aware)? `timezone`: the customer's
        IANA zone (see `timezone_of`); the default zone when None or unknown. `unrecorded`: when
        earlier sends to this profile and channel went that the send log does not hold yet (the
        caller's own transaction, not committed)."""
        if now.tzinfo is None:
            raise ValueError("`now` must carry a time zone")
        if (hit := self.suppressions.find(identifiers)) is not None:
            why = f": {hit.reason}" if hit.reason else ""
            return Decision.refuse(f"suppressed ({hit.kind} {hit.value}{why})")
        if not self.consent(profile_id, identifiers, channel):
            return Decision.refuse(f"no consent to {channel} messages")
        for cap in self.settings.caps:
            if cap.channel != channel:
                continue
            earlier = sum(now - cap.window <= at <= now + cap.window for at in unrecorded)
            if self.sends.count(profile_id, channel, now - cap.window, now + cap.window) + earlier >= cap.max:
                return Decision.refuse(f"frequency cap: {cap.describe()}")
        quiet = self.settings.quiet_hours
        if quiet is not None and channel in quiet.channels:
            zone = self._zone(timezone)
            if (end := quiet.ends_after(now.astimezone(zone))) is not None:
                return Decision.defer(end, f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} in {zone.key}")
        return Decision.allow()

    def _zone(self, name: str | None) -> ZoneInfo:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                log.debug("unknown time zone %r; using %s", name, self.settings.default_timezone)
        return ZoneInfo(self.settings.default_timezone)


def timezone_of(traits: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str | None:
    """The customer's time zone: a `timezone` trait, else the triggering event's `context.timezone`
    (what Segment's SDKs send)."""
    for value in (traits.get("timezone"), (context or {}).get("timezone")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    return f"{seconds:g} s"

