"""Generic JSON webhook, signed so the receiver can trust it.

Headers: ``X-Crisiswatch-Signature: v1=<hex>`` where hex is HMAC-SHA256(secret, raw body),
``X-Crisiswatch-Id`` (the notification id: the receiver's idempotency key; a retry repeats it)
and ``X-Crisiswatch-Timestamp`` (send time, epoch seconds; also inside the signed body as
``sent_at``, so a receiver can reject stale replays).

>>> sign_body(b"secret", b'{"a":1}')
'v1=aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494'
>>> verify_body([b"old", b"secret"], b'{"a":1}', "v1=00, " + sign_body(b"secret", b'{"a":1}'))
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView, post
from monitor.clock import Clock
from monitor.config.receivers import WebhookReceiver, secret


def sign_body(key: bytes, body: bytes) -> str:
    """The signature header value for `body`."""
    return "v1=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_body(keys: list[bytes], body: bytes, header: str | None) -> bool:
    """True when any ``v1=`` entry of a comma-separated `header` matches any key (rotation)."""
    if not header:
        return False
    given = [p.strip() for p in header.split(",") if p.strip().startswith("v1=")]
    return any(hmac.compare_digest(sign_body(k, body), g) for k in keys for g in given)


def webhook_body(n: Notification, *, sent_at: float) -> dict[str, Any]:
    v = IncidentView.of(n.incident)
    return {
        "version": 1,
        "id": n.id,
        "receiver": n.receiver,
        "action": n.action,
        "dedup_key": n.dedup_key,
        "recipient": n.recipient,
        "created_at": n.created_at,
        "sent_at": sent_at,
        "summary": v.summary,
        "severity": v.severity,
        "incident": n.incident,
        "links": dict(n.links),
    }


class WebhookNotifier:
    def __init__(
        self, cfg: WebhookReceiver, session: aiohttp.ClientSession, *, key: bytes, clock: Clock
    ) -> None:
        self._cfg, self._session, self._key, self._clock = cfg, session, key, clock

    @classmethod
    def from_config(
        cls,
        cfg: WebhookReceiver,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        clock: Clock,
    ) -> WebhookNotifier:
        key = secret(env, cfg.secret_env, f"receivers.{cfg.name}.secret_env").encode()
        return cls(cfg, session, key=key, clock=clock)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self._cfg.name!r}, url={self._cfg.url!r})"

    async def send(self, n: Notification) -> None:
        now = self._clock.now()
        body = json.dumps(webhook_body(n, sent_at=now), separators=(",", ":")).encode()
        await post(
            self._session,
            self._cfg.name,
            self._cfg.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Crisiswatch-Signature": sign_body(self._key, body),
                "X-Crisiswatch-Id": n.id,
                "X-Crisiswatch-Timestamp": str(int(now)),
            },
            timeout=self._cfg.timeout_seconds,
            clock=self._clock,
        )
