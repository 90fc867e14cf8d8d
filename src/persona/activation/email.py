"""Email through an SMTP server the operator runs or rents (Postfix, SES, Mailgun, …), with smtplib.

`Mailer.send` builds one message (plain text, and HTML as an alternative when given), gives it
a Message-ID of its own, which it returns so that a send log or an outbox can record what went
out, and hands it to the server: plain, STARTTLS or implicit TLS, with a login when a username
is set, and a timeout on every socket operation. A failure is a `DeliveryError` that says
whether trying again may help: a 5xx answer (unknown recipient, refused sender) is permanent,
a 4xx answer or a network failure is not.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal

from persona.errors import ConfigError, PersonaError, RequestError

Security = Literal["none", "starttls", "ssl"]

# Headers the message sets itself; a caller's `headers` may add others (List-Unsubscribe, tags).
_OWN_HEADERS = frozenset({"from", "to", "subject", "message-id", "date", "mime-version", "content-type",
                          "content-transfer-encoding", "cc", "bcc"})


class DeliveryError(PersonaError):
    """The SMTP server could not be reached or refused the message; `permanent` if a retry cannot help."""

    status = 502
    code = "delivery_failed"

    def __init__(self, message: str, *, permanent: bool, smtp_code: int | None = None) -> None:
        super().__init__(message, code="delivery_refused" if permanent else None)
        self.permanent = permanent
        self.smtp_code = smtp_code


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send. `security`: "none" (port 25 inside a trusted network, or a test
    server), "starttls" (port 587) or "ssl" (implicit TLS, port 465)."""

    host: str
    from_address: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    local_hostname: str | None = None  # what HELO/EHLO says; the machine's name by default

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "ssl"):
            raise ConfigError(f"smtp security must be none, starttls or ssl, not {self.security!r}",
                              field="smtp_security")
        if not 0 < self.port < 65536:
            raise ConfigError(f"smtp port {self.port} is not a port", field="smtp_port")
        if "@" not in parseaddr(self.from_address)[1]:
            raise ConfigError(f"{self.from_address!r} is not an email address", field="smtp_from")
        if self.timeout <= 0:
            raise ConfigError("smtp timeout must be positive", field="smtp_timeout")


class Mailer:
    """Sends email through the configured server, one connection per message (simple, and no
    connection to keep alive between sends that may be minutes apart)."""

    def __init__(self, settings: SmtpSettings, tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.tls_context = tls_context or ssl.create_default_context()

    def message(self, to: str, subject: str, text: str, html: str | None = None,
                headers: Mapping[str, str] | None = None) -> EmailMessage:
        """The message `send` would send (a Message-ID included)."""
        recipient = parseaddr(to)[1]
        if "@" not in recipient or any(c in to for c in "\r\n"):
            raise RequestError(f"{to!r} is not an email address", field="to")
        message = EmailMessage()
        try:
            message["From"] = self.settings.from_address
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = formatdate(localtime=False, usegmt=True)
            message["Message-ID"] = make_msgid(domain=_domain(self.settings.from_address))
            for name, value in (headers or {}).items():
                if name.lower() in _OWN_HEADERS:
                    raise RequestError(f"header {name!r} is set by the mailer", field="headers")
                message[name] = value
        except ValueError as exc:  # a line break in a header value: header injection
            raise RequestError(f"invalid header: {exc}", field="headers") from None
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def send(self, to: str, subject: str, text: str, html: str | None = None,
             headers: Mapping[str, str] | None = None) -> str:
        """Send one message; returns its Message-ID (with the angle brackets)."""
        message = self.message(to, subject, text, html, headers)
        self.deliver(message)
        return str(message["Message-ID"])

    def deliver(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            with self._connect() as smtp:
                if s.security == "starttls":
                    smtp.starttls(context=self.tls_context)
                if s.username is not None:
                    smtp.login(s.username, s.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            raise _refused("recipient refused", code, reason) from None
        except smtplib.SMTPResponseException as exc:
            raise _refused("the server refused the message", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:  # includes timeouts and TLS failures
            raise DeliveryError(f"cannot send through {s.host}:{s.port}: {exc or type(exc).__name__}",
                                permanent=False) from None
        if refused:  # only possible with several recipients; we send to one
            code, reason = next(iter(refused.values()))
            raise _refused("recipient refused", code, reason)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout,
                                    context=self.tls_context)
        return smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)


def _refused(what: str, code: int, reason: bytes | str) -> DeliveryError:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return DeliveryError(f"{what}: {code} {text}", permanent=500 <= code < 600, smtp_code=code)


def _domain(address: str) -> str:
    email = parseaddr(address)[1]
    try:
        return Address(addr_spec=email).domain or "localhost"
    except (ValueError, IndexError):
        return email.rpartition("@")[2] or "localhost"
