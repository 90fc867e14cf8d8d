"""Webhooks the Standard Webhooks way (https://www.standardwebhooks.com/), and where they go.

Every delivery is a POST of a JSON body with three headers: `webhook-id` (the delivery's
idempotency key: the same for every retry, so a receiver can drop duplicates),
`webhook-timestamp` (Unix seconds at sending) and `webhook-signature`: `v1,` and the base64
HMAC-SHA256 of `{id}.{timestamp}.{body}` under the destination's secret, which is written
`whsec_` + base64 of the key's bytes. `sign` makes the signature, `verify` is what a
receiver runs (docs/activation.md shows it with the standard library alone).

Destinations are configuration: a YAML mapping `name -> {url, secret, ...}` parsed by
`parse_destinations`, every mistake named by its field path (`destinations.crm.timeout`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from persona.errors import AuthError, ConfigError
from persona.segments.definitions import DefinitionError, parse_duration
from persona.yamlfile import read_yaml

SECRET_PREFIX = "whsec_"
TOLERANCE = 300  # seconds a receiver accepts between the timestamp and its clock, either way
FIELDS = {"url", "secret", "secret_env", "timeout", "max_concurrency", "max_attempts", "backoff_base",
          "backoff_max"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DestinationError(ConfigError):
    code = "invalid_destination"


class SignatureError(AuthError):
    """A delivery that does not verify: missing headers, stale timestamp or wrong signature."""

    code = "invalid_signature"


# -- signing -------------------------------------------------------------------------------------
def new_secret() -> str:
    """A fresh secret for a destination: 32 random bytes, `whsec_`-prefixed base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for (the `whsec_` prefix is optional, as in the reference libraries)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is `whsec_` followed by base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    data = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + data, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one send of a body."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes | str, tolerance: int = TOLERANCE,
           now: float | None = None) -> None:
    """Check a received delivery; raises SignatureError unless its headers are complete, its
    timestamp within `tolerance` seconds of now (either way: a replayed request goes stale)
    and one of the space-separated `v1,` signatures matches (compared in constant time)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp {stamp!r} is not Unix seconds") from None
    clock = time.time() if now is None else now
    if abs(clock - ts) > tolerance:
        raise SignatureError(f"webhook-timestamp is {clock - ts:+.0f} s off (tolerance {tolerance} s)")
    expected = sign(secret, msg_id, ts, body).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in signatures.split(" ")
               if given.startswith("v1,")):
        raise SignatureError("no webhook-signature matches")


# -- destinations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Destination:
    """A receiver of webhooks and how to treat it."""

    name: str
    url: str
    secret: str
    timeout: float = 10.0          # seconds for each of connect, write, read
    max_concurrency: int = 4       # requests in flight at once, per deliverer
    max_attempts: int = 8          # then the delivery is dead
    backoff_base: float = 30.0     # seconds: the ceiling of the first retry's wait, doubling after each
    backoff_max: float = 3600.0    # seconds: the most a ceiling grows to

    def backoff_ceiling(self, attempts: int) -> float:
        """The longest wait after `attempts` failed attempts (full jitter waits uniformly up to it)."""
        return min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1))

    @property
    def lease(self) -> float:
        """How long a claim lasts: beyond any request's end (connect + write + read timeouts) with room."""
        return 3 * self.timeout + 30.0


def parse_destinations(raw: Any, path: str = "destinations", env: Mapping[str, str] | None = None
                       ) -> dict[str, Destination]:
    """A mapping `name -> destination`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DestinationError("destinations must be a mapping of destination name to settings", field=path)
    return {str(name): parse_destination(str(name), body, f"{path}.{name}", env) for name, body in raw.items()}


def parse_destination(name: str, raw: Any, path: str, env: Mapping[str, str] | None = None) -> Destination:
    if not _NAME.match(name):
        raise DestinationError(f"{name!r} is not a destination name (letters, digits, _ . -; up to 64)", field=path)
    if not isinstance(raw, dict):
        raise DestinationError("a destination must be a mapping with at least `url` and `secret`", field=path)
    for key in raw:
        if key not in FIELDS:
            raise DestinationError(f"unknown setting {key!r} (known: {', '.join(sorted(FIELDS))})",
                                   field=f"{path}.{key}")
    defaults = Destination(name, "", "")
    base = _seconds(raw, "backoff_base", defaults.backoff_base, path)
    ceiling = _seconds(raw, "backoff_max", defaults.backoff_max, path)
    if ceiling < base:
        raise DestinationError(f"backoff_max {ceiling} s is below backoff_base {base} s", field=f"{path}.backoff_max")
    return Destination(name=name, url=_url(raw.get("url"), f"{path}.url"), secret=_secret(raw, path, env),
                       timeout=_seconds(raw, "timeout", defaults.timeout, path),
                       max_concurrency=_count(raw, "max_concurrency", defaults.max_concurrency, path),
                       max_attempts=_count(raw, "max_attempts", defaults.max_attempts, path),
                       backoff_base=base, backoff_max=ceiling)


def read_destinations_file(file: Path, env: Mapping[str, str] | None = None) -> dict[str, Destination]:
    """The YAML file a `destinations` setting would name: a mapping `destination name -> settings`."""
    return parse_destinations(read_yaml(file, DestinationError, "destinations"), env=env)


def _url(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise DestinationError("a destination needs `url`, the http(s) address deliveries are POSTed to", field=path)
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise DestinationError(f"{raw!r} is not a URL: {exc}", field=path) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise DestinationError(f"{raw!r} is not an http:// or https:// URL", field=path)
    return str(url)


def _secret(raw: dict[str, Any], path: str, env: Mapping[str, str] | None) -> str:
    if ("secret" in raw) == ("secret_env" in raw):
        raise DestinationError("give `secret` (whsec_...) or `secret_env` (the variable holding it), one of them",
                               field=f"{path}.secret")
    if "secret" in raw:
        value, at = raw["secret"], f"{path}.secret"
    else:
        variable, at = raw["secret_env"], f"{path}.secret_env"
        value = (os.environ if env is None else env).get(variable) if isinstance(variable, str) else None
        if value is None:
            raise DestinationError(f"environment variable {variable!r} is not set", field=at)
    if not isinstance(value, str):
        raise DestinationError("a secret is a string: whsec_ followed by base64", field=at)
    try:
        key = secret_key(value)
    except ValueError as exc:
        raise DestinationError(str(exc), field=at) from None
    if not 24 <= len(key) <= 64:
        raise DestinationError(f"a secret's key must be 24 to 64 bytes, not {len(key)} (`persona.activation."
                               "webhooks.new_secret()` makes one)", field=at)
    return value


def _seconds(raw: dict[str, Any], key: str, default: float, path: str) -> float:
    """A positive number of seconds, or a duration like 30s, 15m, 1h."""
    value = raw.get(key, default)
    if isinstance(value, str):
        try:
            return float(parse_duration(value, f"{path}.{key}"))
        except DefinitionError as exc:
            raise DestinationError(exc.message, field=f"{path}.{key}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DestinationError(f"{value!r} is not a duration (seconds above 0, or like 30s, 15m, 1h)",
                               field=f"{path}.{key}")
    return float(value)


def _count(raw: dict[str, Any], key: str, default: int, path: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DestinationError(f"{value!r} is not a whole number of 1 or more", field=f"{path}.{key}")
    return value
