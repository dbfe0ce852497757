"""Bluesky Jetstream: the AT Protocol firehose as JSON over a websocket.

Frames (one JSON object each)::

    {"did": "did:plc:…", "time_us": 1725911162329308, "kind": "commit",
     "commit": {"rev": "…", "operation": "create", "collection": "app.bsky.feed.post",
                "rkey": "3l3qo2vutsw2b", "record": {"$type": "app.bsky.feed.post",
                "text": "…", "createdAt": "2024-09-09T19:46:02.102Z", "langs": ["en"],
                "reply": {"parent": {"uri": "at://…", "cid": "…"}, "root": {…}}},
                "cid": "bafy…"}}
    {"did": "…", "time_us": …, "kind": "identity", "identity": {"did": "…", "handle": "…", …}}
    {"did": "…", "time_us": …, "kind": "account", "account": {"active": true, …}}

``time_us`` is the cursor. It is persisted (with the newest dedup keys) every few seconds and
on shutdown; a reconnect asks for ``cursor - rewind`` so events in flight when the link
dropped are replayed, and the overlap is removed by dedup. The *gap* metric is how far the
first event after a reconnect lies beyond the last cursor: stream time that may be missing.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import connect

from monitor.collectors.base import AHEAD_SECONDS, SourceContext, SourceHealth
from monitor.collectors.common import (
    STABLE_SECONDS,
    WS_LIMIT_FACTOR,
    Backoff,
    Checkpoint,
    Intake,
    RecentKeys,
    ws_closed_oversize,
)
from monitor.config.sources import JetstreamConfig
from monitor.decode import check_mention, loads, parse_time
from monitor.errors import DecodeError
from monitor.model import Author, Mention

log = logging.getLogger("monitor.collectors.jetstream")

POST = "app.bsky.feed.post"
_FUTURE_SLACK = 300.0  # a createdAt this far past the relay's clock is the poster's clock lying
# stepping over a frame that ends the connection doubles up to this (a relay that ignores the
# cursor would otherwise have it grow without bound)
_MAX_SKIP_US = 60_000_000


@dataclass(frozen=True, slots=True)
class JetEvent:
    """What one frame means. `mention` for create/update of a post; `key` for a delete."""

    time_us: int
    action: Literal["create", "update", "delete", "identity", "skip"]
    mention: Mention | None = None
    key: tuple[str, str] | None = None
    did: str | None = None
    handle: str | None = None


def post_url(did: str, rkey: str) -> str:
    """Web link of a post.

    >>> post_url("did:plc:abc", "3k")
    'https://bsky.app/profile/did:plc:abc/post/3k'
    """
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def parse_frame(
    obj: object, *, source: str = "bluesky", handles: Mapping[str, str] | None = None
) -> JetEvent:
    """A decoded Jetstream frame -> :class:`JetEvent`; raises DecodeError if malformed. Pure.

    >>> ev = parse_frame({"did": "did:plc:a", "time_us": 1725911162329308, "kind": "commit",
    ...     "commit": {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "3l",
    ...                "record": {"text": "hi", "createdAt": "2024-09-09T19:46:02Z"}}})
    >>> ev.action, ev.mention.id, ev.mention.created_at
    ('create', 'at://did:plc:a/app.bsky.feed.post/3l', 1725911162.0)
    """
    if not isinstance(obj, Mapping):
        raise DecodeError("not_object", "frame is not an object")
    t = obj.get("time_us")
    if isinstance(t, bool) or not isinstance(t, int):
        raise DecodeError("missing_field" if t is None else "wrong_type", "time_us")
    did = obj.get("did")
    if not isinstance(did, str) or not did:
        raise DecodeError("missing_field" if did is None else "wrong_type", "did")
    kind = obj.get("kind")
    if kind == "identity":
        ident = obj.get("identity")
        handle = ident.get("handle") if isinstance(ident, Mapping) else None
        return JetEvent(t, "identity", did=did, handle=handle if isinstance(handle, str) else None)
    if kind != "commit":
        return JetEvent(t, "skip")  # account status and future kinds
    commit = obj.get("commit")
    if not isinstance(commit, Mapping):
        raise DecodeError("missing_field", "commit")
    op, coll, rkey = commit.get("operation"), commit.get("collection"), commit.get("rkey")
    if not isinstance(rkey, str) or not isinstance(coll, str):
        raise DecodeError("missing_field", "commit.rkey/collection")
    if coll != POST:
        return JetEvent(t, "skip")
    uri = f"at://{did}/{coll}/{rkey}"
    if op == "delete":
        return JetEvent(t, "delete", key=(source, uri))
    if op not in ("create", "update"):
        raise DecodeError("invalid_value", f"commit.operation {str(op)[:20]!r}")
    rec = commit.get("record")
    if not isinstance(rec, Mapping):
        raise DecodeError("missing_field", "commit.record")
    text = rec.get("text", "")
    if not isinstance(text, str):
        raise DecodeError("wrong_type", "record.text")
    seen_at = t / 1e6
    try:
        created = parse_time(rec.get("createdAt"), "record.createdAt")
    except DecodeError:
        created = seen_at
    if created > seen_at + _FUTURE_SLACK:
        created = seen_at
    langs = rec.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    reply = rec.get("reply")
    parent = reply.get("parent") if isinstance(reply, Mapping) else None
    parent_uri = parent.get("uri") if isinstance(parent, Mapping) else None
    handle = (handles or {}).get(did, did)
    mention = check_mention(
        Mention(
            id=uri,
            source=source,
            channel="bluesky",
            text=text,
            created_at=created,
            author=Author(id=did, handle=handle),
            lang=lang[:16] if lang else None,
            url=post_url(did, rkey),
            kind="reply" if isinstance(parent_uri, str) else "post",
            in_reply_to=parent_uri if isinstance(parent_uri, str) else None,
        )
    )
    return JetEvent(t, op, mention=mention)


def plausible_cursor(time_us: int, now: float) -> bool:
    """Whether a frame's ``time_us`` may become the resume cursor: not further ahead of the
    clock than ``AHEAD_SECONDS`` (one frame with ``time_us: 9e18`` was saved as the cursor and
    every reconnect asked for it; QA, twelfth session).

    >>> plausible_cursor(1725911162329308, now=1725911162.0)
    True
    >>> plausible_cursor(9_000_000_000_000_000_000, now=1725911162.0)
    False
    """
    return time_us <= (now + AHEAD_SECONDS) * 1e6


def ws_closed_invalid_utf8(exc: BaseException) -> bool:
    """Whether the websocket library ended the connection over a text frame that is not
    UTF-8 (close code 1007).

    >>> from websockets.exceptions import ConnectionClosedError
    >>> from websockets.frames import Close
    >>> ws_closed_invalid_utf8(ConnectionClosedError(None, Close(1007, "invalid data")))
    True
    """
    sent = getattr(exc, "sent", None)
    return sent is not None and sent.code == 1007


def subscribe_url(cfg: JetstreamConfig, cursor_us: int | None) -> str:
    """The subscribe URL with the wanted collections/DIDs and the resume cursor.

    >>> subscribe_url(JetstreamConfig(url="ws://h/subscribe"), 5)
    'ws://h/subscribe?wantedCollections=app.bsky.feed.post&cursor=5'
    """
    q: list[tuple[str, str]] = [("wantedCollections", c) for c in cfg.wanted_collections]
    q += [("wantedDids", d) for d in cfg.wanted_dids]
    if cursor_us is not None:
        q.append(("cursor", str(max(0, cursor_us))))
    return cfg.url + ("&" if "?" in cfg.url else "?") + urlencode(q)


class JetstreamSource:
    """Bluesky posts from Jetstream, resumable by cursor, deduplicated across rewinds."""

    def __init__(
        self, cfg: JetstreamConfig, ctx: SourceContext, *, seed: int | None = None
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self._intake = Intake(cfg.name, "jetstream", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health
        self._seed = seed
        self._state_key = f"collector:{cfg.name}:cursor"
        self._handles: OrderedDict[str, str] = OrderedDict()
        self.cursor: int | None = None
        self.implausible = 0  # frames whose time_us was too far ahead to become the cursor

    def _advance(self, time_us: int) -> bool:
        """Take a frame's time as the cursor when it is newer and plausible."""
        if not plausible_cursor(time_us, self.ctx.clock.now()):
            self.implausible += 1
            if self.implausible == 1:  # once: a relay with a wrong clock would flood the log
                log.warning(
                    "%s: ignoring time_us %d as the cursor: further ahead of the clock than "
                    "%.0f s (the frame itself is processed)",
                    self.name, time_us, AHEAD_SECONDS,
                )  # fmt: skip
            return False
        if self.cursor is None or time_us > self.cursor:
            self.cursor = time_us
            return True
        return False

    async def _load(self) -> None:
        if self.cursor is not None:
            return  # stream() restarted on this instance: memory is newer than the store
        raw = await self.ctx.state.get(self._state_key)
        if not raw:
            return
        try:
            state = json.loads(raw)
            cursor = int(state["cursor"])
            self._intake.dedup = RecentKeys.restore(json.dumps(state.get("recent", [])).encode())
        except (ValueError, KeyError, TypeError):
            log.warning("%s: unreadable saved cursor, starting live", self.name)
            return
        if plausible_cursor(cursor, self.ctx.clock.now()):
            self.cursor = cursor
        else:  # saved before this check existed
            log.warning("%s: saved cursor %d lies in the future, starting live", self.name, cursor)

    async def _save(self, checkpoint: Checkpoint) -> None:
        if self.cursor is None:
            return
        # keys seen in the rewind window must survive a restart, or the rewind duplicates them
        recent = self._intake.dedup.recent(5000)
        state = {"cursor": self.cursor, "recent": recent}
        await checkpoint.save(self._state_key, json.dumps(state).encode())

    def _remember_handle(self, did: str, handle: str) -> None:
        self._handles[did] = handle
        self._handles.move_to_end(did)
        if len(self._handles) > 50_000:
            self._handles.popitem(last=False)

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        await self._load()
        backoff = Backoff(
            self.cfg.backoff.initial_seconds, self.cfg.backoff.max_seconds, seed=self._seed
        )
        rewind_us = int(self.cfg.rewind_seconds * 1e6)
        limit = WS_LIMIT_FACTOR * self.cfg.max_frame_bytes
        skip_us = 0  # > 0: resume that far past the cursor, over a frame above `limit`
        attempts = 0
        checkpoint = Checkpoint(self.name, self.ctx, every=self.cfg.cursor_save_seconds)
        self._intake.link(False)  # down from the start until the relay answers
        try:
            while True:
                if attempts:
                    self._intake.reconnected()
                attempts += 1
                error: BaseException | None = None
                resumed_from = self.cursor
                if resumed_from is None:
                    url = subscribe_url(self.cfg, None)
                else:
                    url = subscribe_url(
                        self.cfg, resumed_from + skip_us if skip_us else resumed_from - rewind_us
                    )
                first = True
                opened = clock.now()
                try:
                    async with connect(url, max_size=limit, open_timeout=15) as ws:
                        self._intake.link(True)
                        log.info("%s: connected, cursor %s", self.name, resumed_from)
                        async for frame in ws:
                            raw = frame.encode() if isinstance(frame, str) else bytes(frame)
                            try:
                                ev = parse_frame(
                                    loads(raw, max_bytes=self.cfg.max_frame_bytes),
                                    source=self.name,
                                    handles=self._handles,
                                )
                            except DecodeError as err:
                                self._intake.reject_error(err, raw[: self.cfg.max_frame_bytes])
                                continue
                            except Exception as exc:
                                # a frame shape nobody foresaw must cost one frame, not the stream
                                self._intake.reject_unexpected(exc, raw[: self.cfg.max_frame_bytes])
                                continue
                            if clock.now() - opened >= STABLE_SECONDS:
                                backoff.reset()  # a stream that keeps delivering is healthy
                            plausible = plausible_cursor(ev.time_us, clock.now())
                            if first and resumed_from is not None and plausible:
                                gap = max(0.0, (ev.time_us - resumed_from) / 1e6)
                                self._intake.metrics.gap.labels(self.name).set(gap)
                                self._intake.metrics.gap_total.labels(self.name).inc(gap)
                            first = False
                            if self._advance(ev.time_us):
                                skip_us = 0
                            if ev.action == "identity" and ev.did and ev.handle:
                                self._remember_handle(ev.did, ev.handle)
                            elif ev.action == "delete" and ev.key is not None:
                                await self._intake.deleted(ev.key)
                            elif ev.mention is not None and self._intake.accept(ev.mention):
                                # an update of a post seen before is dropped by accept():
                                # the volume series already counted it once
                                yield ev.mention
                            if checkpoint.due():
                                await self._save(checkpoint)
                except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                    error = exc
                    oversize, invalid = ws_closed_oversize(exc), ws_closed_invalid_utf8(exc)
                    if (oversize or invalid) and self.cursor is not None:
                        # the cursor would replay that frame on every reconnect: step over it,
                        # 1 ms of the stream first, twice as far each time it is still ahead
                        skip_us = min(2 * skip_us, _MAX_SKIP_US) if skip_us else 1000
                        what = (
                            f"frame over the websocket limit of {limit} bytes"
                            if oversize
                            else "text frame that is not UTF-8 (websocket closed 1007)"
                        )
                        self._intake.reject(
                            "oversize" if oversize else "invalid_utf8",
                            f"{what} after cursor {self.cursor}: resuming {skip_us} us further on",
                            b"",
                        )
                finally:
                    self._intake.link(False, error)
                await self._save(checkpoint)
                await clock.sleep(backoff.next())
        finally:
            await self._save(checkpoint)


__all__ = ["JetEvent", "JetstreamSource", "parse_frame", "subscribe_url"]
