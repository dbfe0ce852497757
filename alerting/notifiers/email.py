"""SMTP email through the standard library, run in a worker thread.

``Message-ID`` is derived from the notification id, so a retried send is recognisably the
same message; all mails of one incident share a thread via ``References``.

>>> from alerting.notification import Notification
>>> n = Notification("n/1", "mail", "trigger", "acme", {"id": "i1", "topic": "acme",
...     "severity": 2, "score": 0.9}, 0.0, links={"ack": "http://x/a"})
>>> m = email_message(n, sender="cw@example.org", to=["oncall@example.org"], now=0.0)
>>> m["Subject"], m["Message-ID"]
('[SEV2] Crisis on acme (SEV2, score 0.90)', '<n.1@crisiswatch>')
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView, transport_error
from monitor.clock import Clock
from monitor.config.receivers import EmailReceiver, secret
from monitor.errors import DeliveryError

_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _msgid(key: str) -> str:
    return f"<{_ID_SAFE.sub('.', key)}@crisiswatch>"


def email_message(n: Notification, *, sender: str, to: Sequence[str], now: float) -> EmailMessage:
    """The mail for `n`: plain text, links on their own lines so every client links them."""
    v = IncidentView.of(n.incident)
    msg = EmailMessage()
    tag = {"trigger": f"SEV{v.severity}", "acknowledge": "ACK", "resolve": "RESOLVED"}[n.action]
    msg["Subject"] = f"[{tag}] {v.headline if n.action == 'trigger' else v.title}"[:250]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, tz=UTC))
    msg["Message-ID"] = _msgid(n.id)
    msg["References"] = _msgid(n.dedup_key)
    msg["X-Crisiswatch-Incident"] = v.id
    lines = [
        v.summary,
        "",
        f"Incident: {v.id}",
        f"Topic:    {v.topic}",
        f"Severity: SEV{v.severity}",
    ]
    if v.score is not None:
        lines.append(f"Score:    {v.score:.2f}")
    if n.action != "trigger":
        lines.append(f"Status:   {n.action}d")
    if v.drivers:
        lines += ["", "Drivers:"] + [f"  - {d}" for d in v.drivers]
    if v.samples:
        lines += ["", "Sample posts:"]
        for s in v.samples[:5]:
            lines.append(f"  > {s.text}" + (f"  ({s.author})" if s.author else ""))
            if s.url:
                lines.append(f"    {s.url}")
    if n.links:
        lines += [""] + [f"{k.capitalize()}: {href}" for k, href in sorted(n.links.items())]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _smtp_error(target: str, exc: Exception) -> DeliveryError:
    """4xx replies and connection trouble are transient; 5xx replies are permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        transient = bool(codes) and all(400 <= c < 500 for c in codes)
        who = ", ".join(sorted(exc.recipients))[:300]
        return DeliveryError(
            target, f"recipients refused {sorted(set(codes))}: {who}", recoverable=transient
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = int(exc.smtp_code)
        return DeliveryError(target, f"SMTP {code}", recoverable=400 <= code < 500, status=code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(target, "SMTP extension not supported", recoverable=False)
    return DeliveryError(target, transport_error(exc), recoverable=True)


class EmailNotifier:
    # one message per person: the outbox orders them per recipient, not per incident
    per_recipient = True

    def __init__(
        self,
        cfg: EmailReceiver,
        *,
        password: str | None,
        clock: Clock,
        contacts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._cfg, self._password, self._clock = cfg, password, clock
        self._contacts = contacts or {}

    @classmethod
    def from_config(
        cls,
        cfg: EmailReceiver,
        *,
        env: Mapping[str, str],
        clock: Clock,
        contacts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> EmailNotifier:
        pw = None
        if cfg.password_env:
            pw = secret(env, cfg.password_env, f"receivers.{cfg.name}.password_env")
        return cls(cfg, password=pw, clock=clock, contacts=contacts)

    def __repr__(self) -> str:
        return f"EmailNotifier({self._cfg.name!r}, host={self._cfg.host!r})"

    def recipients(self, n: Notification) -> list[str]:
        """Configured `to`, plus the paged user's address (from contacts, or the name itself)."""
        to = list(self._cfg.to)
        if n.recipient:
            addr = self._contacts.get(n.recipient, {}).get("email") or n.recipient
            if "@" in addr and addr not in to:
                to.append(addr)
        return to

    async def send(self, n: Notification) -> None:
        to = self.recipients(n)
        if not to:
            raise DeliveryError(self._cfg.name, "no recipient address", recoverable=False)
        msg = email_message(n, sender=self._cfg.sender, to=to, now=self._clock.now())
        await asyncio.to_thread(self._send_sync, msg, to)

    def _send_sync(self, msg: EmailMessage, to: list[str]) -> None:
        c = self._cfg
        try:
            smtp: smtplib.SMTP
            if c.ssl:
                smtp = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_seconds, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
            with smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username and self._password is not None:
                    smtp.login(c.username, self._password)
                refused = smtp.send_message(msg, from_addr=c.sender, to_addrs=to)
            if refused:
                # Accepted for some, refused for others (the paged user, say): not delivered.
                # A retry re-sends to all, with the same Message-ID (at least once).
                raise smtplib.SMTPRecipientsRefused(refused)
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_error(c.name, exc) from None
