"""Signed, expiring one-click links that let the paged person act on an incident.

A token is ``base64url(claim) "." base64url(HMAC-SHA256(secret, claim))`` where the claim is
``v1|action|incident_id|expires_at|who|param``. Nothing is stored server-side; verifying
needs only the secret (several may be given, newest first, to rotate without breaking links
already sent). Acting is idempotent (acknowledging twice is harmless), so a link needs no
single-use bookkeeping; the expiry bounds how long a leaked mail stays useful.

>>> s = LinkSigner([b"k"], base_url="https://cw.example/")
>>> url = s.url(LinkClaim("acknowledge", "inc-1", expires_at=100, who="alice"))
>>> url.startswith("https://cw.example/act/")
True
>>> s.verify(url.rsplit("/", 1)[1], now=99.0)
LinkClaim(action='acknowledge', incident_id='inc-1', expires_at=100, who='alice', param='')
>>> s.verify(url.rsplit("/", 1)[1], now=101.0)
Traceback (most recent call last):
...
alerting.links.LinkError: link expired
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from alerting.notification import Notification
from monitor.errors import CrisiswatchError

LinkAction = Literal["acknowledge", "resolve", "snooze"]
#: Keys under which links appear in ``Notification.links``.
LINK_KEYS: dict[LinkAction, str] = {"acknowledge": "ack", "resolve": "resolve", "snooze": "snooze"}


class LinkError(CrisiswatchError):
    """A link that must not be honoured; `reason` is malformed | bad_signature | expired."""

    def __init__(self, reason: Literal["malformed", "bad_signature", "expired"]) -> None:
        self.reason = reason
        super().__init__(f"link {reason.replace('_', ' ')}")


@dataclass(frozen=True, slots=True)
class LinkClaim:
    action: LinkAction
    incident_id: str
    expires_at: int
    who: str = ""
    param: str = ""  # snooze: seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode(c: LinkClaim) -> bytes:
    for part in (c.incident_id, c.who, c.param):
        if "|" in part:
            raise ValueError("link fields must not contain '|'")
    return f"v1|{c.action}|{c.incident_id}|{c.expires_at}|{c.who}|{c.param}".encode()


def sign(secret: bytes, claim: LinkClaim) -> str:
    """The token for `claim`."""
    raw = _encode(claim)
    return _b64(raw) + "." + _b64(hmac.new(secret, raw, hashlib.sha256).digest())


def verify(secrets: Sequence[bytes], token: str, now: float) -> LinkClaim:
    """The claim of a genuine, unexpired token, else :class:`LinkError`.

    >>> t = sign(b"new", LinkClaim("resolve", "i9", 50))
    >>> verify([b"newer", b"new"], t, 10.0).action
    'resolve'
    >>> verify([b"other"], t, 10.0)
    Traceback (most recent call last):
    ...
    alerting.links.LinkError: link bad signature
    """
    body, dot, mac = token.partition(".")
    try:
        raw, sig = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        raise LinkError("malformed") from None
    if not dot or not raw:
        raise LinkError("malformed")
    # Check the MAC before parsing anything the sender controls.
    if not any(
        hmac.compare_digest(hmac.new(k, raw, hashlib.sha256).digest(), sig) for k in secrets
    ):
        raise LinkError("bad_signature")
    parts = raw.decode("utf-8", "replace").split("|")
    if len(parts) != 6 or parts[0] != "v1" or parts[1] not in get_args(LinkAction):
        raise LinkError("malformed")
    try:
        expires = int(parts[3])
    except ValueError:
        raise LinkError("malformed") from None
    if now >= expires:
        raise LinkError("expired")
    action: LinkAction = parts[1]  # type: ignore[assignment]  # checked against get_args above
    return LinkClaim(action, parts[2], expires, parts[4], parts[5])


class LinkSigner:
    """Makes and checks link URLs ``{base_url}/act/{token}``; the first secret signs."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        *,
        base_url: str,
        ttl_seconds: float = 12 * 3600.0,
        snooze_seconds: float = 3600.0,
    ) -> None:
        if not secrets or not all(secrets):
            raise ValueError("a link signer needs at least one non-empty secret")
        self._secrets = list(secrets)
        self.base_url = base_url.rstrip("/")
        self.ttl_seconds, self.snooze_seconds = ttl_seconds, snooze_seconds

    def __repr__(self) -> str:
        return f"LinkSigner(base_url={self.base_url!r})"

    def url(self, claim: LinkClaim) -> str:
        return f"{self.base_url}/act/{sign(self._secrets[0], claim)}"

    def verify(self, token: str, now: float) -> LinkClaim:
        return verify(self._secrets, token, now)

    def links_for(self, incident_id: str, who: str, now: float) -> dict[str, str]:
        """Ack, resolve and snooze links for one recipient, valid for the signer's TTL.

        >>> s = LinkSigner([b"k"], base_url="http://h")
        >>> sorted(s.links_for("i1", "bob", now=0.0))
        ['ack', 'resolve', 'snooze']
        """
        exp = int(now + self.ttl_seconds)
        who = who.replace("|", "/")
        return {
            LINK_KEYS[a]: self.url(
                LinkClaim(
                    a, incident_id, exp, who, str(int(self.snooze_seconds)) if a == "snooze" else ""
                )
            )
            for a in get_args(LinkAction)
        }

    def decorate(self, n: Notification, now: float) -> Notification:
        """`n` with one-click links added to a trigger that has none (others pass unchanged)."""
        inc_id = str(n.incident.get("id", ""))
        if n.action != "trigger" or not inc_id or "|" in inc_id or "ack" in n.links:
            return n
        links = {**self.links_for(inc_id, n.recipient or n.receiver, now), **n.links}
        return replace(n, links=links)
