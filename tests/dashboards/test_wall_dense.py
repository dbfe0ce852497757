"""The wall with many topics, odd names and long words, and its contrast (QA, wall session):
Debian chromium via Playwright against the wall routes served in process."""

from __future__ import annotations

from typing import Any

import pytest

from dashboards.view import WallState
from monitor.hub import Hub

from .test_wall_browser import T0, caught_up, incident, point, serve_wall, wall_hub, wall_page

pytestmark = pytest.mark.browser

SCREENS = ((1366, 768), (1920, 1080), (3840, 2160))


def many(n: int, points: int = 30) -> tuple[Hub, WallState]:
    """`n` topics with `points` points each; every fifth one active at a severity."""
    topics = [{"name": f"b{i}", "title": f"Brand {i}"} for i in range(n)]
    hub, state = Hub(), WallState(topics, 240)
    hub.add_listener(state.apply)
    for i in range(n):
        sev = {"severity": 1 + i % 4, "active": True, "score": 0.93} if i % 5 == 0 else {}
        for k in range(points):
            hub.publish("series", point(T0 + 60 * k, f"b{i}") | sev)
    return hub, state


async def scrolls(page: Any) -> tuple[bool, bool]:
    """Does the page scroll across, down? (A wall never does.)"""
    wide, tall = await page.evaluate(
        "() => [document.documentElement.scrollWidth > innerWidth,"
        " document.documentElement.scrollHeight > innerHeight]"
    )
    return bool(wide), bool(tall)


# Per tile: what shows and whether anything shown is cut by the tile's edges.
TILE_CHECK = """() => [...document.querySelectorAll('#tiles .tile')].map((tile) => {
  const box = tile.getBoundingClientRect();
  const shown = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
  const inside = (el) => { const r = el.getBoundingClientRect();
    return r.height > 0 && r.width > 0 && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5
      && r.left >= box.left - 0.5 && r.right <= box.right + 0.5; };
  const h3 = tile.querySelector('h3'), score = tile.querySelector('.score-v');
  const sev = tile.querySelector('.sev');
  const figures = [...tile.querySelectorAll('.stats b')].filter(shown);
  const charts = [...tile.querySelectorAll('canvas')].filter(shown);
  return {
    topic: tile.dataset.topic,
    title: inside(h3)
      && h3.getBoundingClientRect().width >= 3 * parseFloat(getComputedStyle(h3).fontSize),
    score: inside(score) && score.scrollWidth <= score.clientWidth + 1 && score.textContent !== '–',
    sev: sev.textContent === '' || (shown(sev) && inside(sev)),
    sevText: sev.textContent,
    figuresCut: figures.filter((b) => !inside(b) || b.scrollWidth > b.clientWidth + 1)
      .map((b) => b.className),
    flatCharts: charts.filter((c) => !inside(c) || c.getBoundingClientRect().height < 12)
      .map((c) => c.className),
    figures: figures.length,
  };
})"""


async def whole_tiles(page: Any, w: int, h: int) -> list[dict[str, Any]]:
    """The tiles at a `w` x `h` screen, each with title, SEV and score whole, no figure cut and
    no flat chart, on a page that does not scroll."""
    await page.set_viewport_size({"width": w, "height": h})
    await page.wait_for_timeout(300)
    tiles: list[dict[str, Any]] = await page.evaluate(TILE_CHECK)
    for t in tiles:
        assert t["title"] and t["score"] and t["sev"], (len(tiles), w, h, t)
        assert t["figuresCut"] == [] and t["flatCharts"] == [], (len(tiles), w, h, t)
    assert await scrolls(page) == (False, False)
    return tiles


@pytest.mark.parametrize("n", [16, 36, 64])
async def test_tiles_keep_title_sev_and_score_up_to_64_topics(browser: Any, n: int) -> None:
    """From 16 topics on the volume chart was 0 px, at 20 figures were cut, at 36 the score, at 60
    only a truncated title was left (QA, tiles_threshold.py)."""
    hub, state = many(n)
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        await caught_up(page, state)
        for w, h in SCREENS:
            tiles = await whole_tiles(page, w, h)
            assert len(tiles) == n
            assert sum(1 for t in tiles if t["sevText"]) == len(range(0, n, 5))
            if n <= 36:  # up to 36 topics the figures stay on every screen
                assert all(t["figures"] >= 3 for t in tiles), (n, w, h)
        assert page.problems == []


async def test_a_redraw_reads_styles_and_layout_a_bounded_number_of_times(browser: Any) -> None:
    """renderTiles read getComputedStyle per chart and per shaded point and the chart sizes
    after each tile's changes, each read forcing style and layout over all tiles: 64 topics took
    864 ms a redraw (QA). Counted, not timed: style reads and layouts per redraw do not grow
    with the topics."""
    counts = {}
    for n in (8, 32):
        hub, state = many(n, points=240)
        async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
            await caught_up(page, state)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")

            async def layouts(cdp: Any = cdp) -> float:
                metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
                return float(next(m["value"] for m in metrics if m["name"] == "LayoutCount"))

            await page.evaluate(
                """() => { const real = window.getComputedStyle; window.styleReads = 0;
                  window.getComputedStyle = (...a) => { window.styleReads++; return real(...a); };
                }"""
            )
            before = await layouts()
            reads = await page.evaluate(
                """() => { const S = window.crisiswatch.S; window.styleReads = 0;
                  for (const k in S.series) { const a = S.series[k]; const l = a[a.length - 1];
                    l.score = 0.42; l.count += 1; }
                  renderTiles(); return window.styleReads; }"""
            )
            counts[n] = (reads, await layouts() - before)
    assert counts[32][0] <= 2, counts
    assert counts[32][1] <= 3 and counts[32][1] <= counts[8][1] + 1, counts


@pytest.mark.parametrize("odd", ["tpl", "constructor", "__proto__"])
async def test_a_topic_named_like_a_page_id_or_object_key_gets_its_own_tile(
    browser: Any, odd: str
) -> None:
    """A topic named `tpl` blanked every tile: `tile-tpl` was the page's <template> (QA)."""
    hub, state = wall_hub(("acme", odd))
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        for k in range(3):
            hub.publish("series", point(T0 + 60 * k, "acme") | {"score": 0.31})
            hub.publish("series", point(T0 + 60 * k, odd) | {"score": 0.57})
        hub.publish("live", {"processed": 6, "t": T0, "topics": {
            odd: {"start": T0, "count": 4, "negative": 1}}})  # fmt: skip
        await caught_up(page, state)
        await page.wait_for_timeout(300)
        tiles = await page.evaluate(
            "() => [...document.querySelectorAll('#tiles .tile')].map(t =>"
            " [t.dataset.topic, t.querySelector('.score-v').textContent,"
            " t.querySelector('.now').textContent])"
        )
        assert tiles == [["acme", "0.31", "–"], [odd, "0.57", "4"]]
        assert page.problems == []


async def test_an_exhausted_escalation_says_it_pages_nobody_more(browser: Any) -> None:
    """Its row said `TRIGGERED · age 1h14 · level 2/2`, as if still escalating, and who was
    paged disappeared (QA)."""
    hub, state = wall_hub()
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        hub.publish("incident", incident("i1", severity=2))
        hub.publish(
            "escalation",
            {"incident_id": "i1", "status": "paging", "level": 2, "levels": 2,
             "paged": [{"user": "dan", "name": "Dan"}], "next_escalation_at": T0 + 600},
        )  # fmt: skip
        await page.wait_for_function(
            "() => document.querySelector('li[data-id=\"i1\"] .m')?.textContent.includes('Dan')"
        )
        hub.publish(
            "escalation",
            {"incident_id": "i1", "status": "exhausted", "level": 2, "levels": 2, "paged": [],
             "paged_before": [{"user": "dan", "name": "Dan"}], "next_escalation_at": None},
        )  # fmt: skip
        stop = page.locator('li[data-id="i1"] .m .nobody')
        await stop.wait_for(timeout=5_000)
        assert await stop.text_content() == "escalation exhausted · pages nobody more"
        assert await stop.evaluate("e => getComputedStyle(e).color") == "rgb(255, 59, 48)"
        row = await page.text_content('li[data-id="i1"] .m') or ""
        assert "paged: Dan" in row and "next escalation" not in row
        assert await page.is_visible("#alarm")  # nobody acked it: it still flashes


async def test_one_long_word_does_not_hide_the_rest_of_the_drivers_line(browser: Any) -> None:
    """A 160-character emerging term pushed the rest of the `why` line out of sight (QA)."""
    hub, state = wall_hub()
    word = "x" * 160
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        msg = incident("i1", severity=3)
        msg["incident"]["explanation"] = {"observed": 450, "expected": 34.3,
                                          "top_terms": [[word, 3.0], ["outage", 2.0]]}  # fmt: skip
        hub.publish("incident", msg)
        w = page.locator('li[data-id="i1"] .w')
        await w.wait_for(timeout=5_000)
        for width, height in SCREENS:
            await page.set_viewport_size({"width": width, "height": height})
            await page.wait_for_timeout(200)
            seen = await w.evaluate(
                """(e) => {
                  const text = e.firstChild, at = text.data.indexOf('…');
                  const start = text.data.lastIndexOf(' ', at) + 1, r = document.createRange();
                  r.setStart(text, start); r.setEnd(text, at + 2);  // the term and its comma
                  const box = e.getBoundingClientRect();
                  return {text: text.data, sw: e.scrollWidth, cw: e.clientWidth,
                          termLines: new Set([...r.getClientRects()].map((q) => q.top)).size,
                          inside: r.getBoundingClientRect().right <= box.right + 0.5};
                }"""
            )
            # the term takes part of one line, no more: the rest of the line follows it
            assert seen["sw"] <= seen["cw"] + 1 and seen["inside"], (width, seen)
            assert seen["termLines"] == 1, (width, seen)
            assert word not in seen["text"] and ", outage" in seen["text"], seen
            assert "x" * 19 in seen["text"], seen


# The contrast of an element's text against the first opaque background behind it; opacity
# and filters on the way make a colour pair meaningless, so they are reported instead.
CONTRAST = """(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  let bg = null, opacity = 1, filters = [];
  for (let e = el; e; e = e.parentElement) {
    const cs = getComputedStyle(e);
    opacity *= parseFloat(cs.opacity);
    if (cs.filter !== 'none') filters.push(cs.filter);
    const c = rgb(cs.backgroundColor);
    if (!bg && (c.length === 3 || c[3] === 1)) bg = c.slice(0, 3);
  }
  const fg = rgb(getComputedStyle(el).color).slice(0, 3);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), opacity, filters, text: el.textContent.slice(0, 40)};
}"""


async def test_text_keeps_aa_contrast_in_the_flash_resolved_off_duty_and_offline(
    browser: Any,
) -> None:
    """At a distance: the alarm's dark flash phase was 2.3:1 (SEV1) and 2.7:1 (SEV2), off-duty
    names 2.8:1, resolved rows 2.5:1, the side panels offline 2.8:1 (QA, contrast.py)."""
    hub, state = wall_hub()
    hub.publish("incident", incident("r1", state="resolved", severity=2, updated=5.0))
    zone = {"schedule": "ops", "timezone": "UTC"}
    hub.publish("oncall", {"t": T0, "regions": [
        {**zone, "region": "emea", "user": "bob", "on_duty": True},
        {**zone, "region": "apac", "user": "cy", "on_duty": False}]})  # fmt: skip

    async def check(page: Any, selector: str, what: str) -> None:
        # all in one task: a redraw between two reads may replace the rows
        found = await page.eval_on_selector_all(selector, f"els => els.map({CONTRAST})")
        assert found, (what, selector)
        for c in found:
            assert c["opacity"] == 1 and c["filters"] == [], (what, c)
            assert c["ratio"] >= 4.5, (what, c)

    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        await caught_up(page, state)
        await check(page, 'li[data-id="r1"] :is(.t, .m, .w, .sev)', "resolved row")
        await check(page, "#oncall li.off, #oncall li.off *", "off duty")
        for sev in (1, 2):
            hub.publish("incident", incident(f"a{sev}", severity=sev, updated=10.0 + sev))
            await page.wait_for_function(
                f"() => document.querySelector('#alarm').className === 'sev{sev}'"
            )
            for at in (100, 600):  # both phases of the 1 s flash
                await page.evaluate(
                    "t => document.getAnimations()"
                    ".forEach((a) => { a.pause(); a.currentTime = t; })",
                    at,
                )
                await check(page, "#alarm", f"SEV{sev} alarm at {at} ms")
            await page.evaluate("() => document.getAnimations().forEach((a) => a.play())")
            hub.publish("incident", incident(f"a{sev}", state="resolved", updated=20.0 + sev))
        await page.wait_for_selector("#alarm", state="hidden")
        await page.evaluate("() => document.body.classList.add('offline')")  # as setConn does
        await check(page, "aside h2, aside .inc :is(.t, .m), #oncall li span", "offline aside")


async def test_the_header_keeps_counter_and_clock_on_one_line_with_stale_sources(
    browser: Any,
) -> None:
    """At 1366x768 with five stale or unconnected sources `123,456,789 mentions processed`
    wrapped to three lines and the clock to two (QA, header_stale.py)."""
    hub, state = wall_hub()
    for name, stale in (("mqtt-eu-central", True), ("http-ingest", True),
                        ("bluesky-jetstream", True), ("mastodon-social", False),
                        ("rss-news-feeds", False)):  # fmt: skip
        hub.publish("source", {"name": name, "kind": "x", "connected": stale,
                               "last_event_time": T0 - 600, "lag_seconds": 1, "events": 5,
                               "reconnects": 0, "dead_letters": 0, "stale": stale,
                               "finished": False, "down": not stale})  # fmt: skip
    hub.publish("live", {"processed": 123456789, "t": T0, "topics": {}})
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        await caught_up(page, state)
        for w, h in ((1366, 768), (1024, 768), (1920, 1080), (3840, 2160)):
            await page.set_viewport_size({"width": w, "height": h})
            await page.wait_for_timeout(300)
            seen = await page.evaluate(
                """() => Object.fromEntries(['live', 'clock', 'sound', 'login', 'conn', 'stale']
                  .map((id) => {
                    const e = document.getElementById(id), r = e.getBoundingClientRect();
                    const cs = getComputedStyle(e);
                    const line = parseFloat(cs.lineHeight) || 1.2 * parseFloat(cs.fontSize);
                    const pad = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom);
                    return [id, {lines: Math.round((r.height - pad) / line), right: r.right,
                      bottom: r.bottom, cut: e.scrollWidth > e.clientWidth + 1,
                      text: e.textContent}];
                  }))"""
            )
            top = await page.evaluate(
                "() => document.getElementById('top').getBoundingClientRect().bottom"
            )
            for key in ("live", "clock", "sound", "login", "conn"):
                v = seen[key]
                assert v["lines"] == 1 and not v["cut"] and v["right"] <= w, (w, h, key, v)
            assert seen["live"]["text"] == "123,456,789 mentions processed"
            assert seen["stale"]["lines"] <= 2 and seen["stale"]["bottom"] <= top, (w, h, seen)
            assert seen["stale"]["text"].startswith("⚠ STALE DATA: ")
        assert page.problems == []


# the "+N more" line: shown, whole, inside the screen; and what the tiles hold
MORE_CHECK = """() => { const el = document.getElementById('more'), r = el.getBoundingClientRect();
  const S = window.crisiswatch.S;
  return { text: el.hidden ? null : el.textContent,
    whole: r.height > 0 && r.bottom <= innerHeight && el.scrollWidth <= el.clientWidth + 1,
    points: S.topics.map((t) => (S.series[t.name] || []).length) }; }"""


async def test_more_topics_than_tiles_show_64_whole_tiles_and_say_how_many_more(
    browser: Any,
) -> None:
    """2,000 configured topics: every topic's history went to every wall and the page tried to
    tile them all. A wall tiles 64: open incidents and the highest crisis scores first."""
    hub, state = many(200, points=20)
    async with serve_wall(state, hub) as url, wall_page(browser, url + "/") as page:
        await caught_up(page, state)
        for w, h in SCREENS:
            tiles = await whole_tiles(page, w, h)
            assert len(tiles) == 64
            # every active topic (each fifth, score 0.93) has a tile
            assert {f"b{i}" for i in range(0, 200, 5)} <= {t["topic"] for t in tiles}
            more = await page.evaluate(MORE_CHECK)
            assert more["text"].startswith("+136 more topics · tiles: open incidents first")
            assert more["whole"] and more["points"] == [20] * 64, (w, h, more)
        # a topic without a tile opens an incident: it gets one, with its whole history
        inc = incident("i1", severity=1)
        inc["incident"]["topic"] = "b1"
        hub.publish("incident", inc)
        await page.wait_for_selector('#tiles .tile[data-topic="b1"]', timeout=5_000)
        await page.wait_for_timeout(300)
        tiles = await page.evaluate(TILE_CHECK)
        assert len(tiles) == 64 and all(t["flatCharts"] == [] for t in tiles)
        assert (await page.evaluate(MORE_CHECK))["points"] == [20] * 64
        assert await page.text_content('li[data-id="i1"] .t') == "Brand 1 · volume"
        assert page.problems == []


async def test_each_screen_tiles_the_topics_its_url_selects(browser: Any) -> None:
    hub, state = many(200, points=5)
    async with serve_wall(state, hub) as url:
        async with wall_page(browser, url + "/?topics=b7,b12*") as page:
            names = await page.eval_on_selector_all(".tile", "els => els.map(e => e.dataset.topic)")
            assert names == ["b7", "b12", *[f"b{i}" for i in range(120, 130)]]
            assert await page.text_content("#more") == "?topics=b7,b12*: 12 of 200 topics"
        async with wall_page(browser, url + "/?topics=b1*") as page:  # 111 topics
            assert await page.locator(".tile").count() == 64
            more = await page.text_content("#more") or ""
            assert more.startswith("+47 more topics of ?topics=b1* · ")
        async with wall_page(browser, url + "/?topics=nope") as page:
            assert await page.locator(".tile").count() == 0
            assert (
                await page.text_content("#more") == "no topic matches ?topics=nope (200 configured)"
            )
            assert page.problems == []
