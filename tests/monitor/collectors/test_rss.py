"""RSS/Atom poller against a local HTTP server: conditional GET and guid/link dedup."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import feedparser
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import FakeClock
from monitor.collectors.rss import RssSource, feed_mentions
from monitor.config.sources import FeedConfig, RssConfig
from monitor.errors import DecodeError
from monitor.model import Mention

from .conftest import DownKV, make_harness, run_until

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
    return list(feed_mentions(parsed, FeedConfig(url=url), source="rss", now=1_720_000_000.0))


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
