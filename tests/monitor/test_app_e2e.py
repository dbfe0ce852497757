"""End to end: the embedded demo at high speed through every stage, over real HTTP/websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.integration

SPEED = 120.0


async def wait_for(pred: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await pred()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("condition not met in time")


async def test_demo_crisis_opens_an_incident_for_the_crisis_brand_only(app_factory) -> None:  # type: ignore[no-untyped-def]
    async with app_factory(speed=SPEED) as run, aiohttp.ClientSession() as http:
        demo = run.app.config.sources.demo
        origin = run.app.sources[0].scenario.origin
        crisis_end = origin + demo.first_crisis_after_seconds + demo.crisis_duration_seconds

        async def incidents() -> list[dict[str, Any]]:
            async with http.get(f"{run.url}/api/v1/incidents") as r:
                assert r.status == 200
                body = await r.json()
            # incidents of the live part, not of the backfilled history
            return [i for i in body["incidents"] if i["opened_at"] >= origin]

        # the first scripted crisis hits acme; detected once its buckets close
        opened = await wait_for(incidents, timeout=40)
        assert {i["topic"] for i in opened} == {"acme"}, opened
        inc = opened[0]
        assert inc["severity"] in (1, 2, 3, 4) and inc["explanation"]["fired"]
        assert inc["explanation"]["samples"], "a page must carry sample posts"

        # the calm brands stay calm through the whole crisis window
        await asyncio.sleep(max(0.0, crisis_end - run.app.clock.now()) / SPEED + 1)
        assert {i["topic"] for i in await incidents()} == {"acme"}

        # the demo keeps running while the scrape is served: bracket it
        before = run.app.pipeline.processed
        async with http.get(f"{run.url}/metrics") as r:
            text = await r.text()
        after = run.app.pipeline.processed
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("crisiswatch_mentions_total{")
        )
        assert 1000 < before <= counted <= after

        async with http.get(f"{run.url}/healthz") as r:
            health = await r.json()
        assert health["sources"][0]["name"] == "demo" and health["sources"][0]["connected"]
        assert health["lag_seconds"] is not None
        assert health["learning"] == {}  # the demo's 3 h backfill covers its 1 h warm-up


async def test_the_demo_crisis_resolves_itself_before_its_brands_next_one(app_factory) -> None:  # type: ignore[no-untyped-def]
    """The README's lifecycle: open, page, calm, auto-resolve. With the frozen default's 6 h
    calm an incident outlived the 5 demo hours to its brand's next crisis and never resolved."""
    speed = 300.0
    async with app_factory(speed=speed) as run, aiohttp.ClientSession() as http:
        demo = run.app.config.sources.demo
        origin = run.app.sources[0].scenario.origin
        brands = len(run.app.config.topics)
        next_acme = origin + demo.first_crisis_after_seconds + brands * demo.crisis_every_seconds

        async def resolved() -> list[dict[str, Any]]:
            async with http.get(f"{run.url}/api/v1/incidents?limit=100") as r:
                body = await r.json()
            return [
                i
                for i in body["incidents"]
                if i["opened_at"] >= origin and i["topic"] == "acme" and i["state"] == "resolved"
            ]

        left = (next_acme - run.app.clock.now()) / speed
        done = await wait_for(resolved, timeout=left + 15, step=0.5)
        assert done[0]["resolved_by"] == "detector"
        assert done[0]["resolved_at"] < next_acme, (done[0]["resolved_at"] - origin) / 3600


async def test_websocket_gets_a_snapshot_then_deltas(app_factory) -> None:  # type: ignore[no-untyped-def]
    async with (
        app_factory(speed=SPEED) as run,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{run.url}/ws") as ws,
    ):
        if True:
            first = json.loads((await ws.receive(timeout=5)).data)
            assert first["v"] == 1 and first["type"] == "snapshot"
            assert {t["name"] for t in first["data"]["topics"]} == {"acme", "globex", "initech"}
            deltas: list[dict[str, Any]] = []
            while len(deltas) < 3:
                msg = json.loads((await ws.receive(timeout=10)).data)
                if msg["type"] == "delta" and msg["topic"] == "series":
                    deltas.append(msg["data"])
            assert {"topic", "t", "count", "negative_share", "score"} <= deltas[0].keys()
            # the wall counts in /healthz and the metrics (the MQTT publisher is not a wall)
            async with http.get(f"{run.url}/healthz") as r:
                assert (await r.json())["wall_clients"] == 1
            async with http.get(f"{run.url}/metrics") as r:
                assert "crisiswatch_wall_clients 1.0" in await r.text()


async def test_state_survives_a_restart(app_factory) -> None:  # type: ignore[no-untyped-def]
    async with app_factory(speed=SPEED) as run:
        await wait_for(lambda: _closed(run), timeout=20)
        first_watermark = run.app.aggregator.closed_until
    async with app_factory(speed=SPEED) as run:
        # restored before the first tick: the aggregator resumes where it stopped
        assert run.app.aggregator.closed_until is not None
        assert run.app.aggregator.closed_until >= first_watermark
        assert run.app.detector.checkpoint()


async def _closed(run: Any) -> bool:
    return run.app.aggregator.closed_until is not None and run.app.pipeline.processed > 0


async def test_topics_still_learning_their_baseline_are_shown_not_armed(app_factory) -> None:  # type: ignore[no-untyped-def]
    """A first start pages nothing for `warmup_seconds`; /healthz and the wall's points say
    until when, instead of a quiet pager that looks armed."""
    warmup = 3 * 86_400.0
    async with (
        app_factory(speed=SPEED, detection={"warmup_seconds": warmup}) as run,
        aiohttp.ClientSession() as http,
    ):
        await wait_for(lambda: _closed(run), timeout=20)
        async with http.get(f"{run.url}/healthz") as r:
            health = await r.json()
        topics = [t.name for t in run.app.config.topics]
        assert r.status == 200 and sorted(health["learning"]) == sorted(topics)
        assert health["learning_count"] == len(topics)
        # the first bucket is the demo's backfill (3 h back): the warm-up runs from there
        backfill = run.app.config.sources.demo.backfill_seconds
        for pages_from in health["learning"].values():
            assert health["now"] < pages_from <= health["now"] - backfill + warmup + 120
        async with http.ws_connect(f"{run.url}/ws") as ws:
            snapshot = json.loads((await ws.receive(timeout=10)).data)
        points = snapshot["data"]["series"][topics[0]]
        assert points and points[-1]["pages_from"] == health["learning"][topics[0]]
        # no incident yet: the gauge says 0, not nothing ("No data" on the dashboard; QA)
        async with http.get(f"{run.url}/metrics") as r:
            text = await r.text()
        assert 'crisiswatch_incidents{severity="SEV1",state="triggered"} 0.0' in text
