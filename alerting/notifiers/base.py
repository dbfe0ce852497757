"""What every notifier is, the incident view they all render, and the shared HTTP error policy.

A notifier turns one :class:`~alerting.notification.Notification` into one request to one
receiver. It raises :class:`~monitor.errors.DeliveryError`; ``recoverable`` (429, 5xx,
connection errors, timeouts) is the only thing the outbox reads to decide on a retry.

>>> classify_status(429), classify_status(503), classify_status(400)
(True, True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from alerting.incidents import explanation_drivers
from alerting.notification import Notification
from monitor.clock import Clock
from monitor.config.receivers import ReceiverConfig
from monitor.errors import DeliveryError
from monitor.retry_after import retry_after_seconds

_PD_SEVERITY = {1: "critical", 2: "error", 3: "warning", 4: "info"}
# the driver line that opens with an incident kind's own evidence (explanation_drivers' wording)
_KIND_LEAD = {"volume": "volume ", "sentiment": "negative ", "terms": "terms: "}


def lead_driver(drivers: Sequence[str], kind: str) -> str | None:
    """The driver a page's one-line summary carries: the incident kind's own, else the first.

    A phone's push shows the summary only; "volume crisis" says what, this says how bad.

    >>> lead_driver(["volume 30 vs 28.0 expected (1.1x)", "negative 70% vs 15% usual"],
    ...             "sentiment")
    'negative 70% vs 15% usual'
    >>> lead_driver(["volume x4"], "terms"), lead_driver([], "volume")
    ('volume x4', None)
    """
    prefix = _KIND_LEAD.get(kind)
    own = [d for d in drivers if prefix and d.startswith(prefix)]
    return own[0] if own else (drivers[0] if drivers else None)


class Notifier(Protocol):
    """Delivers one notification or raises DeliveryError."""

    async def send(self, n: Notification) -> None: ...


class RepeatingNotifier(Notifier, Protocol):
    """A notifier whose receiver forgets a firing alert unless it is re-sent (Alertmanager)."""

    repeat_seconds: float


class RetryLater(DeliveryError):
    """A recoverable failure with a ``Retry-After`` (429, 503) the outbox honours as a floor
    for the next attempt (up to its longest backoff)."""

    def __init__(self, target: str, reason: str, retry_after: float | None, *, status: int) -> None:
        super().__init__(target, reason, recoverable=True, status=status)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    """HTTP 429."""

    def __init__(self, target: str, retry_after: float | None, status: int = 429) -> None:
        super().__init__(target, f"HTTP {status} rate limited", retry_after, status=status)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut.

    >>> clip("crisis on acme", 8), clip("ok", 8)
    ('crisis …', 'ok')
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_status(status: int) -> bool:
    """Whether an HTTP failure status is worth retrying: 408, 429 and every 5xx."""
    return status in (408, 429) or status >= 500


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    url: str | None = None
    author: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    """The fields notifiers render, read tolerantly from the incident snapshot dict.

    Keys read (all optional but ``id``): ``id title|summary topic|series severity (1..4)
    score drivers (str or {"name"|"feature", "detail"|"value"}) or peak_explanation|explanation
    (``explanation_drivers``) samples|sample_posts
    ({"text","url","author","channel"}) opened_at state url labels``.

    >>> v = IncidentView.of({"id": "i1", "topic": "acme", "severity": 2, "score": 0.91,
    ...     "drivers": ["volume x4", {"name": "negativity", "detail": "62%"}]})
    >>> v.summary, v.pd_severity, v.drivers
    ('Crisis on acme (SEV2, score 0.91) · volume x4', 'error', ('volume x4', 'negativity: 62%'))
    """

    id: str
    summary: str  # the title and its lead driver: what a push notification shows
    title: str
    topic: str
    severity: int
    score: float | None
    drivers: tuple[str, ...]
    samples: tuple[Sample, ...]
    opened_at: float | None
    state: str
    url: str | None
    labels: Mapping[str, str]

    @property
    def pd_severity(self) -> str:
        return _PD_SEVERITY[self.severity]

    @property
    def headline(self) -> str:
        """The summary without the leading ``SEVn `` a title opens with, for a renderer that
        shows the severity itself (``[SEV2] …``), so it is not said twice.

        >>> IncidentView.of({"id": "i", "severity": 2, "title": "SEV2 ACME: volume crisis",
        ...     "drivers": ["volume 253 vs 36.6 expected (6.9x)"]}).headline
        'ACME: volume crisis · volume 253 vs 36.6 expected (6.9x)'
        """
        tag = f"SEV{self.severity} "
        return self.summary[len(tag) :] if self.summary.startswith(tag) else self.summary

    @classmethod
    def of(cls, inc: Mapping[str, Any]) -> IncidentView:
        topic = str(inc.get("topic") or inc.get("series") or inc.get("key") or "unknown")
        try:
            sev = min(4, max(1, int(inc.get("severity") or 3)))
        except (TypeError, ValueError):
            sev = 3
        raw_score = inc.get("score")
        score = float(raw_score) if isinstance(raw_score, int | float) else None
        title = inc.get("title") or inc.get("summary")
        if not title:
            title = f"Crisis on {topic} (SEV{sev}" + (
                f", score {score:.2f})" if score is not None else ")"
            )
        # a page sent late (level 2, quiet hours) must still say how bad it got, not how calm
        # the last bucket was: the explanation at the incident's peak, else the latest
        expl = inc.get("peak_explanation") or inc.get("explanation")
        expl = expl if isinstance(expl, Mapping) else {}
        raw_drivers = inc.get("drivers", expl.get("drivers"))
        if raw_drivers is None:
            raw_drivers = explanation_drivers(expl)
        drivers: list[str] = []
        for d in raw_drivers or ():
            if isinstance(d, Mapping):
                name = d.get("name") or d.get("feature") or d.get("detector") or "?"
                detail = d.get("detail", d.get("value"))
                drivers.append(f"{name}: {detail}" if detail is not None else str(name))
            else:
                drivers.append(str(d))
        samples: list[Sample] = []
        for s in inc.get("samples") or inc.get("sample_posts") or expl.get("samples") or ():
            if isinstance(s, Mapping):
                author = s.get("author")
                if isinstance(author, Mapping):
                    author = author.get("handle") or author.get("id")
                samples.append(
                    Sample(
                        text=str(s.get("text", "")),
                        url=s.get("url"),
                        author=None if author is None else str(author),
                        channel=s.get("channel"),
                    )
                )
            else:
                samples.append(Sample(text=str(s)))
        title = str(title)[:1024]
        lead = lead_driver(drivers, str(inc.get("kind") or ""))
        summary = f"{title} · {lead}" if lead and lead not in title else title
        opened = inc.get("opened_at")
        labels = inc.get("labels")
        return cls(
            id=str(inc.get("id", "")),
            summary=summary[:1024],  # PagerDuty's limit; others are happy with it too
            title=title,
            topic=topic,
            severity=sev,
            score=score,
            drivers=tuple(drivers),
            samples=tuple(samples),
            opened_at=float(opened) if isinstance(opened, int | float) else None,
            state=str(inc.get("state", "triggered")),
            url=inc.get("url") if isinstance(inc.get("url"), str) else None,
            labels={str(k): str(v) for k, v in labels.items()}
            if isinstance(labels, Mapping)
            else {},
        )


async def post(
    session: aiohttp.ClientSession,
    target: str,
    url: str,
    *,
    data: bytes,
    headers: Mapping[str, str],
    timeout: float,
    clock: Clock,
) -> bytes:
    """POST `data` and return the body of a 2xx answer; anything else is a DeliveryError."""
    try:
        # A redirect is not followed: aiohttp would turn the POST into a GET without the body
        # (301/302/303), and a 200 to that GET would count as a delivery nobody received.
        async with session.post(
            url,
            data=data,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            if 200 <= resp.status < 300:
                return body
            if resp.status == 429:
                raise RateLimited(
                    target,
                    retry_after_seconds(resp.headers.get("Retry-After"), clock.now(), math.inf),
                )
            # The receiver's answer helps the operator; it is theirs, never one of our secrets.
            snippet = body[:200].decode("utf-8", "replace")
            if 300 <= resp.status < 400:  # the configured URL is out of date: say where to
                snippet += f" (Location: {resp.headers.get('Location', '')[:300]})"
            if resp.status == 503:  # down for maintenance, and it may say for how long
                wait = retry_after_seconds(resp.headers.get("Retry-After"), clock.now(), math.inf)
                if wait is not None:
                    raise RetryLater(target, f"HTTP 503: {snippet}", wait, status=503)
            raise DeliveryError(
                target,
                f"HTTP {resp.status}: {snippet}",
                recoverable=classify_status(resp.status),
                status=resp.status,
            )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise DeliveryError(target, transport_error(exc), recoverable=True) from None


def transport_error(exc: BaseException) -> str:
    """Why a request got no answer, for the log and /healthz: the host, port and errno, never
    the URL (a webhook's path or query is its secret). The class name alone
    (`ClientConnectorError`) left the operator guessing (QA).

    >>> transport_error(ConnectionRefusedError(111, "Connect call failed"))
    'ConnectionRefusedError: [Errno 111] Connect call failed'
    >>> transport_error(TimeoutError())
    'TimeoutError: no answer in time'
    """
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        why = f"[Errno {err.errno}] {err.strerror}" if err.strerror else type(err).__name__
        return f"{name}: cannot connect to {exc.host}:{exc.port}: {why}"
    if isinstance(exc, TimeoutError):
        return f"{name}: no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: [Errno {exc.errno}] {exc.strerror}"
    return name


def build_notifiers(
    receivers: Sequence[ReceiverConfig],
    session: aiohttp.ClientSession,
    *,
    env: Mapping[str, str],
    clock: Clock,
    contacts: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured receiver, by name. Secrets are resolved here from `env`.

    `contacts` maps a user name (``Notification.recipient``) to addresses by receiver type,
    e.g. ``{"ana": {"email": "ana@example.org", "slack": "<@U123>"}}`` (``alerting.users``).
    """
    book = contacts or {}
    from alerting.notifiers.alertmanager import AlertmanagerNotifier
    from alerting.notifiers.email import EmailNotifier
    from alerting.notifiers.log import LogNotifier
    from alerting.notifiers.pagerduty import PagerDutyNotifier
    from alerting.notifiers.slack import SlackNotifier
    from alerting.notifiers.webhook import WebhookNotifier

    out: dict[str, Notifier] = {}
    for r in receivers:
        if r.type == "pagerduty":
            out[r.name] = PagerDutyNotifier.from_config(r, session, env=env, clock=clock)
        elif r.type == "alertmanager":
            out[r.name] = AlertmanagerNotifier(r, session, clock=clock)
        elif r.type == "slack":
            out[r.name] = SlackNotifier.from_config(r, session, env=env, clock=clock, contacts=book)
        elif r.type == "webhook":
            out[r.name] = WebhookNotifier.from_config(r, session, env=env, clock=clock)
        elif r.type == "log":
            out[r.name] = LogNotifier(r.name)
        else:
            out[r.name] = EmailNotifier.from_config(r, env=env, clock=clock, contacts=book)
    return out
