from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerting.notification import Action, Notification
from alerting.notifiers.email import EmailNotifier, email_message
from monitor.clock import FakeClock
from monitor.config.receivers import EmailReceiver
from monitor.errors import DeliveryError
from tests.alerting.notifiers.receiver import TITLED


@dataclass
class Sink:
    """Accepts mail, or answers every RCPT with `rcpt_reply` when set."""

    mails: list[Envelope] = field(default_factory=list)
    rcpt_reply: str | None = None
    reply_for: dict[str, str] = field(default_factory=dict)  # per address

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply or address in self.reply_for:
            return self.reply_for.get(address) or self.rcpt_reply or ""
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(envelope)
        return "250 Message accepted"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Sink, int]]:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    try:
        yield sink, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def notifier(port: int, **kw: Any) -> EmailNotifier:
    c = EmailReceiver.model_validate(
        {
            "name": "mail",
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "sender": "crisiswatch@example.org",
            "to": ["social@example.org"],
            **kw,
        }
    )
    return EmailNotifier.from_config(c, env={}, clock=FakeClock(1_700_000_000.0))


INC = {
    "id": "inc-7",
    "topic": "acme",
    "severity": 2,
    "score": 0.88,
    "drivers": ["volume 4x"],
    "samples": [{"text": "acme is down", "url": "https://x/1"}],
}


async def test_mail_reaches_smtp_with_links_and_stable_message_id(
    smtp: tuple[Sink, int],
) -> None:
    sink, port = smtp
    n = Notification(
        "n-1",
        "mail",
        "trigger",
        "acme/volume",
        INC,
        0.0,
        recipient="alice@example.org",
        links={"ack": "http://cw/act/TOKEN"},
    )
    await notifier(port).send(n)
    assert len(sink.mails) == 1
    env = sink.mails[0]
    assert env.mail_from == "crisiswatch@example.org"
    assert env.rcpt_tos == ["social@example.org", "alice@example.org"]
    assert isinstance(env.content, bytes)
    msg = email.message_from_bytes(env.content, policy=email.policy.default)
    assert msg["Subject"] == "[SEV2] Crisis on acme (SEV2, score 0.88) · volume 4x"
    assert msg["Message-ID"] == "<n-1@crisiswatch>"
    assert msg["References"] == "<acme.volume@crisiswatch>"
    assert msg["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Ack: http://cw/act/TOKEN" in text
    assert "  - volume 4x" in text and "  > acme is down" in text and "https://x/1" in text


async def test_5xx_rcpt_is_permanent_4xx_is_transient(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    n = Notification("n-1", "mail", "resolve", "k", INC, 0.0)
    sink.rcpt_reply = "550 no such user"
    with pytest.raises(DeliveryError) as ei:
        await notifier(port).send(n)
    assert not ei.value.recoverable
    sink.rcpt_reply = "451 try later"
    with pytest.raises(DeliveryError) as ei:
        await notifier(port).send(n)
    assert ei.value.recoverable


async def test_unreachable_server_is_transient_and_no_address_is_permanent(
    smtp: tuple[Sink, int],
) -> None:
    _, port = smtp
    n = Notification("n-1", "mail", "trigger", "k", INC, 0.0, recipient="bob")
    with pytest.raises(DeliveryError) as ei:
        await notifier(1, timeout_seconds=2).send(n)
    assert ei.value.recoverable
    with pytest.raises(DeliveryError) as ei:
        await notifier(port, to=[]).send(n)
    assert not ei.value.recoverable and ei.value.reason == "no recipient address"


async def test_paged_user_address_comes_from_contacts(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    c = EmailReceiver.model_validate(
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": port,
         "sender": "cw@example.org"}
    )  # fmt: skip
    contacts = {"ana": {"email": "ana@example.org"}}
    n = EmailNotifier.from_config(c, env={}, clock=FakeClock(), contacts=contacts)
    await n.send(Notification("n-1", "mail", "trigger", "k", INC, 0.0, recipient="ana"))
    assert sink.mails[0].rcpt_tos == ["ana@example.org"]


@pytest.mark.parametrize(("reply", "recoverable"), [("451 greylisted", True), ("550 no", False)])
async def test_paged_user_refused_while_the_team_list_accepts_is_not_a_delivery(
    smtp: tuple[Sink, int], reply: str, recoverable: bool
) -> None:
    # The server takes the mail for social@ but refuses the paged user's address: the page to
    # that person is not delivered (a greylisting 451 clears on a retry), never silently done.
    sink, port = smtp
    sink.reply_for = {"alice@example.org": reply}
    n = Notification("n-1", "mail", "trigger", "k", INC, 0.0, recipient="alice@example.org")
    with pytest.raises(DeliveryError) as ei:
        await notifier(port).send(n)
    assert [m.rcpt_tos for m in sink.mails] == [["social@example.org"]]
    assert ei.value.recoverable is recoverable
    assert "alice@example.org" in ei.value.reason


@pytest.mark.parametrize(
    ("action", "subject"),
    [
        ("trigger", "[SEV2] Crisis on acme (SEV2, score 0.88) · volume 4x"),
        ("acknowledge", "[ACK] Crisis on acme (SEV2, score 0.88)"),
        ("resolve", "[RESOLVED] Crisis on acme (SEV2, score 0.88)"),
    ],
)
def test_the_page_subject_says_how_bad_and_the_follow_ups_name_the_incident(
    action: Any, subject: str
) -> None:
    n = Notification("n-1", "mail", action, "acme/volume", INC, 0.0)
    msg = email_message(n, sender="cw@example.org", to=["social@example.org"], now=0.0)
    assert msg["Subject"] == subject


@pytest.mark.parametrize(
    ("action", "subject"),
    [
        ("trigger", "[SEV2] ACME Corp: volume crisis · volume 253 vs 36.6 expected (6.9x)"),
        ("acknowledge", "[ACK] SEV2 ACME Corp: volume crisis"),
    ],
)
def test_a_titled_page_says_its_severity_once(action: Action, subject: str) -> None:
    """The service's titles open with the severity; the subject's tag already says it."""
    n = Notification("n/1", "mail", action, "acme", TITLED, 0.0)
    assert email_message(n, sender="a@b.c", to=["d@e.f"], now=0.0)["Subject"] == subject
