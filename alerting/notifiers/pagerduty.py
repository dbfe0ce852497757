"""PagerDuty Events API v2: trigger, acknowledge and resolve alerts by ``dedup_key``.

>>> from alerting.notification import Notification
>>> n = Notification("n1", "pager", "resolve", "acme/volume", {"id": "i1"}, 0.0)
>>> pagerduty_event(n, routing_key="R", source="crisiswatch")
{'routing_key': 'R', 'event_action': 'resolve', 'dedup_key': 'acme/volume'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView, clip, post
from monitor.clock import Clock
from monitor.config.receivers import PagerDutyReceiver, secret
from monitor.decode import format_time

#: PagerDuty refuses (400, permanent) an event over 512 KB. Mention texts can be 100,000
#: characters, so what the page quotes of them is bounded.
MAX_SAMPLES = 10
MAX_SAMPLE_TEXT = 1024

_LINK_TEXT = {
    "ack": "Acknowledge",
    "acknowledge": "Acknowledge",
    "resolve": "Resolve",
    "snooze": "Snooze",
    "wall": "Open the wall",
}


def pagerduty_event(
    n: Notification, *, routing_key: str, source: str, client_url: str | None = None
) -> dict[str, Any]:
    """The Events API v2 body for `n`; acknowledge/resolve carry only the keys PagerDuty reads."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": n.action,
        "dedup_key": n.dedup_key[:255],
    }
    if n.action != "trigger":
        return event
    v = IncidentView.of(n.incident)
    details: dict[str, Any] = {
        "incident_id": v.id,
        "severity": f"SEV{v.severity}",
        "score": v.score,
        "drivers": list(v.drivers),
        "samples": [
            {"text": clip(s.text, MAX_SAMPLE_TEXT), "url": s.url, "author": s.author}
            for s in v.samples[:MAX_SAMPLES]
        ],
    }
    if n.recipient:
        details["recipient"] = n.recipient
    event["payload"] = {
        "summary": v.summary,
        "source": source,
        "severity": v.pd_severity,
        "timestamp": format_time(v.opened_at if v.opened_at is not None else n.created_at),
        "component": v.topic,
        "group": v.labels.get("group", v.topic),
        "class": v.labels.get("class", "crisis"),
        "custom_details": details,
    }
    links = [{"href": href, "text": _LINK_TEXT.get(k, k)} for k, href in sorted(n.links.items())]
    if v.url:
        links.insert(0, {"href": v.url, "text": "Incident"})
    if links:
        event["links"] = links
    event["client"] = "crisiswatch"
    if client_url:
        event["client_url"] = client_url
    return event


class PagerDutyNotifier:
    def __init__(
        self,
        cfg: PagerDutyReceiver,
        session: aiohttp.ClientSession,
        *,
        routing_key: str,
        clock: Clock,
    ) -> None:
        self._cfg, self._session, self._key, self._clock = cfg, session, routing_key, clock

    @classmethod
    def from_config(
        cls,
        cfg: PagerDutyReceiver,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        clock: Clock,
    ) -> PagerDutyNotifier:
        key = secret(env, cfg.routing_key_env, f"receivers.{cfg.name}.routing_key_env")
        return cls(cfg, session, routing_key=key, clock=clock)

    def __repr__(self) -> str:  # never show the routing key
        return f"PagerDutyNotifier({self._cfg.name!r}, url={self._cfg.url!r})"

    async def send(self, n: Notification) -> None:
        body = pagerduty_event(
            n, routing_key=self._key, source=self._cfg.source, client_url=self._cfg.client_url
        )
        if n.reopen:
            # PagerDuty appends a trigger for an acknowledged alert to its log and rings nobody:
            # a re-page after an ack (timeout, snooze end, severity jump) resolves it first, so
            # the trigger opens a new one. A retry repeats both, which is harmless. PagerDuty's
            # webhook about this resolve names the service, not a person, as its agent, and
            # alerting.api.pagerduty_ignored keeps it from resolving the re-paged incident.
            resolve = replace(n, action="resolve")
            await self._post(pagerduty_event(resolve, routing_key=self._key, source=""))
        await self._post(body)

    async def _post(self, body: Mapping[str, Any]) -> None:
        # 400 (invalid event) is permanent; 429 and 5xx are retried by the outbox.
        await post(
            self._session,
            self._cfg.name,
            self._cfg.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=self._cfg.timeout_seconds,
            clock=self._clock,
        )
