"""Email end to end: a real SMTP server in-process (aiosmtpd) receives what `Mailer` sends, a body
rendered from templates with a profile's context; refusals, logins, timeouts and header injection."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

from persona.activation.email import DeliveryError, Mailer, SmtpSettings
from persona.activation.templates import Template, context_for
from persona.errors import ConfigError, RequestError
from persona.profiles.profile import Profile


class Inbox:
    """An aiosmtpd handler that keeps what it receives and refuses mail to `refuse@…`."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refuse@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def message(self, index: int = -1) -> EmailMessage:
        content = self.envelopes[index].original_content or b""
        return email.message_from_bytes(content, policy=default_policy)  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accept_login(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = auth_data.login == b"persona" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=accept_login,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def mailer(port: int, **settings: Any) -> Mailer:
    return Mailer(SmtpSettings(host="127.0.0.1", port=port, security="none", from_address="Shop <news@shop.test>",
                               timeout=5, **settings))


def test_a_rendered_message_arrives_with_its_subject_recipient_and_body(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    profile = Profile(id="p1", created_seq=1, first_seen=0, last_seen=0, traits={"first_name": "Ada"},
                      identifiers={"email": ["ada@example.com"]})
    context = context_for(profile, segments=["loyal"])
    subject = Template("subject", "{{ traits.first_name }}, a thank-you").render(context)
    text = Template("text", "Hi {{ traits.first_name }}!{% if 'loyal' in segments %} Here is 10% off.{% endif %}")
    html = Template("html", "<p>Hi {{ traits.first_name }} &amp; {{ '<friends>' }}</p>", html=True)
    message_id = mailer(port).send(profile.identifiers["email"][0], subject, text.render(context),
                                   html=html.render(context), headers={"List-Unsubscribe": "<https://shop.test/u/p1>"})

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert (envelope.mail_from, envelope.rcpt_tos) == ("news@shop.test", ["ada@example.com"])
    received = inbox.message()
    assert received["Subject"] == "Ada, a thank-you" and received["To"] == "ada@example.com"
    assert received["From"] == "Shop <news@shop.test>" and received["Message-ID"] == message_id
    assert message_id.startswith("<") and message_id.endswith("@shop.test>")
    assert received["List-Unsubscribe"] == "<https://shop.test/u/p1>"
    text_part = received.get_body(("plain",))
    html_part = received.get_body(("html",))
    assert text_part is not None and text_part.get_content().strip() == "Hi Ada! Here is 10% off."
    assert html_part is not None and html_part.get_content().strip() == "<p>Hi Ada &amp; &lt;friends&gt;</p>"


def test_unicode_subjects_and_bodies_survive(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer(port).send("Zoë <zoe@example.com>", "Ça va, Zoë? 🎉", "Grüße aus Köln")
    received = inbox.message()
    assert received["Subject"] == "Ça va, Zoë? 🎉" and received.get_content().strip() == "Grüße aus Köln"
    assert inbox.envelopes[0].rcpt_tos == ["zoe@example.com"]


def test_a_login_is_used_when_a_username_is_set(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer(port, username="persona", password="s3cret").send("a@example.com", "hi", "body")
    assert len(inbox.envelopes) == 1
    with pytest.raises(DeliveryError) as caught:
        mailer(port, username="persona", password="wrong").send("a@example.com", "hi", "body")
    assert caught.value.permanent and caught.value.smtp_code == 535


def test_refusals_say_whether_a_retry_can_help(smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    with pytest.raises(DeliveryError) as permanent:
        mailer(port).send("refuse@example.com", "hi", "body")
    assert permanent.value.permanent and permanent.value.smtp_code == 550 and "no such user" in str(permanent.value)
    assert permanent.value.code == "delivery_refused"
    with pytest.raises(DeliveryError) as transient:
        mailer(port).send("busy@example.com", "hi", "body")
    assert not transient.value.permanent and transient.value.smtp_code == 451


def test_an_unreachable_or_silent_server_times_out() -> None:
    with pytest.raises(DeliveryError) as refused:
        mailer(free_port()).send("a@example.com", "hi", "body")
    assert not refused.value.permanent and refused.value.code == "delivery_failed"
    with socket.socket() as silent:  # accepts connections (the backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        slow = Mailer(SmtpSettings(host="127.0.0.1", port=silent.getsockname()[1], security="none",
                                   from_address="news@shop.test", timeout=0.3))
        with pytest.raises(DeliveryError, match="timed out") as timed_out:
            slow.send("a@example.com", "hi", "body")
    assert not timed_out.value.permanent


def test_header_injection_and_bad_addresses_are_refused_before_sending(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    m = mailer(port)
    for to, subject, headers, field in [
        ("a@example.com\r\nBcc: victim@example.com", "hi", {}, "to"),
        ("not an address", "hi", {}, "to"),
        ("a@example.com", "hi\r\nBcc: victim@example.com", {}, "headers"),
        ("a@example.com", "hi", {"X-Tag": "a\nBcc: victim@example.com"}, "headers"),
        ("a@example.com", "hi", {"Bcc": "victim@example.com"}, "headers"),
    ]:
        with pytest.raises(RequestError) as caught:
            m.send(to, subject, "body", headers=headers)
        assert caught.value.field == field, to
    assert inbox.envelopes == []


def test_settings_are_checked() -> None:
    for kwargs, field in [({"security": "tls"}, "smtp_security"), ({"port": 0}, "smtp_port"),
                          ({"from_address": "nobody"}, "smtp_from"), ({"timeout": 0}, "smtp_timeout")]:
        with pytest.raises(ConfigError) as caught:
            SmtpSettings(**{"host": "h", "from_address": "a@b.test", **kwargs})
        assert caught.value.field == field
    assert "s3cret" not in repr(SmtpSettings(host="h", from_address="a@b.test", password="s3cret"))
