"""Meta (Facebook Page / Instagram / Messenger) webhooks.

GET  — the subscription handshake: ``hub.mode=subscribe``, ``hub.verify_token`` equal to ours
       (constant-time) -> 200 with ``hub.challenge`` as the body, else 403.
POST — ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed by the app
       secret>``, checked in constant time before anything is parsed; bad or missing -> 401,
       counted. Then every change/message becomes a mention, a delete, a skip (reactions, …)
       or a dead letter. Meta retries non-2xx deliveries, so a signed body is answered 200
       even when it or items in it were dead-lettered (a retry would fail the same way); a
       redelivered body (same digest) is answered alike, all ``duplicate`` but its skips,
       and nothing in it is dead-lettered or deleted twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Intake, RecentKeys, Secret, metrics_for, payload_bytes
from monitor.collectors.ingest import json_error, read_limited
from monitor.config.sources import MetaWebhookConfig
from monitor.decode import check_mention, loads
from monitor.errors import DecodeError
from monitor.model import Author, Kind, Mention
from monitor.server import ROUTINE

log = logging.getLogger("monitor.collectors.meta")

#: Signed bodies remembered (by digest) to tell a redelivery; ~1.5 MB. In memory only: after a
#: restart a redelivered body's deletes and rejects count again (its mentions are still dedup'd).
BODY_MEMORY = 10_000
_POST_ITEMS = frozenset({"post", "status", "photo", "video", "share", "album", "event", "note"})


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for `body`.

    >>> sign(b"secret", b"{}")
    'sha256=77325902caca812dc259733aacd046b73817372c777b8d95b402647474516e13'
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of the header against the HMAC of the raw body.

    >>> signature_ok(b"k", b"x", sign(b"k", b"x")), signature_ok(b"k", b"y", sign(b"k", b"x"))
    (True, False)
    >>> signature_ok(b"k", b"x", None), signature_ok(b"k", b"x", "sha1=abc")
    (False, False)
    """
    if not header or not header.startswith("sha256="):
        return False
    # non-UTF-8 header bytes arrive as surrogate escapes; a plain .encode() would raise (500)
    sent = header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sent, sign(secret, body).encode())


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo for a valid subscription handshake, else None.

    >>> handshake({"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "42"}, "t")
    '42'
    >>> handshake({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42"}, "t")
    """
    if params.get("hub.mode") != "subscribe" or "hub.challenge" not in params:
        return None
    token = params.get("hub.verify_token", "")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return params["hub.challenge"]


@dataclass(frozen=True, slots=True)
class Deleted:
    key: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Skipped:
    why: str


@dataclass(frozen=True, slots=True)
class Rejected:
    error: DecodeError
    payload: bytes


Outcome = Mention | Deleted | Skipped | Rejected


def _epoch(v: object) -> float | None:
    # Graph API mixes seconds (feed created_time, entry.time) and milliseconds (messaging)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    t = float(v)
    t = t / 1000.0 if t > 1e11 else t
    return t if math.isfinite(t) and t > 0 else None


def _s(v: object) -> str | None:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def meta_events(payload: object, *, source: str = "meta") -> Iterator[Outcome]:
    """A decoded webhook body -> what each change/message in it means. Pure.

    >>> body = {"object": "page", "entry": [{"id": "p1", "time": 1714564800, "changes": [
    ...   {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "c9",
    ...    "post_id": "p1_5", "parent_id": "p1_5", "message": "refund now",
    ...    "from": {"id": "u1", "name": "Ann"}, "created_time": 1714564790}}]}]}
    >>> [(m.id, m.kind, m.channel, m.text) for m in meta_events(body)]
    [('c9', 'comment', 'facebook', 'refund now')]
    """
    if not isinstance(payload, Mapping):
        yield Rejected(DecodeError("not_object", "webhook body is not an object"), b"")
        return
    obj = payload.get("object")
    if obj not in ("page", "instagram"):
        err = DecodeError("unknown_source", f"object {str(obj)[:40]!r}")
        yield Rejected(err, payload_bytes(payload))
        return
    channel = "facebook" if obj == "page" else "instagram"
    entries = payload.get("entry")
    if not isinstance(entries, list):
        yield Rejected(DecodeError("missing_field", "entry"), payload_bytes(payload))
        return
    for entry in entries:
        if not isinstance(entry, Mapping):
            yield Rejected(
                DecodeError("wrong_type", "entry[]: not an object"), payload_bytes(entry)
            )
            continue
        entry_time = _epoch(entry.get("time"))
        changes, messaging = entry.get("changes") or [], entry.get("messaging") or []
        if not isinstance(changes, list) or not isinstance(messaging, list):
            yield Rejected(
                DecodeError("wrong_type", "entry[].changes/messaging: not a list"),
                payload_bytes(entry),
            )
            continue
        for change in changes:
            yield _change(change, channel, entry_time, source)
        for msg in messaging:
            yield _messaging(msg, channel, source)


def _change(change: object, channel: str, entry_time: float | None, source: str) -> Outcome:
    raw = payload_bytes(change)
    if not isinstance(change, Mapping) or not isinstance(change.get("value"), Mapping):
        return Rejected(DecodeError("wrong_type", "changes[]: expected {field, value}"), raw)
    field, v = change.get("field"), change["value"]
    sender = v.get("from")
    if not isinstance(sender, Mapping):
        sender = {}
    author = Author(
        id=_s(sender.get("id")) or "unknown",
        handle=_s(sender.get("username")) or _s(sender.get("name")) or "unknown",
    )
    created = _epoch(v.get("created_time")) or entry_time
    if field == "feed":
        item, verb = v.get("item"), v.get("verb")
        kind: Kind
        if item == "comment":
            mid, kind = _s(v.get("comment_id")), "comment"
        elif isinstance(item, str) and item in _POST_ITEMS:
            mid, kind = _s(v.get("post_id")), "post"
        else:
            return Skipped(f"feed item {str(item)[:20]}")
        if mid is None:
            return Rejected(DecodeError("missing_field", f"{item}_id"), raw)
        if verb == "remove":
            return Deleted((source, mid))
        if verb not in ("add", "edited", None):
            return Skipped(f"verb {str(verb)[:20]}")
        text = v.get("message")
        parent = _s(v.get("parent_id"))
        post_id = _s(v.get("post_id"))
        if kind == "comment" and parent and parent != post_id:
            kind = "reply"
        return _mention(
            source,
            mid,
            channel,
            text,
            created,
            author,
            kind,
            parent if kind != "post" else None,
            _s(v.get("permalink_url"))
            or (f"https://www.facebook.com/{post_id}" if post_id else None),
            raw,
        )
    if field in ("comments", "live_comments"):
        mid = _s(v.get("id"))
        if mid is None:
            return Rejected(DecodeError("missing_field", "value.id"), raw)
        media = v.get("media") if isinstance(v.get("media"), Mapping) else {}
        parent = _s(v.get("parent_id"))
        return _mention(
            source,
            mid,
            channel,
            v.get("text"),
            created,
            author,
            "reply" if parent else "comment",
            parent or _s(media.get("id")),
            None,
            raw,
        )
    return Skipped(f"field {str(field)[:30]}")


def _messaging(msg: object, channel: str, source: str) -> Outcome:
    raw = payload_bytes(msg)
    if not isinstance(msg, Mapping):
        return Rejected(DecodeError("wrong_type", "messaging[]: not an object"), raw)
    message = msg.get("message")
    if not isinstance(message, Mapping):
        return Skipped("messaging without message")  # delivery/read receipts, postbacks
    mid = _s(message.get("mid"))
    if mid is None:
        return Rejected(DecodeError("missing_field", "message.mid"), raw)
    if message.get("is_deleted"):
        return Deleted((source, mid))
    if message.get("is_echo"):
        return Skipped("echo of our own message")
    sender = msg.get("sender")
    if not isinstance(sender, Mapping):
        sender = {}
    sid = _s(sender.get("id")) or "unknown"
    reply_to = message.get("reply_to")
    return _mention(
        source,
        mid,
        channel,
        message.get("text", ""),
        _epoch(msg.get("timestamp")),
        Author(id=sid, handle=sid),
        "dm",
        _s(reply_to.get("mid")) if isinstance(reply_to, Mapping) else None,
        None,
        raw,
    )


def _mention(
    source: str,
    mid: str,
    channel: str,
    text: object,
    created: float | None,
    author: Author,
    kind: Kind,
    in_reply_to: str | None,
    url: str | None,
    raw: bytes,
) -> Outcome:
    if text is None:
        text = ""
    if not isinstance(text, str):
        return Rejected(DecodeError("wrong_type", "message text is not a string"), raw)
    if created is None:
        return Rejected(DecodeError("missing_field", "created_time"), raw)
    try:
        return check_mention(
            Mention(
                id=mid,
                source=source,
                channel=channel,
                text=text,
                created_at=created,
                author=author,
                kind=kind,
                in_reply_to=in_reply_to,
                url=url,
            )
        )
    except DecodeError as err:
        return Rejected(err, raw)


class MetaWebhook:
    """The webhook endpoint pair; `health` is its (push) source health."""

    def __init__(
        self,
        cfg: MetaWebhookConfig,
        ctx: SourceContext,
        *,
        verify_token: Secret | None,
        app_secret: Secret | None,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.intake = Intake(
            cfg.name, "webhook", ctx, stale_after=cfg.stale_after_seconds or math.inf
        )
        self.health: SourceHealth = self.intake.health
        self._verify = verify_token
        self._secret = app_secret
        self._metrics = metrics_for(ctx.registry)
        self._bodies = RecentKeys(BODY_MEMORY)  # digests of the signed bodies handled
        self._taking: set[str] = set()  # digests of the bodies being handled now
        self.intake.set_connected(app_secret is not None and verify_token is not None)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.cfg.path, self.verify), web.post(self.cfg.path, self.receive)]

    async def verify(self, request: web.Request) -> web.Response:
        if self._verify is None:
            return json_error(503, "verify token not configured")
        challenge = handshake(request.query, self._verify.reveal())
        if challenge is None:
            self._metrics.auth_failures.labels(self.cfg.name, "verify_token").inc()
            return json_error(403, "forbidden")
        return web.Response(text=challenge)

    async def receive(self, request: web.Request) -> web.Response:
        request[ROUTINE] = True  # an accepted push is no news in the log: one per mention
        if self._secret is None:
            return json_error(503, "app secret not configured")
        raw = await read_limited(request, self.cfg.max_body_bytes)
        if raw is None:
            # unread, so unsigned for all we know: a dead letter (a store row) per request
            # would let anyone fill the store; the log line and the 413 say it
            log.warning(
                "%s: webhook POST over %d bytes from %s refused (413)",
                self.cfg.name, self.cfg.max_body_bytes, request.remote,
            )  # fmt: skip
            return json_error(413, "too large")
        if not signature_ok(
            self._secret.reveal().encode(), raw, request.headers.get("X-Hub-Signature-256")
        ):
            self._metrics.auth_failures.labels(self.cfg.name, "signature").inc()
            log.warning(
                "%s: webhook POST with a bad signature from %s", self.cfg.name, request.remote
            )
            return json_error(401, "bad signature")
        # Meta redelivers a body it saw no 2xx for (a timeout, a restart): its mentions are
        # caught by dedup, its deletes and rejects by the digest of the signed body
        digest = hashlib.sha256(raw).hexdigest()[:32]
        # a retry usually comes while the first delivery still runs (no 2xx yet): it is a
        # redelivery from the moment the first is taken, not once that one is done
        again = digest in self._bodies or digest in self._taking
        self._taking.add(digest)
        try:
            counts = await self._take(raw, again)
        except BaseException:
            if not again:
                self._taking.discard(digest)  # cut short: a redelivery is taken whole again
            raise
        if not again:
            self._taking.discard(digest)
            self._bodies.seen(digest)
        # 200 whatever was rejected (a signed body, which a retry would not mend)
        return web.json_response(counts)

    async def _take(self, raw: bytes, again: bool) -> dict[str, int]:
        """What became of each item of a signed body; `again`: the body was handled before."""
        counts = {"accepted": 0, "duplicate": 0, "deleted": 0, "skipped": 0, "rejected": 0}
        try:
            outcomes = list(
                meta_events(loads(raw, max_bytes=self.cfg.max_body_bytes), source=self.cfg.name)
            )
        except DecodeError as err:
            outcomes = [Rejected(err, raw)]
        except Exception as exc:
            # a body shape nobody foresaw: keep it whole in the dead-letter store
            if not again:
                self.intake.reject_unexpected(exc, raw)
            counts["duplicate" if again else "rejected"] += 1
            return counts
        for out in outcomes:
            if isinstance(out, Mention):
                if self.intake.accept(out):
                    await self.ctx.submit(out)
                    counts["accepted"] += 1
                else:
                    counts["duplicate"] += 1
            elif isinstance(out, Skipped):
                counts["skipped"] += 1
            elif again:
                counts["duplicate"] += 1  # deleted or dead-lettered at the first delivery
            elif isinstance(out, Deleted):
                await self.intake.deleted(out.key)
                counts["deleted"] += 1
            else:
                self.intake.reject_error(out.error, out.payload)
                counts["rejected"] += 1
        return counts
