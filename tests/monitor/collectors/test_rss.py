"""RSS/Atom poller against a local HTTP server: conditional GET, guid/link dedup, the HTTP
charset, answers that are no feed, bad items and a state store outage."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import FakeClock
from monitor.collectors.rss import RssSource, feed_mentions
from monitor.config.sources import FeedConfig, RssConfig
from monitor.errors import DecodeError
from monitor.model import Mention

from .conftest import DownKV, MemoryKV, make_harness, run_until

DATA = Path(__file__).parents[2] / "data/collectors"
V1 = (DATA / "news_v1.rss").read_text()
NEW_ITEM = """    <item>
      <title>Acme CEO apologises</title>
      <link>https://news.example/2024/05/02/acme-apology</link>
      <pubDate>Thu, 02 May 2024 08:00:00 GMT</pubDate>
    </item>
  </channel>"""
V2 = V1.replace("  </channel>", NEW_ITEM)
ATOM = (DATA / "news.atom").read_text()
MODIFIED = "Wed, 01 May 2024 13:00:00 GMT"


class NewsSite:
    def __init__(self) -> None:
        self.version = 1
        self.log: list[tuple[str, int, str | None]] = []

    async def rss(self, request: web.Request) -> web.Response:
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            self.log.append(("rss", 304, etag))
            return web.Response(status=304)
        self.log.append(("rss", 200, request.headers.get("If-None-Match")))
        body = V1 if self.version == 1 else V2
        return web.Response(text=body, content_type="application/rss+xml", headers={"ETag": etag})

    async def atom(self, request: web.Request) -> web.Response:
        if request.headers.get("If-Modified-Since") == MODIFIED:
            self.log.append(("atom", 304, MODIFIED))
            return web.Response(status=304)
        self.log.append(("atom", 200, None))
        return web.Response(
            text=ATOM, content_type="application/atom+xml", headers={"Last-Modified": MODIFIED}
        )

    async def broken(self, request: web.Request) -> web.Response:
        return web.Response(status=500)


async def test_conditional_get_and_dedup_across_versions_and_restarts() -> None:
    h = make_harness(FakeClock(1_720_000_000.0))  # after the items' dates
    site = NewsSite()
    app = web.Application()
    app.add_routes(
        [web.get("/rss", site.rss), web.get("/atom", site.atom), web.get("/500", site.broken)]
    )
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url(""))
    cfg = RssConfig(
        enabled=True,
        interval_seconds=60,
        feeds=[
            FeedConfig(url=f"{base}/rss"),
            FeedConfig(url=f"{base}/atom", name="ticker"),
            FeedConfig(url=f"{base}/500"),
        ],
    )
    got: list[Mention] = []

    def both_304() -> bool:
        return sum(code == 304 for _, code, _ in site.log) >= 2

    async def run(src: RssSource, until: int, done: Callable[[], bool]) -> None:
        got.extend(await run_until(src, lambda g: len(got) + len(g) >= until and done()))

    src = RssSource(cfg, h.ctx, seed=1)
    await run(src, until=4, done=both_304)  # each feed polled again: 304 this time
    assert ("rss", 304, '"v1"') in site.log and ("atom", 304, MODIFIED) in site.log
    assert src.not_modified >= 2
    assert src.health.reconnects >= 1  # the 500 feed counts as failing, the others go on

    site.version = 2
    src2 = RssSource(cfg, h.ctx)  # a restart: state comes from the KeyValue store
    await run(src2, until=5, done=lambda: src2.polls >= 3)
    ids = [m.id for m in got]
    assert len(ids) == len(set(ids)) == 5
    assert f"{base}/rss#48151623" in ids  # a non-URL guid is scoped to its feed
    assert "https://ticker.example/nur-link" in ids  # no guid: the link is the id
    assert ids[-1] == "https://news.example/2024/05/02/acme-apology"
    by = {m.id: m for m in got}
    outage = by["https://news.example/2024/05/01/acme-outage"]
    assert outage.text == (
        "Acme outage leaves thousands without service\n\n"
        "Customers of Acme reported failures since 9am."
    )
    assert (outage.created_at, outage.author.handle, outage.lang, outage.channel) == (
        1714564800.0,
        "Jane Reporter",
        "en-us",
        "news",
    )
    german = by["tag:ticker.example,2024:1"]
    assert german.lang == "de" and german.author.handle == "Max Muster"
    await server.close()


async def test_malformed_feed_is_dead_lettered() -> None:
    h = make_harness()

    async def junk(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>502 Bad Gateway</body", content_type="application/rss+xml"
        )

    app = web.Application()
    app.add_routes([web.get("/junk", junk)])
    server = TestServer(app)
    await server.start_server()
    src = RssSource(
        RssConfig(enabled=True, feeds=[FeedConfig(url=str(server.make_url("/junk")))]), h.ctx
    )
    await run_until(src, lambda _: bool(h.letters.items))
    await server.close()
    assert h.letters.reasons["malformed_feed"] >= 1
    assert src.health.reconnects >= 1 and not src.health.connected  # a failed poll


async def test_a_feed_sent_in_pieces_is_read_whole_and_an_oversize_one_is_refused() -> None:
    h = make_harness(FakeClock(1_720_000_000.0))
    body = V2.encode()

    async def pieces(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await resp.prepare(request)
        for i in range(0, len(body), 200):  # separate TCP segments, as from a slow server
            await resp.write(body[i : i + 200])
            await asyncio.sleep(0.02)
        await resp.write_eof()
        return resp

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=body * 3, content_type="application/rss+xml")

    app = web.Application()
    app.add_routes([web.get("/pieces", pieces), web.get("/huge", huge)])
    server = TestServer(app)
    await server.start_server()
    cfg = RssConfig(
        enabled=True,
        max_body_bytes=len(body) + 100,
        feeds=[
            FeedConfig(url=str(server.make_url("/pieces"))),
            FeedConfig(url=str(server.make_url("/huge"))),
        ],
    )
    got = await run_until(RssSource(cfg, h.ctx), lambda g: len(g) >= 3 and bool(h.letters.items))
    await server.close()
    assert [m.id for m in got][-1] == "https://news.example/2024/05/02/acme-apology"
    assert h.letters.reasons == {"oversize": 1}


def _entries(items: str, url: str = "https://n.example/rss") -> list[Mention | DecodeError]:
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>{items}'
    parsed = feedparser.parse((body + "</channel></rss>").encode())
    got = feed_mentions(parsed, FeedConfig(url=url), source="rss", now=1_720_000_000.0)
    return [item for _, item in got]


def test_items_without_guid_or_link_get_a_stable_content_id() -> None:
    # RSS 2.0 only asks an item for a title or a description; many feeds send nothing else
    items = (
        "<item><title>Acme recall</title><description>Cars recalled</description></item>"
        "<item><title>Acme recall</title><description>Second batch</description></item>"
        "<item><title></title></item>"
    )
    first, again = _entries(items), _entries(items)
    a, b, empty = first
    assert isinstance(a, Mention) and isinstance(b, Mention)
    assert a.text == "Acme recall\n\nCars recalled" and a.id != b.id
    assert a.id.startswith("https://n.example/rss#")
    assert [m.id for m in again if isinstance(m, Mention)] == [a.id, b.id]  # same every poll
    assert isinstance(empty, DecodeError) and empty.reason == "missing_field"


def test_a_pubdate_without_zone_is_read_as_utc_not_as_now() -> None:
    # feedparser gives up on RFC 822 dates without a zone (common in hand-made feeds); they
    # must not all land on the poll time, where a first poll would stack the feed's backlog
    (m,) = _entries(
        "<item><link>https://n.example/1</link><pubDate>Wed, 01 May 2024 12:00:00</pubDate></item>"
    )
    assert isinstance(m, Mention) and m.created_at == 1_714_564_800.0


async def test_a_state_store_outage_does_not_stop_the_polling() -> None:
    h = make_harness(FakeClock(1_720_000_000.0))
    kv = DownKV()
    site = NewsSite()
    app = web.Application()
    app.add_routes([web.get("/rss", site.rss), web.get("/atom", site.atom)])
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url(""))
    cfg = RssConfig(
        enabled=True, feeds=[FeedConfig(url=f"{base}/rss"), FeedConfig(url=f"{base}/atom")]
    )
    src = RssSource(cfg, replace(h.ctx, state=kv))
    got = await run_until(src, lambda g: src.polls >= 4 and len(g) >= 4)
    await server.close()
    assert len(got) == len({m.id for m in got}) == 4  # both feeds, no repeats
    assert kv.failed_puts >= 2


async def serve(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> tuple[TestServer, str]:
    app = web.Application()
    app.add_routes([web.get(path, handler) for path, handler in routes.items()])
    server = TestServer(app)
    await server.start_server()
    return server, str(server.make_url(""))


async def test_the_charset_in_the_content_type_header_is_applied() -> None:
    # the XML declaration names no encoding, so only the HTTP header says koi8-r; read as
    # anything else the Cyrillic comes out as mojibake and no topic query matches it
    h = make_harness(FakeClock(1_720_000_000.0))
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Новости</title>'
        "<item><title>Привет acme</title><guid>k1</guid></item></channel></rss>"
    ).encode("koi8-r")

    async def koi(request: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={"Content-Type": "application/rss+xml; charset=koi8-r"}
        )

    server, base = await serve({"/koi": koi})
    src = RssSource(RssConfig(enabled=True, feeds=[FeedConfig(url=f"{base}/koi")]), h.ctx)
    (m,) = await run_until(src, lambda g: len(g) >= 1)
    await server.close()
    assert m.text == "Привет acme" and m.author.handle == "Новости"
    assert not h.letters.items


async def test_a_200_that_is_no_feed_is_a_failed_poll_dead_lettered_once() -> None:
    # a feed URL that now serves a parking page, or nothing, must not look healthy
    h = make_harness(FakeClock(1_720_000_000.0))
    hits = {"parked": 0, "empty": 0}

    async def parked(request: web.Request) -> web.Response:
        hits["parked"] += 1
        return web.Response(
            text="<html><body>This domain is for sale</body></html>", content_type="text/html"
        )

    async def empty(request: web.Request) -> web.Response:
        hits["empty"] += 1
        return web.Response(status=200)

    server, base = await serve({"/parked": parked, "/empty": empty})
    cfg = RssConfig(
        enabled=True, feeds=[FeedConfig(url=f"{base}/parked"), FeedConfig(url=f"{base}/empty")]
    )
    src = RssSource(cfg, h.ctx, seed=1)
    await run_until(src, lambda _: min(hits.values()) >= 3)
    await server.close()
    assert not src.health.connected
    assert src.health.reconnects >= 5  # every poll counted as failing
    assert h.metric("crisiswatch_collector_reconnects_total", source="rss") >= 5
    # the same bad answer again and again is one dead letter per feed, not one per poll
    assert h.letters.reasons == {"malformed_feed": 2}
    assert src.health.dead_letters == 2
    details = sorted(d for _, _, d, _ in h.letters.items)
    assert details == [
        f"{base}/empty: not an RSS/Atom/RDF document (no content-type, 0 bytes)",
        f"{base}/parked: not an RSS/Atom/RDF document (text/html; charset=utf-8, 49 bytes)",
    ]


async def test_an_empty_feed_and_a_charsetless_text_xml_feed_are_healthy() -> None:
    # feedparser flags text/xml without a charset (RFC 3023 says us-ascii) as bozo but reads
    # it; neither that nor a feed with no items yet is a failed poll
    h = make_harness(FakeClock(1_720_000_000.0))
    quiet = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Q</title>'

    async def empty_feed(request: web.Request) -> web.Response:
        return web.Response(text=quiet + "</channel></rss>", content_type="application/rss+xml")

    async def text_xml(request: web.Request) -> web.Response:
        body = quiet + "<item><title>Café acme</title><guid>t1</guid></item></channel></rss>"
        return web.Response(body=body.encode(), headers={"Content-Type": "text/xml"})

    server, base = await serve({"/empty": empty_feed, "/text": text_xml})
    cfg = RssConfig(
        enabled=True, feeds=[FeedConfig(url=f"{base}/empty"), FeedConfig(url=f"{base}/text")]
    )
    src = RssSource(cfg, h.ctx)
    got = await run_until(src, lambda g: src.polls >= 4 and len(g) >= 1)
    await server.close()
    assert [m.text for m in got] == ["Café acme"]
    assert src.health.connected and src.health.reconnects == 0 and not h.letters.items


BAD_ITEMS = """<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>
<item><pubDate>Wed, 01 May 2024 12:00:00 GMT</pubDate></item>
<item><title>acme future</title><guid>fu1</guid>
  <pubDate>Wed, 01 May 2224 12:00:00 GMT</pubDate></item>
<item><title>acme today</title><guid>ok1</guid>
  <pubDate>Wed, 01 May 2024 12:00:00 GMT</pubDate></item>
</channel></rss>"""


async def test_a_bad_item_is_dead_lettered_once_not_at_every_poll() -> None:
    h = make_harness(FakeClock(1_720_000_000.0))
    hits = [0]

    async def feed(request: web.Request) -> web.Response:
        hits[0] += 1  # no ETag: every poll downloads and parses the items again
        return web.Response(text=BAD_ITEMS, content_type="application/rss+xml")

    server, base = await serve({"/f": feed})
    cfg = RssConfig(enabled=True, feeds=[FeedConfig(url=f"{base}/f")])
    got = await run_until(RssSource(cfg, h.ctx), lambda g: hits[0] >= 4)
    assert hits[0] >= 4 and [m.id for m in got] == [f"{base}/f#ok1"]
    assert h.letters.reasons == {"missing_field": 1, "invalid_value": 1}
    by = {reason: (detail, payload) for _, reason, detail, payload in h.letters.items}
    detail, payload = by["invalid_value"]
    assert (
        detail == f"created_at: item date 'Wed, 01 May 2224 12:00:00 GMT' out of range in {base}/f"
    )
    assert b"acme future" in payload  # the item itself, to look at
    # remembered in the saved seen list: a restart does not dead-letter them again
    src2 = RssSource(cfg, h.ctx)
    await run_until(src2, lambda _: src2.polls >= 2)
    await server.close()
    assert len(h.letters.items) == 2


class StoreDown(Exception):
    """What a database driver raises while the database is away (not an OSError)."""


class DeadKV(MemoryKV):
    """A state store that is unreachable for reads and writes."""

    def __init__(self, exc: type[Exception]) -> None:
        super().__init__()
        self.exc, self.failed_gets = exc, 0

    async def get(self, key: str) -> bytes | None:
        self.failed_gets += 1
        raise self.exc("state store unreachable")

    async def put(self, key: str, value: bytes) -> None:
        raise self.exc("state store unreachable")


@pytest.mark.parametrize("exc", [StoreDown, ConnectionRefusedError])
async def test_an_unreadable_state_store_does_not_stop_the_polling(
    exc: type[Exception],
) -> None:
    # reading the saved ETag / seen list is best effort, like saving it: poll without it
    # (and keep the state in memory) rather than restart the source or fail every poll
    h = make_harness(FakeClock(1_720_000_000.0))
    kv = DeadKV(exc)
    site = NewsSite()
    server, base = await serve({"/rss": site.rss})
    src = RssSource(
        RssConfig(enabled=True, feeds=[FeedConfig(url=f"{base}/rss")]), replace(h.ctx, state=kv)
    )
    got = await run_until(src, lambda g: src.not_modified >= 1 and len(g) >= 2, timeout=5.0)
    await server.close()
    assert len(got) == len({m.id for m in got}) == 2
    assert ("rss", 304, '"v1"') in site.log  # the ETag came from memory
    assert kv.failed_gets >= 1 and src.health.reconnects == 0


async def test_a_poll_answered_304_is_a_sign_of_life() -> None:
    """At the default 300 s interval the source went stale 61 s after each poll: only new
    items counted as life, and a 304 brings none (QA, twelfth session)."""
    clock = FakeClock(1_720_000_000.0)
    h = make_harness(clock)
    site = NewsSite()
    app = web.Application()
    app.add_routes([web.get("/rss", site.rss)])
    server = TestServer(app)
    await server.start_server()
    cfg = RssConfig(enabled=True, feeds=[FeedConfig(url=str(server.make_url("/rss")))])
    src = RssSource(cfg, h.ctx)
    got = await run_until(src, lambda _: src.not_modified >= 3)
    await server.close()
    assert got and src.health.events == len(got)  # items counted once, at the first poll
    assert src.health.last_received_at is not None
    assert clock.now() - src.health.last_received_at >= 900.0
    assert src.health.connected and not src.health.stale(clock.now(), 60.0)
    assert src.health.stale(clock.now() + 901.0, 60.0)  # three polls missed


async def test_one_broken_feed_does_not_take_a_working_source_down() -> None:
    """Each feed's poll set the source's connection: a broken feed beside a working one made
    the source flap down (/healthz 503, CrisiswatchSourceDown) though it delivered (review)."""
    clock = FakeClock(1_720_000_000.0)
    h = make_harness(clock)
    site = NewsSite()
    app = web.Application()
    app.add_routes([web.get("/rss", site.rss), web.get("/broken", site.broken)])
    server = TestServer(app)
    await server.start_server()
    feeds = [FeedConfig(url=str(server.make_url(p))) for p in ("/rss", "/broken")]
    src = RssSource(RssConfig(enabled=True, feeds=feeds), h.ctx)
    await run_until(src, lambda _: src.health.reconnects >= 3)  # the broken feed kept failing
    await server.close()
    assert src.health.connected and src.health.last_error is not None  # the failure is shown
    assert not src.health.down(clock.now() + 600.0, grace=60.0)


class Flaky:
    """A feed that answers `fail` (with `headers`) while `failing(now)` holds, else V1; it
    records the clock time of each request."""

    def __init__(
        self, clock: FakeClock, fail: int, headers: dict[str, str], failing: Callable[[float], bool]
    ) -> None:
        self.clock, self.fail, self.headers, self.failing = clock, fail, headers, failing
        self.times: list[float] = []
        self.ok_at: list[float] = []

    async def rss(self, request: web.Request) -> web.Response:
        now = self.clock.monotonic()
        self.times.append(now)
        if self.failing(now):
            return web.Response(status=self.fail, headers=self.headers)
        self.ok_at.append(now)
        return web.Response(text=V1, content_type="application/rss+xml")


async def _poll_flaky(flaky: Flaky, done: Callable[[], bool], interval: float = 300.0) -> RssSource:
    h = make_harness(flaky.clock)
    app = web.Application()
    app.add_routes([web.get("/rss", flaky.rss)])
    server = TestServer(app)
    await server.start_server()
    cfg = RssConfig(
        enabled=True,
        interval_seconds=interval,
        feeds=[FeedConfig(url=str(server.make_url("/rss")))],
    )
    src = RssSource(cfg, h.ctx, seed=7)
    try:
        await run_until(src, lambda _: done())
    finally:
        await server.close()
    return src


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    "retry_after", ["120", "Thu, 01 Jan 1970 00:02:00 GMT"], ids=["seconds", "date"]
)
async def test_retry_after_is_honoured(status: int, retry_after: str) -> None:
    """A feed answering 429 with Retry-After: 120 was polled again after 3.3, 5.7, 13.1 s (QA)."""
    clock = FakeClock(0.0)  # the date above is 120 s after it
    flaky = Flaky(clock, status, {"Retry-After": retry_after}, lambda _: True)
    src = await _poll_flaky(flaky, lambda: len(flaky.times) >= 2)
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert gaps[0] >= 120.0 - 1e-6
    assert f"{status}" in (src.health.last_error or "")


async def test_an_absurd_retry_after_is_capped() -> None:
    clock = FakeClock(1_720_000_000.0)
    for value in ("999999999", "1e999"):
        flaky = Flaky(clock, 429, {"Retry-After": value}, lambda _: True)
        await _poll_flaky(flaky, lambda f=flaky: len(f.times) >= 2)  # type: ignore[misc]
        gap = flaky.times[1] - flaky.times[0]
        assert 300.0 <= gap <= 3600.0  # capped at an hour; unreadable: one interval (429)


async def test_retries_have_a_floor_and_a_feed_that_is_back_is_seen_within_a_minute() -> None:
    """The first retry after a 500 came after 0.8 s (full jitter: U(0, 5)), and the backoff,
    growing to 4 x interval, kept the source "not connected" 90 s after a 60 s outage (QA)."""
    clock = FakeClock(1_720_000_000.0)
    start = clock.monotonic()
    flaky = Flaky(clock, 500, {}, lambda now: now - start < 600.0)  # down for 10 minutes
    await _poll_flaky(flaky, lambda: bool(flaky.ok_at))
    tries = [t for t in flaky.times if t <= flaky.ok_at[0]]  # up to the first good poll
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 5.0 and min(gaps) >= 5.0
    assert max(gaps) <= 60.0
    assert flaky.ok_at[0] - (start + 600.0) <= 60.0  # back: seen within a minute
