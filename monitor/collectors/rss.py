"""RSS/Atom news poller: conditional GET, feedparser, dedup by guid (or link, or content).

Each feed keeps ``{etag, last_modified, seen}`` in the KeyValue store, so a restart neither
re-downloads an unchanged feed (``If-None-Match`` / ``If-Modified-Since`` -> 304) nor
re-emits items it already delivered.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import feedparser

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Backoff, Checkpoint, Intake, RecentKeys, read_body
from monitor.collectors.mastodon import html_to_text
from monitor.config.sources import FeedConfig, RssConfig
from monitor.decode import check_mention
from monitor.errors import DecodeError
from monitor.model import Author, Mention

log = logging.getLogger("monitor.collectors.rss")


def item_id(feed_url: str, guid: str | None, link: str | None) -> str | None:
    """The dedup id of an item: its guid if globally unique, else scoped to the feed; else link.

    >>> item_id("https://n.example/rss", "https://n.example/a/1", None)
    'https://n.example/a/1'
    >>> item_id("https://n.example/rss", "1234", "https://n.example/a/1")
    'https://n.example/rss#1234'
    >>> item_id("https://n.example/rss", None, "https://n.example/a/1")
    'https://n.example/a/1'
    """
    if guid:
        return guid if ":" in guid else f"{feed_url}#{guid}"
    return link or None


def _epoch(st: Any) -> float | None:
    try:
        return float(calendar.timegm(st)) if st else None
    except (TypeError, ValueError, OverflowError):
        return None


def _zoneless(raw: object) -> float | None:
    """An RFC 822 date feedparser gave up on, most often one without a zone: read as UTC.

    >>> _zoneless("Wed, 01 May 2024 12:00:00"), _zoneless("soon")
    (1714564800.0, None)
    """
    parts = email.utils.parsedate_tz(raw) if isinstance(raw, str) and raw else None
    if parts is None:
        return None
    try:
        return float(calendar.timegm(parts[:9]) - (parts[9] or 0))
    except (TypeError, ValueError, OverflowError):
        return None


def _content_id(feed_url: str, entry: Mapping[str, Any]) -> str | None:
    """The id of an item with neither guid nor link (RSS 2.0 only asks for a title or a
    description): a digest of what it says, so the same item keeps its id poll after poll."""
    parts = [str(entry.get(k) or "") for k in ("title", "summary", "published")]
    if not parts[0] and not parts[1]:
        return None
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:24]
    return f"{feed_url}#{digest}"


def feed_mentions(
    parsed: Mapping[str, Any], feed: FeedConfig, *, source: str, now: float
) -> Iterator[Mention | DecodeError]:
    """feedparser's result -> mentions (or DecodeError for unusable items). Pure."""
    meta = parsed.get("feed") or {}
    title = str(meta.get("title") or feed.name or feed.url)
    lang = meta.get("language")
    for entry in parsed.get("entries") or ():
        link = entry.get("link")
        mid = item_id(feed.url, entry.get("id"), link) or _content_id(feed.url, entry)
        if mid is None:
            yield DecodeError("missing_field", f"item without guid, link or text in {feed.url}")
            continue
        headline = html_to_text(str(entry.get("title") or ""))
        summary = html_to_text(str(entry.get("summary") or ""))
        text = (
            f"{headline}\n\n{summary}"
            if headline and summary and summary != headline
            else headline or summary
        )
        # ``"updated" in entry`` first: feedparser answers a missing ``updated`` with
        # ``published`` (and a DeprecationWarning), which was tried already
        created = (
            _epoch(entry.get("published_parsed"))
            or (_epoch(entry.get("updated_parsed")) if "updated_parsed" in entry else None)
            or _zoneless(entry.get("published"))
            or (_zoneless(entry.get("updated")) if "updated" in entry else None)
            or now
        )
        author = str(entry.get("author") or title)
        try:
            yield check_mention(
                Mention(
                    id=mid[:512],
                    source=source,
                    channel="news",
                    text=text[:100_000],
                    created_at=created,  # one dated ahead is bounded by App.admit
                    author=Author(id=f"{feed.url}#{author}"[:256], handle=author[:256]),
                    lang=str(lang)[:16] if lang else None,
                    url=str(link) if link else None,
                    kind="post",
                )
            )
        except DecodeError as err:
            yield err


@dataclass
class FeedState:
    etag: str | None = None
    last_modified: str | None = None
    seen: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"etag": self.etag, "last_modified": self.last_modified, "seen": self.seen}
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> FeedState:
        try:
            d = json.loads(raw) if raw else {}
            return cls(
                d.get("etag"),
                d.get("last_modified"),
                [s for s in d.get("seen", []) if isinstance(s, str)],
            )
        except (ValueError, AttributeError):
            return cls()


def conditional_headers(state: FeedState) -> dict[str, str]:
    """Headers that let the server answer 304 Not Modified.

    >>> conditional_headers(FeedState(etag='"v1"', last_modified="Wed, 01 May 2024 12:00:00 GMT"))
    {'If-None-Match': '"v1"', 'If-Modified-Since': 'Wed, 01 May 2024 12:00:00 GMT'}
    """
    h: dict[str, str] = {}
    if state.etag:
        h["If-None-Match"] = state.etag
    if state.last_modified:
        h["If-Modified-Since"] = state.last_modified
    return h


class RssSource:
    """Polls the configured feeds, each at its own interval, one at a time."""

    def __init__(self, cfg: RssConfig, ctx: SourceContext, *, seed: int | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self._intake = Intake(cfg.name, "rss", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health
        self._seed = seed
        self.polls = 0
        self.not_modified = 0

    def _key(self, feed: FeedConfig) -> str:
        return f"collector:{self.name}:feed:{hashlib.sha1(feed.url.encode()).hexdigest()[:16]}"

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        feeds = self.cfg.feeds
        due = [clock.monotonic()] * len(feeds)
        backoffs = [Backoff(5.0, self.cfg.interval_seconds * 4, seed=self._seed) for _ in feeds]
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_seconds)
        headers = {
            "User-Agent": self.cfg.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        }
        checkpoint = Checkpoint(self.name, self.ctx, every=0.0)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                i = min(range(len(feeds)), key=due.__getitem__)
                wait = due[i] - clock.monotonic()
                if wait > 0:
                    await clock.sleep(wait)
                feed = feeds[i]
                interval = feed.interval_seconds or self.cfg.interval_seconds
                try:
                    new, state = await self._poll(session, feed)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    self._intake.set_connected(False)
                    self._intake.reconnected()
                    log.warning("%s: %s: %s", self.name, feed.url, type(exc).__name__)
                    due[i] = clock.monotonic() + backoffs[i].next()
                    continue
                backoffs[i].reset()
                self._intake.set_connected(True)
                due[i] = clock.monotonic() + interval
                for m in new:
                    yield m
                if state is not None:
                    # saved only after the consumer took every new item: a crash re-emits
                    # (dedup downstream) rather than loses; a store outage is logged and the
                    # polling goes on
                    await checkpoint.save(self._key(feed), state.to_bytes())

    async def _poll(
        self, session: aiohttp.ClientSession, feed: FeedConfig
    ) -> tuple[list[Mention], FeedState | None]:
        state = FeedState.from_bytes(await self.ctx.state.get(self._key(feed)))
        self.polls += 1
        async with session.get(feed.url, headers=conditional_headers(state)) as resp:
            if resp.status == 304:
                self.not_modified += 1
                return [], None
            if resp.status >= 400:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            body = await read_body(resp.content, self.cfg.max_body_bytes)
            etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        if body is None:
            self._intake.reject(
                "oversize", f"{feed.url}: feed > {self.cfg.max_body_bytes} bytes", b""
            )
            return [], None
        # feedparser is synchronous and can take a while on big feeds: keep the loop free
        parsed = await asyncio.to_thread(feedparser.parse, body)
        if parsed.get("bozo") and not parsed.get("entries"):
            exc = parsed.get("bozo_exception")
            self._intake.reject("malformed_feed", f"{feed.url}: {type(exc).__name__}", body[:65536])
            return [], None
        seen = RecentKeys(self.cfg.remember_items)
        for k in state.seen:
            seen.seen(k)
        try:
            items = list(feed_mentions(parsed, feed, source=self.name, now=self.ctx.clock.now()))
        except Exception as exc:
            # an entry shape nobody foresaw: keep the feed body, try again next interval
            self._intake.reject_unexpected(exc, body[:65536])
            return [], None
        out: list[Mention] = []
        for item in items:
            if isinstance(item, DecodeError):
                self._intake.reject_error(item, b"")
            elif not seen.seen(item.id) and self._intake.accept(item):
                out.append(item)
        return out, FeedState(etag, modified, seen.recent(self.cfg.remember_items))
