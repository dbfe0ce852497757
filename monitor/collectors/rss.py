"""RSS/Atom news poller: conditional GET, feedparser, dedup by guid (or link, or content).

Each feed keeps ``{etag, last_modified, seen}`` in the KeyValue store, so a restart neither
re-downloads an unchanged feed (``If-None-Match`` / ``If-Modified-Since`` -> 304) nor
re-emits items it already delivered. The state is kept in memory too: a store outage only
costs the state from before the process started, never the polling.
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
from monitor.collectors.common import (
    Backoff,
    Checkpoint,
    Intake,
    RecentKeys,
    payload_bytes,
    read_body,
)
from monitor.collectors.mastodon import html_to_text
from monitor.config.sources import FeedConfig, RssConfig
from monitor.decode import check_mention
from monitor.errors import DecodeError
from monitor.model import Author, Mention
from monitor.retry_after import retry_after_seconds

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


def rejected_key(feed_url: str, entry: Mapping[str, Any]) -> str:
    """The seen-list key of an item that could not become a mention: a digest of all
    feedparser read from it, so a bad item is dead-lettered once, not at every poll, and
    dead-lettered again only if the feed changes it.

    >>> e = {"title": "", "published_parsed": (2224, 5, 1, 12, 0, 0, 5, 122, 0)}
    >>> k = rejected_key("https://n.example/rss", e)
    >>> k == rejected_key("https://n.example/rss", dict(reversed(e.items()))), k[:31]
    (True, 'rejected:https://n.example/rss#')
    """
    raw = json.dumps(entry, sort_keys=True, default=str, ensure_ascii=False)
    return f"rejected:{feed_url}#{hashlib.sha256(raw.encode('utf-8', 'replace')).hexdigest()[:24]}"


def feed_mentions(
    parsed: Mapping[str, Any], feed: FeedConfig, *, source: str, now: float
) -> Iterator[tuple[Mapping[str, Any], Mention | DecodeError]]:
    """feedparser's result -> (entry, its mention or a DecodeError saying why not). Pure."""
    meta = parsed.get("feed") or {}
    title = str(meta.get("title") or feed.name or feed.url)
    lang = str(meta["language"])[:16] if meta.get("language") else None
    for entry in parsed.get("entries") or ():
        try:
            yield entry, _mention(entry, feed, title=title, lang=lang, source=source, now=now)
        except DecodeError as err:
            yield entry, err


def _mention(
    entry: Mapping[str, Any],
    feed: FeedConfig,
    *,
    title: str,
    lang: str | None,
    source: str,
    now: float,
) -> Mention:
    link = entry.get("link")
    mid = item_id(feed.url, entry.get("id"), link) or _content_id(feed.url, entry)
    if mid is None:
        raise DecodeError("missing_field", f"item without guid, link or text in {feed.url}")
    headline = html_to_text(str(entry.get("title") or ""))
    summary = html_to_text(str(entry.get("summary") or ""))
    text = (
        f"{headline}\n\n{summary}"
        if headline and summary and summary != headline
        else headline or summary
    )
    # ``"updated" in entry`` first: feedparser answers a missing ``updated`` with
    # ``published`` (and a DeprecationWarning), which was tried already
    updated = entry.get("updated") if "updated" in entry else None
    created = (
        _epoch(entry.get("published_parsed"))
        or (_epoch(entry.get("updated_parsed")) if "updated_parsed" in entry else None)
        or _zoneless(entry.get("published"))
        or _zoneless(updated)
        or now
    )
    author = str(entry.get("author") or title)
    try:
        return check_mention(
            Mention(
                id=mid[:512],
                source=source,
                channel="news",
                text=text[:100_000],
                created_at=created,  # one dated ahead is bounded by App.admit
                author=Author(id=f"{feed.url}#{author}"[:256], handle=author[:256]),
                lang=lang,
                url=str(link) if link else None,
                kind="post",
            )
        )
    except DecodeError as err:
        if not err.detail.startswith("created_at"):
            raise
        # the schema's detail guesses at epoch milliseconds, which a feed date never is
        dated = str(entry.get("published") or updated or "")[:64]
        raise DecodeError(
            err.reason, f"created_at: item date {dated!r} out of range in {feed.url}"
        ) from None


# feedparser's complaints about a document it read anyway (a charset or a media type at odds
# with the body): no reason to call the feed broken
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def feed_problem(parsed: Mapping[str, Any]) -> str | None:
    """Why feedparser's result is no usable feed, or None: it is one (maybe empty).

    A 200 that is an HTML page or empty has to count as a failed poll, or a feed URL that
    now serves a parking page looks healthy forever.

    >>> feed_problem(feedparser.parse(b"<html><body>This domain is for sale</body></html>"))
    'not an RSS/Atom/RDF document'
    >>> feed_problem(feedparser.parse(b"<html><body>502 Bad Gateway</body"))
    'SAXParseException'
    >>> feed_problem(feedparser.parse(b'<rss version="2.0"><channel/></rss>')) is None
    True
    """
    if parsed.get("entries"):
        return None  # a feed cut short still holds the items before the cut
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if exc is not None and not isinstance(exc, _HARMLESS):
        return type(exc).__name__
    if not parsed.get("version"):
        return "not an RSS/Atom/RDF document"
    return None


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


class FeedFailed(Exception):
    """A feed answered 200 with something that is no usable feed (already dead-lettered)."""


class FeedRefused(aiohttp.ClientResponseError):
    """A feed answered an HTTP error; `retry_after` is its ``Retry-After`` (429/503) in
    seconds, capped (``MAX_RETRY_AFTER_SECONDS``), or None."""

    def __init__(self, resp: aiohttp.ClientResponse, retry_after: float | None) -> None:
        told = f"; Retry-After {retry_after:.0f} s" if retry_after is not None else ""
        super().__init__(
            resp.request_info, (), status=resp.status, message=f"{resp.reason or ''}{told}"
        )
        self.retry_after = retry_after


#: A failing feed is tried again after 5 s, then after up to twice as long each time (full
#: jitter, never sooner than 5 s), up to its interval but at most 60 s: a feed that is back
#: is seen within a minute (with 4 x interval as the cap, a 60 s outage kept the source "not
#: connected" 90 s after the feed was back; QA).
RETRY_FLOOR_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0


def retry_backoff(interval: float, seed: int | None = None) -> Backoff:
    """The retry delays of one feed polled every `interval` seconds.

    >>> b = retry_backoff(300.0, seed=1)
    >>> waits = [b.next() for _ in range(8)]
    >>> waits[0], all(5.0 <= w <= 60.0 for w in waits)
    (5.0, True)
    >>> max(retry_backoff(10.0, seed=2).next() for _ in range(50))
    5.0
    """
    cap = max(RETRY_FLOOR_SECONDS, min(interval, RETRY_MAX_SECONDS))
    return Backoff(RETRY_FLOOR_SECONDS, cap, floor=RETRY_FLOOR_SECONDS, seed=seed)


def retry_delay(backoff: Backoff, exc: BaseException, interval: float) -> float:
    """How long a feed whose poll failed with `exc` waits: the backoff, but at least the
    ``Retry-After`` a 429/503 sent (a feed asking for 120 s was polled again after 3.3, 5.7
    and 13.1 s; QA), and a 429 without one at least an interval.

    >>> class R(FeedRefused):
    ...     def __init__(self, status, after):
    ...         self.status, self.retry_after = status, after
    >>> b = retry_backoff(300.0, seed=1)
    >>> retry_delay(b, R(429, 120.0), 300.0), retry_delay(b, R(429, None), 300.0)
    (120.0, 300.0)
    >>> retry_delay(retry_backoff(300.0, seed=1), R(500, None), 300.0)
    5.0
    """
    delay = backoff.next()
    if isinstance(exc, FeedRefused):
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        elif exc.status == 429:
            delay = max(delay, interval)
    return delay


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
        # per feed key: the newest state (memory is never older than the store) and the
        # digest of the bad answer it keeps giving (dead-lettered once per run of failures)
        self._states: dict[str, FeedState] = {}
        self._failing: dict[str, str] = {}

    def _key(self, feed: FeedConfig) -> str:
        return f"collector:{self.name}:feed:{hashlib.sha1(feed.url.encode()).hexdigest()[:16]}"

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        feeds = self.cfg.feeds
        due = [clock.monotonic()] * len(feeds)
        backoffs = [
            retry_backoff(f.interval_seconds or self.cfg.interval_seconds, self._seed)
            for f in feeds
        ]
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_seconds)
        headers = {
            "User-Agent": self.cfg.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        }
        checkpoint = Checkpoint(self.name, self.ctx, every=0.0)
        # a good poll is a sign of life: stale only after a few intervals without one
        self.health.poll_interval = max(
            f.interval_seconds or self.cfg.interval_seconds for f in feeds
        )
        self._intake.link(False)  # down from the start until a poll succeeds
        answering = [False] * len(feeds)  # whether each feed's last poll succeeded
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
                except (TimeoutError, aiohttp.ClientError, OSError, FeedFailed) as exc:
                    # the source is up while any feed answers: one broken feed of several
                    # made a working source flap down and 503 (review, twelfth session)
                    answering[i] = False
                    self._intake.link(any(answering), exc)
                    self._intake.reconnected()
                    delay = retry_delay(backoffs[i], exc, interval)
                    log.warning(
                        "%s: %s: %s %s (next try in %.0f s)",
                        self.name, feed.url, type(exc).__name__, str(exc)[:200], delay,
                    )  # fmt: skip
                    due[i] = clock.monotonic() + delay
                    continue
                backoffs[i].reset()
                self._failing.pop(self._key(feed), None)
                answering[i] = True
                self._intake.link(True)
                self.health.alive(clock.now())  # a 304 too: the feed answers
                due[i] = clock.monotonic() + interval
                for m in new:
                    yield m
                if state is not None:
                    # saved only after the consumer took every new item: a crash re-emits
                    # (dedup downstream) rather than loses; a store outage is logged and the
                    # polling goes on
                    self._states[self._key(feed)] = state
                    await checkpoint.save(self._key(feed), state.to_bytes())

    async def _state(self, feed: FeedConfig) -> FeedState:
        """The feed's newest state: from memory, else from the store, else a blank one."""
        key = self._key(feed)
        state = self._states.get(key)
        if state is None:
            try:
                raw = await self.ctx.state.get(key)
            except Exception as exc:
                # the state only saves a download and a few repeats: poll without it, and
                # try the store again next time
                log.warning(
                    "%s: %s: could not read its saved state, polling without it: %s: %s",
                    self.name, feed.url, type(exc).__name__, str(exc)[:200],
                )  # fmt: skip
                return FeedState()
            state = self._states[key] = FeedState.from_bytes(raw)
        return state

    def _failed(self, feed: FeedConfig, reason: str, detail: str, body: bytes) -> FeedFailed:
        """Dead-letter a bad answer (unless the feed gave this same one last time): the
        failed poll itself is counted by the caller."""
        digest = hashlib.sha256(body).hexdigest()
        if self._failing.get(self._key(feed)) != digest:
            self._failing[self._key(feed)] = digest
            self._intake.reject(reason, f"{feed.url}: {detail}", body[:65536])
        return FeedFailed(detail)

    async def _poll(
        self, session: aiohttp.ClientSession, feed: FeedConfig
    ) -> tuple[list[Mention], FeedState | None]:
        state = await self._state(feed)
        self.polls += 1
        async with session.get(feed.url, headers=conditional_headers(state)) as resp:
            if resp.status == 304:
                self.not_modified += 1
                return [], None
            if resp.status >= 400:
                after = (
                    retry_after_seconds(resp.headers.get("Retry-After"), self.ctx.clock.now())
                    if resp.status in (429, 503)
                    else None
                )
                raise FeedRefused(resp, after)
            body = await read_body(resp.content, self.cfg.max_body_bytes)
            etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            # feedparser reads the charset from here only (lower-case key): without it a
            # koi8-r feed declared in the header alone is read as windows-1252. Not
            # Content-Location: feedparser would resolve bare guids against it, changing ids
            content_type = resp.headers.get("Content-Type", "")
        if body is None:
            oversize = f"feed > {self.cfg.max_body_bytes} bytes"
            raise self._failed(feed, "oversize", oversize, b"")
        # feedparser is synchronous and can take a while on big feeds: keep the loop free
        http = {"content-type": content_type} if content_type else {}
        parsed = await asyncio.to_thread(feedparser.parse, body, response_headers=http)
        problem = feed_problem(parsed)
        if problem is not None:
            shown = f"{problem} ({content_type or 'no content-type'}, {len(body)} bytes)"
            raise self._failed(feed, "malformed_feed", shown, body)
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
        for entry, item in items:
            if isinstance(item, DecodeError):
                if not seen.seen(rejected_key(feed.url, entry)):
                    self._intake.reject_error(item, payload_bytes(entry))
            elif not seen.seen(item.id) and self._intake.accept(item):
                out.append(item)
        return out, FeedState(etag, modified, seen.recent(self.cfg.remember_items))
