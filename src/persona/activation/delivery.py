"""The deliverer: a background thread that sends the outbox's due deliveries to their webhooks.

It only reads and writes the state store's `deliveries` table, from a thread of its own (a
process of its own if run apart), so a slow or dead receiver never holds up ingest or
processing. Each turn, for each configured destination, it claims as many due deliveries as
the destination has free slots (`max_concurrency` requests in flight at once) and POSTs each
from that destination's thread pool; a finished request frees its slot and wakes the loop.

What an answer means (`outcome`):

- 2xx: delivered.
- 408, 409, 425, 429 (timeout, conflict, too early, too many requests) and every 5xx: the
  receiver may take it later, so retry. So are timeouts and connection errors.
- any other status (other 4xx; 3xx, since redirects are not followed: a signed body is not
  re-sent to an address the configuration did not name): dead at once. The request as sent
  will not get better by repeating it; fix the receiver or the destination and `replay`.

A retry waits with exponential backoff and full jitter: uniformly between 0 and
`min(backoff_max, backoff_base * 2^(attempts-1))` seconds, or what a numeric `Retry-After`
asks if that is longer (up to `backoff_max`). After `max_attempts` attempts the delivery is
dead. Delivery is at-least-once: a deliverer that dies after the receiver answered but
before recording it leaves the claim to expire, and the delivery is sent again with the
same `webhook-id`.

**A receiver that is down is one problem, not one per delivery.** After `DOWN_AFTER` retryable
failures in a row a destination is paused (a circuit breaker): nothing is claimed for it, so
waiting deliveries spend no attempts and an outage of any length dead-letters nothing. At the
end of the pause one delivery goes as a probe; if it fails, the pause starts again, doubling
from `PROBE_AFTER` up to `PROBE_EVERY_MAX`. Any answer that is not a retryable failure means
the receiver is back: the deliveries waiting on a retry are brought forward and the backlog
drains at once, at `max_concurrency`, instead of each waiting out its own backoff.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from persona.activation.email import DeliveryError, Mailer
from persona.activation.outbox import DEAD, DELIVERED, Delivery, Outbox
from persona.activation.webhooks import Destination, signed_headers
from persona.log.events import now_micros

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
EMAIL = "email"  # the destination of email steps: sent through SMTP, with the same retries
POLL_INTERVAL = 1.0  # seconds between looks at the outbox when nothing was due
DOWN_AFTER = 5          # retryable failures in a row that pause a destination
PROBE_AFTER = 1.0       # seconds of the first pause; each failed probe doubles it...
PROBE_EVERY_MAX = 60.0  # ...up to this
RETRY = "retry"
USER_AGENT = "persona-webhooks"


def outcome(status_code: int) -> str:
    """`delivered`, `retry` or `dead` for an HTTP status (see the module docstring)."""
    if 200 <= status_code < 300:
        return DELIVERED
    if status_code >= 500 or status_code in RETRYABLE_4XX:
        return RETRY
    return DEAD


@dataclass
class Health:
    """A destination as this deliverer sees it."""

    failures: int = 0       # retryable failures in a row
    pauses: int = 0         # pauses in a row: > 0 while the destination is down
    paused_until: int = 0   # µs: no claim before, then one probe at a time

    @property
    def down(self) -> bool:
        return self.pauses > 0


@dataclass(frozen=True)
class Attempt:
    """How one send went: the status if an answer came, the error in words otherwise."""

    status_code: int | None
    error: str | None
    retry_after: float | None = None

    @property
    def result(self) -> str:
        return RETRY if self.status_code is None else outcome(self.status_code)


class Deliverer:
    """Sends due deliveries to the configured destinations, from a background thread.

    `start()` and `stop()`; `run_once()` does one turn synchronously (tests, a CLI `send`)."""

    def __init__(self, outbox: Outbox, destinations: Mapping[str, Destination] | Iterable[Destination], *,
                 mailer: Mailer | None = None, poll_interval: float = POLL_INTERVAL,
                 transport: httpx.BaseTransport | None = None, rng: random.Random | None = None,
                 clock: Callable[[], int] = now_micros) -> None:
        self.outbox = outbox
        found = list(destinations.values() if isinstance(destinations, Mapping) else destinations)
        self.mailer = mailer
        if mailer is not None:  # email goes through the outbox too: durable, retried, dead-lettered
            s = mailer.settings
            found.append(Destination(EMAIL, f"smtp://{s.host}:{s.port}", "", timeout=s.timeout, max_concurrency=2))
        self.destinations = {d.name: d for d in found}
        self.poll_interval = poll_interval
        self.rng = rng or random.Random()
        self.clock = clock
        self._clients = {name: httpx.Client(
            timeout=d.timeout, follow_redirects=False, transport=transport, headers={"user-agent": USER_AGENT},
            limits=httpx.Limits(max_connections=d.max_concurrency, max_keepalive_connections=d.max_concurrency))
            for name, d in self.destinations.items()}
        self._pools = {name: ThreadPoolExecutor(d.max_concurrency, thread_name_prefix=f"webhook:{name}")
                       for name, d in self.destinations.items()}
        self._in_flight = dict.fromkeys(self.destinations, 0)
        self.health = {name: Health() for name in self.destinations}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="deliverer", daemon=True)
        self._thread.start()
        log.info("delivering webhooks to %s", ", ".join(sorted(self.destinations)) or "no destination")

    def stop(self) -> None:
        """Stop claiming; requests in flight finish (each within its timeout) and are recorded."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> Deliverer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._in_flight.values())

    def run_once(self) -> int:
        """Claim what is due for every destination (up to its free slots), send it all and wait;
        returns how many were sent."""
        sent = [self._pools[name].submit(self._deliver, self.destinations[name], d)
                for name, batch in self._claim_all() for d in batch]
        for future in sent:
            future.result()
        return len(sent)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a request finishing from here on wakes the wait below
            claimed = 0
            for name, batch in self._claim_all():
                for delivery in batch:
                    self._pools[name].submit(self._deliver, self.destinations[name], delivery)
                claimed += len(batch)
            if not claimed:
                self._wake.wait(self.poll_interval)

    def _claim_all(self) -> list[tuple[str, list[Delivery]]]:
        out = []
        for name, destination in self.destinations.items():
            with self._lock:
                free = destination.max_concurrency - self._in_flight[name]
                health = self.health[name]
                if health.down:  # paused, then one probe at a time
                    free = 0 if health.paused_until > self.clock() else min(free, 1 - self._in_flight[name])
            if free <= 0 or self._stopping.is_set():
                continue
            try:
                batch = self.outbox.claim_due(name, self.clock(), free, destination.lease)
            except Exception:  # the store is unreachable, say: the rows wait for the next turn, nothing is lost
                log.exception("claiming deliveries for %s failed; trying again in %.1f s", name, self.poll_interval)
                continue
            if batch:
                with self._lock:
                    self._in_flight[name] += len(batch)
                out.append((name, batch))
        return out

    # -- one delivery ----------------------------------------------------------------------------
    def _deliver(self, destination: Destination, delivery: Delivery) -> None:
        try:
            self._record(destination, delivery, self.send(destination, delivery))
        except Exception:  # recording failed: the claim expires and the delivery is sent again
            log.exception("delivery #%d to %s: could not record the attempt", delivery.id, destination.name)
        finally:
            with self._lock:
                self._in_flight[destination.name] -= 1
            self._wake.set()

    def send(self, destination: Destination, delivery: Delivery) -> Attempt:
        """POST the delivery once, signed (or mail it); never raises for what the network or receiver does."""
        if destination.name == EMAIL and self.mailer is not None:
            return self._mail(delivery)
        headers = {**signed_headers(destination.secret, delivery.key, delivery.payload),
                   "content-type": "application/json"}
        try:
            with self._clients[destination.name].stream("POST", destination.url, content=delivery.payload,
                                                        headers=headers) as response:
                code = response.status_code
                if outcome(code) == DELIVERED:
                    return Attempt(code, None)
                snippet = next(response.iter_bytes(), b"")[:200].decode(errors="replace").strip()
                location = f" to {response.headers['location']}" if 300 <= code < 400 and \
                    "location" in response.headers else ""
                return Attempt(code, f"HTTP {code}{location}{': ' + snippet if snippet else ''}",
                               _retry_after(response.headers.get("retry-after")))
        except httpx.TimeoutException as exc:
            return Attempt(None, f"timed out after {destination.timeout:g} s ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}")

    def _mail(self, delivery: Delivery) -> Attempt:
        """An SMTP send as an attempt: accepted is 200; a permanent refusal (5xx) a 400, dead at once;
        anything else a retry."""
        assert self.mailer is not None
        message = delivery.body()
        try:
            self.mailer.send(message["to"], message["subject"], message["text"], message.get("html"),
                             message.get("headers"))
        except DeliveryError as exc:
            return Attempt(400 if exc.permanent else None, exc.message)
        return Attempt(200, None)

    def _record(self, destination: Destination, delivery: Delivery, attempt: Attempt) -> None:
        name, n = destination.name, delivery.attempts
        self._observe(destination, attempt)
        if attempt.result == DELIVERED:
            self.outbox.mark_delivered(delivery.id, attempt.status_code, self.clock())
            log.info("delivery #%d (%s) to %s: delivered, HTTP %s, attempt %d", delivery.id, delivery.key, name,
                     attempt.status_code, n)
            return
        error = attempt.error or "failed"
        if attempt.result == DEAD or n >= destination.max_attempts:
            reason = error if attempt.result == DEAD else f"{error}; gave up after {n} attempts"
            if self.outbox.mark_failed(delivery.id, delivery.claim or "", reason, status_code=attempt.status_code):
                log.error("delivery #%d (%s) to %s: dead: %s", delivery.id, delivery.key, name, reason)
            return
        wait = self.rng.uniform(0, destination.backoff_ceiling(n))
        if attempt.retry_after is not None:
            wait = max(wait, min(attempt.retry_after, destination.backoff_max))
        if self.outbox.mark_failed(delivery.id, delivery.claim or "", error, status_code=attempt.status_code,
                                   retry_at=self.clock() + int(wait * 1_000_000)):
            log.warning("delivery #%d (%s) to %s: %s; attempt %d of %d, retry in %.1f s", delivery.id, delivery.key,
                        name, error, n, destination.max_attempts, wait)


    def _observe(self, destination: Destination, attempt: Attempt) -> None:
        """Keep the destination's health: pause it after `DOWN_AFTER` retryable failures in a row (or a
        failed probe); on any other answer, bring its waiting retries forward if it was failing."""
        name = destination.name
        with self._lock:
            health = self.health[name]
            if attempt.result == RETRY:
                health.failures += 1
                if (health.failures < DOWN_AFTER and not health.down) or health.paused_until > self.clock():
                    return  # not down yet, or a request sent before the pause began
                health.pauses += 1
                pause = min(PROBE_EVERY_MAX, PROBE_AFTER * 2 ** (health.pauses - 1))
                health.paused_until = self.clock() + int(pause * 1_000_000)
                first = health.pauses == 1
            else:
                was = health.failures
                self.health[name] = Health()
                if not was:
                    return
        if attempt.result != RETRY:
            hastened = self.outbox.hasten(name, self.clock())
            log.warning("%s answers again: %d deliveries waiting on a retry are due now", name, hastened)
        elif first:
            log.error("%s is down (%d failures in a row: %s): deliveries paused, a probe every %.0f s at most",
                      name, health.failures, attempt.error, PROBE_EVERY_MAX)
        self._wake.set()


def _retry_after(value: str | None) -> float | None:
    """A `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
