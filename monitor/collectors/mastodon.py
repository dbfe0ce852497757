"""Mastodon streaming API over one websocket (``/api/v1/streaming``).

After connecting (token in ``Authorization: Bearer``), the client sends one subscribe frame
per stream::

    {"type": "subscribe", "stream": "public"}
    {"type": "subscribe", "stream": "hashtag", "tag": "acme"}
    {"type": "subscribe", "stream": "list", "list": "42"}

and receives ``{"stream": ["hashtag", "acme"], "event": "update", "payload": "<Status JSON as a
string>"}``; ``status.update`` carries an edited status, ``delete`` a status id as payload.
A status can arrive on several subscribed streams at once: dedup keeps the first.

The stream has no resume cursor, so after a reconnect (and after a restart: the newest status
id is kept in the state store) each stream's REST timeline fills the gap: ``GET
/api/v1/timelines/{public,tag/:tag,list/:id}?min_id=<newest seen>&limit=40`` pages forward
(oldest page first; a page lists newest first) for at most ``backfill_pages`` pages per
stream, and the timelines' statuses are merged oldest first (ids are time-ordered integers,
Mastodon's snowflakes). It runs right after subscribing, so the stream covers what is posted
meanwhile and dedup drops the overlap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import quote, urlsplit

import aiohttp
import websockets
from websockets.asyncio.client import connect

from monitor.collectors.base import AHEAD_SECONDS, SourceContext, SourceHealth
from monitor.collectors.common import (
    STABLE_SECONDS,
    WS_LIMIT_FACTOR,
    Backoff,
    Checkpoint,
    Intake,
    Secret,
    payload_bytes,
    read_body,
)
from monitor.config.sources import MastodonConfig, MastodonStreamConfig
from monitor.decode import check_mention, loads, parse_time
from monitor.errors import DecodeError
from monitor.model import Author, Kind, Mention

log = logging.getLogger("monitor.collectors.mastodon")


class _Text(HTMLParser):
    _BLOCK = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._BLOCK and self.parts and not self.parts[-1].endswith("\n\n"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Status HTML -> plain text: paragraphs and line breaks kept, tags dropped, entities decoded.

    >>> html_to_text('<p>Hi <a href="https://x"><span class="invisible">https://</span>'
    ...              '<span>x.org</span></a> &amp; you</p><p>2nd<br>line</p>')
    'Hi https://x.org & you\\n\\n2nd\\nline'
    """
    p = _Text()
    p.feed(html)
    p.close()
    text = "".join(p.parts)
    lines = [ln.strip() for ln in text.split("\n")]
    out = "\n".join(lines)
    while "\n\n\n" in out:
        out = out.replace("\n\n\n", "\n\n")
    return out.strip()


def subscribe_frames(streams: list[MastodonStreamConfig]) -> list[str]:
    """The subscribe frames for the configured streams.

    >>> subscribe_frames([MastodonStreamConfig(stream="hashtag", tag="acme")])
    ['{"type":"subscribe","stream":"hashtag","tag":"acme"}']
    """
    out = []
    for s in streams:
        frame: dict[str, str] = {"type": "subscribe", "stream": s.stream}
        if s.tag:
            frame["tag"] = s.tag
        if s.list:
            frame["list"] = s.list
        out.append(json.dumps(frame, separators=(",", ":")))
    return out


PAGE = 40  # the largest page the timelines serve


def rest_origin(stream_url: str) -> str:
    """The REST API's origin for a streaming URL.

    >>> rest_origin("wss://mastodon.social/api/v1/streaming")
    'https://mastodon.social'
    >>> rest_origin("ws://127.0.0.1:8080/api/v1/streaming")
    'http://127.0.0.1:8080'
    """
    u = urlsplit(stream_url)
    return f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}"


def timeline_of(s: MastodonStreamConfig) -> tuple[str, dict[str, str]]:
    """The REST timeline (path, query) holding what stream ``s`` streams.

    >>> timeline_of(MastodonStreamConfig(stream="hashtag:local", tag="café"))
    ('/api/v1/timelines/tag/caf%C3%A9', {'local': 'true'})
    >>> timeline_of(MastodonStreamConfig(stream="public:remote"))
    ('/api/v1/timelines/public', {'remote': 'true'})
    """
    scope = s.stream.partition(":")[2]
    query = {scope: "true"} if scope else {}
    if s.stream.startswith("hashtag"):
        return f"/api/v1/timelines/tag/{quote(s.tag or '', safe='')}", query
    if s.stream == "list":
        return f"/api/v1/timelines/list/{quote(s.list or '', safe='')}", query
    return "/api/v1/timelines/public", query


def status_number(sid: str) -> int | None:
    """A status id as its (time-ordered) number; None for an id that is not one.

    >>> status_number("112345678900000001"), status_number("abc")
    (112345678900000001, None)
    """
    return int(sid) if sid.isascii() and sid.isdigit() else None


def plausible_status(n: int, now: float) -> bool:
    """Whether status number `n` may become the newest id, where backfill resumes.

    Mastodon ids are snowflakes: the high bits (``n >> 16``) are the creation time in epoch
    milliseconds (``Mastodon::Snowflake``; ids from before Mastodon 2.0 are small sequential
    numbers, dated 1970 this way, which is fine). One dated further ahead of the clock than
    ``AHEAD_SECONDS`` is a bad value: saved as the newest, every backfill asked ``min_id`` with
    it and found nothing (``99999999999999999999``; QA, twelfth session).

    >>> plausible_status(112345678900000001, now=1714600000.0)
    True
    >>> plausible_status(99999999999999999999, now=1714600000.0)
    False
    """
    return (n >> 16) / 1000.0 <= now + AHEAD_SECONDS


@dataclass(frozen=True, slots=True)
class MastoEvent:
    action: Literal["update", "edit", "delete", "skip"]
    mention: Mention | None = None
    key: tuple[str, str] | None = None


def _int(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def status_to_mention(status: object, *, source: str = "mastodon") -> Mention:
    """A Mastodon Status entity -> :class:`Mention`; DecodeError if it lacks the essentials.

    >>> m = status_to_mention({"id": "1", "created_at": "2024-05-01T12:00:00.000Z",
    ...     "content": "<p>acme &lt;3</p>", "account": {"id": "9", "acct": "ann@x.social",
    ...     "followers_count": 5}, "visibility": "public", "favourites_count": 2})
    >>> m.text, m.author.handle, m.metrics
    ('acme <3', '@ann@x.social', (('favourites', 2),))
    """
    if not isinstance(status, Mapping):
        raise DecodeError("not_object", "status is not an object")
    sid = status.get("id")
    if not isinstance(sid, str) or not sid:
        raise DecodeError("missing_field" if sid is None else "wrong_type", "status.id")
    acct = status.get("account")
    if not isinstance(acct, Mapping) or not isinstance(acct.get("id"), str):
        raise DecodeError("missing_field", "status.account.id")
    content = status.get("content", "")
    if not isinstance(content, str):
        raise DecodeError("wrong_type", "status.content")
    text = html_to_text(content)
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler:
        text = f"{spoiler}\n\n{text}" if text else spoiler
    reply_to = status.get("in_reply_to_id")
    kind: Kind = "dm" if status.get("visibility") == "direct" else "reply" if reply_to else "post"
    fields = acct.get("fields")
    verified = isinstance(fields, list) and any(
        isinstance(f, Mapping) and f.get("verified_at") for f in fields
    )
    handle = acct.get("acct") or acct.get("username") or acct["id"]
    lang = status.get("language")
    url = status.get("url") or status.get("uri")
    metrics = tuple(
        (name, _int(status.get(f"{name}_count")))
        for name in ("favourites", "reblogs", "replies")
        if _int(status.get(f"{name}_count"))
    )
    return check_mention(
        Mention(
            id=sid,
            source=source,
            channel="mastodon",
            text=text,
            created_at=parse_time(status.get("created_at"), "status.created_at"),
            author=Author(
                id=str(acct["id"]),
                handle=f"@{handle}",
                followers=_int(acct.get("followers_count")),
                verified=verified,
            ),
            lang=lang[:16] if isinstance(lang, str) and lang else None,
            url=url if isinstance(url, str) else None,
            kind=kind,
            in_reply_to=str(reply_to) if isinstance(reply_to, str | int) and reply_to else None,
            metrics=tuple(sorted(metrics)),
        )
    )


def parse_event(obj: object, *, source: str = "mastodon") -> MastoEvent:
    """One streaming frame -> :class:`MastoEvent` (the payload is itself a JSON string). Pure.

    >>> parse_event({"stream": ["public"], "event": "delete", "payload": "1090"})
    MastoEvent(action='delete', mention=None, key=('mastodon', '1090'))
    """
    if not isinstance(obj, Mapping):
        raise DecodeError("not_object", "frame is not an object")
    event = obj.get("event")
    if "error" in obj and event is None:
        raise DecodeError("invalid_value", f"server error: {str(obj.get('error'))[:100]}")
    payload = obj.get("payload")
    if event == "delete":
        if not isinstance(payload, str | int) or isinstance(payload, bool):
            raise DecodeError("wrong_type", "delete payload")
        return MastoEvent("delete", key=(source, str(payload)))
    if event not in ("update", "status.update"):
        return MastoEvent("skip")  # notification, filters_changed, announcement, ...
    if not isinstance(payload, str):
        raise DecodeError("wrong_type", f"{event} payload is not a string")
    status = loads(payload.encode("utf-8", "surrogatepass"), max_bytes=4 * 1024 * 1024)
    m = status_to_mention(status, source=source)
    return MastoEvent("update" if event == "update" else "edit", mention=m)


def _id_of(status: object) -> int | None:
    sid = status.get("id") if isinstance(status, Mapping) else None
    return status_number(sid) if isinstance(sid, str) else None


class MastodonSource:
    """Statuses from the Mastodon streaming API (public, hashtag and list streams)."""

    def __init__(
        self,
        cfg: MastodonConfig,
        ctx: SourceContext,
        *,
        token: Secret | None = None,
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self._intake = Intake(cfg.name, "mastodon", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health
        self._token = token
        self._seed = seed
        self._state_key = f"collector:{cfg.name}:newest"
        self.newest: int | None = None  # the newest status id seen, where backfill resumes
        self._saved: int | None = None
        self._checkpoint = Checkpoint(cfg.name, ctx, every=60.0)
        self.backfilled = 0  # statuses taken from the REST timelines
        self.implausible = 0  # status ids dated too far ahead to become the newest

    def _saw(self, m: Mention) -> None:
        n = status_number(m.id)
        if n is None or (self.newest is not None and n <= self.newest):
            return
        if not plausible_status(n, self.ctx.clock.now()):
            self.implausible += 1
            if self.implausible == 1:  # once: a server with odd ids would flood the log
                log.warning(
                    "%s: status id %s is dated ahead of the clock: not kept as where backfill "
                    "resumes (the status itself is delivered)",
                    self.name, m.id[:40],
                )  # fmt: skip
            return
        self.newest = n

    async def _load(self) -> None:
        raw = await self.ctx.state.get(self._state_key)
        if raw is None:
            return
        n = status_number(raw.decode("ascii", "replace"))
        if n is None:
            log.warning("%s: unreadable saved status id, no backfill until one is seen", self.name)
        elif not plausible_status(n, self.ctx.clock.now()):
            # saved before this check existed
            log.warning("%s: saved status id %d is dated ahead of the clock, ignored", self.name, n)
            n = None
        self.newest = self._saved = n

    async def _save(self, *, periodic: bool = False) -> None:
        """Keep the newest id in the store (``periodic``: only when the checkpoint is due)."""
        if self.newest != self._saved and not (periodic and not self._checkpoint.due()):
            assert self.newest is not None  # only ever raised from None
            newest = self.newest
            if await self._checkpoint.save(self._state_key, str(newest).encode()):
                self._saved = newest

    async def _backfill(self, since: int, headers: Mapping[str, str]) -> list[Mention]:
        """Statuses newer than ``since`` from every stream's REST timeline, merged oldest
        first: in event-time order the watermark follows them as it follows any backlog
        (stream after stream, the second one's old statuses would arrive late)."""
        origin = self.cfg.rest_url or rest_origin(self.cfg.url)
        timeout = aiohttp.ClientTimeout(total=self.cfg.http_timeout_seconds)
        found: dict[int, object] = {}  # status number -> status; one copy across timelines
        async with aiohttp.ClientSession(origin, headers=headers, timeout=timeout) as http:
            for s in self.cfg.streams:
                path, query = timeline_of(s)
                after, pages = since, 0
                while pages < self.cfg.backfill_pages:
                    pages += 1
                    try:
                        page = await self._page(http, path, {**query, "min_id": str(after)})
                    except (TimeoutError, aiohttp.ClientError, OSError, DecodeError) as exc:
                        # best effort: the live stream goes on either way
                        log.warning(
                            "%s: backfill from %s failed: %s: %s",
                            self.name, path, type(exc).__name__, str(exc)[:200],
                        )  # fmt: skip
                        break
                    last = after
                    for st in page:
                        n = _id_of(st)
                        if n is not None and n > after:
                            found.setdefault(n, st)
                            last = max(last, n)
                    if len(page) < PAGE or last == after:
                        break
                    after = last
                else:
                    log.warning(
                        "%s: backfill from %s stopped after %d pages; the newer part of the "
                        "gap is not read (backfill_pages)",
                        self.name, path, pages,
                    )  # fmt: skip
        out = []
        for _n, st in sorted(found.items()):
            try:
                out.append(status_to_mention(st, source=self.name))
            except DecodeError as err:
                self._intake.reject_error(err, payload_bytes(st))
            except Exception as exc:  # a status shape nobody foresaw costs that status
                self._intake.reject_unexpected(exc, payload_bytes(st))
        return out

    async def _page(
        self, http: aiohttp.ClientSession, path: str, query: Mapping[str, str]
    ) -> list[object]:
        limit = PAGE * self.cfg.max_frame_bytes
        async with http.get(path, params={**query, "limit": str(PAGE)}) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            body = await read_body(resp.content, limit)
        if body is None:
            raise DecodeError("oversize", f"timeline page > {limit} bytes")
        page = loads(body, max_bytes=limit)
        if not isinstance(page, list):
            raise DecodeError("wrong_type", "timeline page is not a list of statuses")
        return page

    async def stream(self) -> AsyncGenerator[Mention, None]:
        backoff = Backoff(
            self.cfg.backoff.initial_seconds, self.cfg.backoff.max_seconds, seed=self._seed
        )
        headers = {"Authorization": f"Bearer {self._token.reveal()}"} if self._token else {}
        frames = subscribe_frames(self.cfg.streams)
        await self._load()
        attempts = 0
        self._intake.link(False)  # down from the start until the server answers
        while True:
            if attempts:
                self._intake.reconnected()
            attempts += 1
            error: BaseException | None = None
            try:
                opened = self.ctx.clock.now()
                async with connect(
                    self.cfg.url,
                    additional_headers=headers,
                    max_size=WS_LIMIT_FACTOR * self.cfg.max_frame_bytes,
                    open_timeout=15,
                ) as ws:
                    for f in frames:
                        await ws.send(f)
                    self._intake.link(True)
                    log.info("%s: connected, %d stream(s)", self.name, len(frames))
                    if self.newest is not None and self.cfg.backfill_pages:
                        for m in await self._backfill(self.newest, headers):
                            self._saw(m)
                            if self._intake.accept(m):
                                self.backfilled += 1
                                yield m
                        await self._save()
                    async for frame in ws:
                        raw = frame.encode() if isinstance(frame, str) else bytes(frame)
                        try:
                            ev = parse_event(
                                loads(raw, max_bytes=self.cfg.max_frame_bytes), source=self.name
                            )
                        except DecodeError as err:
                            self._intake.reject_error(err, raw[: self.cfg.max_frame_bytes])
                            continue
                        except Exception as exc:
                            # a frame shape nobody foresaw must cost one frame, not the stream
                            self._intake.reject_unexpected(exc, raw[: self.cfg.max_frame_bytes])
                            continue
                        if self.ctx.clock.now() - opened >= STABLE_SECONDS:
                            backoff.reset()  # a stream that keeps delivering is healthy
                        if ev.action == "delete" and ev.key is not None:
                            await self._intake.deleted(ev.key)
                        elif ev.mention is not None:
                            self._saw(ev.mention)
                            await self._save(periodic=True)
                            if self._intake.accept(ev.mention):
                                yield ev.mention
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                error = exc
            finally:
                self._intake.link(False, error)
                await self._save()
            await self.ctx.clock.sleep(backoff.next())
