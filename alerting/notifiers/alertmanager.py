"""Alertmanager API v2: ``POST /api/v2/alerts`` with one alert per incident.

Alertmanager forgets an alert whose ``endsAt`` passes, so a firing incident is re-sent every
``repeat_seconds`` (the outbox does that, see :mod:`alerting.outbox`) with ``endsAt`` a few
repeats ahead; resolve sends ``endsAt`` = now, which closes it at once. Labels identify the
alert, so they never change over its life (acknowledgement goes into annotations).

>>> from alerting.notification import Notification
>>> n = Notification("n1", "am", "trigger", "acme/volume", {"id": "i1", "topic": "acme",
...     "severity": 1, "opened_at": 0.0}, 0.0)
>>> a = alertmanager_alert(n, now=60.0, repeat_seconds=60.0)
>>> a["labels"], a["startsAt"], a["endsAt"]
({'alertname': 'CrisiswatchIncident', 'dedup_key': 'acme/volume', 'topic': 'acme', \
'severity': 'critical'}, '1970-01-01T00:00:00.000Z', '1970-01-01T00:05:00.000Z')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView, post
from alerting.severity import clamp, pagerduty_severity
from monitor.clock import Clock
from monitor.config.receivers import AlertmanagerReceiver
from monitor.decode import format_time

#: A firing alert stays alive this many repeat intervals after the last send, so one or two
#: failed re-sends do not make it flap.
ENDS_AFTER_REPEATS = 4


def alertmanager_alert(
    n: Notification,
    *,
    now: float,
    repeat_seconds: float,
    extra_labels: Mapping[str, str] | None = None,
    generator_url: str | None = None,
) -> dict[str, Any]:
    """One postable alert for `n` as Alertmanager API v2 expects it."""
    v = IncidentView.of(n.incident)
    labels = {
        "alertname": "CrisiswatchIncident",
        "dedup_key": n.dedup_key,
        "topic": v.topic,
        "severity": pagerduty_severity(_worst_severity(n.incident, v.severity)),
        **(extra_labels or {}),
    }
    annotations = {"summary": v.summary, "incident_id": v.id}
    if v.drivers:
        annotations["drivers"] = "; ".join(v.drivers)
    if v.score is not None:
        annotations["score"] = f"{v.score:.3f}"
    for key, href in sorted(n.links.items()):
        annotations[f"{key}_url"] = href
    if n.action == "acknowledge":
        annotations["acknowledged"] = "true"
    start = v.opened_at if v.opened_at is not None else n.created_at
    ends = now if n.action == "resolve" else now + ENDS_AFTER_REPEATS * repeat_seconds
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_time(min(start, now)),
        "endsAt": format_time(ends),
    }
    url = generator_url or v.url
    if url:
        alert["generatorURL"] = url
    return alert


def _worst_severity(incident: Mapping[str, Any], current: int) -> int:
    """The incident's worst severity so far: the ``severity`` label. Labels are the alert's
    identity, so a crisis easing off (SEV2 -> SEV3) must not make a second, newly firing
    alert that its resolve would not close; only a worse crisis (a re-page) starts a new one.
    """
    peak = incident.get("peak_severity")
    return min(current, clamp(peak)) if isinstance(peak, int) else current


class AlertmanagerNotifier:
    def __init__(
        self, cfg: AlertmanagerReceiver, session: aiohttp.ClientSession, *, clock: Clock
    ) -> None:
        self._cfg, self._session, self._clock = cfg, session, clock
        self.repeat_seconds = cfg.repeat_seconds
        self._url = cfg.url.rstrip("/") + "/api/v2/alerts"

    async def send(self, n: Notification) -> None:
        alert = alertmanager_alert(
            n,
            now=self._clock.now(),
            repeat_seconds=self._cfg.repeat_seconds,
            extra_labels=self._cfg.labels,
        )
        await post(
            self._session,
            self._cfg.name,
            self._url,
            data=json.dumps([alert]).encode(),
            headers={"Content-Type": "application/json"},
            timeout=self._cfg.timeout_seconds,
            clock=self._clock,
        )
