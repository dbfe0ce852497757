"""Wall benchmark: mention ingested -> visible on a connected wall, and pipeline throughput with
0 vs 500 connected walls. Run: `.venv/bin/python bench/bench_wall.py [--clients 500]`.

Method (one run, one machine): the real App (demo source off, lexicon sentiment) serves the
wall; mentions from the seeded demo generator are fed to `Pipeline.ingest` in batches, and the
event-time watermark is advanced every second so buckets close as in production. The wall's
`live` message (`dashboards.wall.run_live`, every 0.25 s) carries the processed count. Walls run
in a separate process (real websockets over loopback); one of them records when each `live`
frame arrives. Latency of a batch = arrival of the first frame whose count includes it minus
the moment `ingest` returned (both CLOCK_MONOTONIC, shared by the two processes).
  1. throughput, 0 walls: 3 x 15k mentions as fast as possible (median).
  2. throughput, N walls connected: 3 x another 15k (median).
  3. latency, N walls: 1,000 mentions/s for 20 s, paced in 20 ms batches.

`--scale` (no service, no walls): what a wall costs at a large customer's topic count. A
`WallState` of 2,000 topics with 120 seeded points each (2 h of 1-minute buckets, values shaped
like `monitor.pipeline.series_point`); medians of 5 runs of (a) the connect snapshot's bytes
and its build + encode time (a state change before each run, so none is served from the cache)
and (b) the checkpoint form of the tiles' history (`series_state()`), its JSON and json + zlib
(level 6, as `monitor.app.App.checkpoint`) bytes and time, and `restore_series` of it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import yaml
from aiohttp import web

from dashboards.view import WallState
from dashboards.wall import live_view, run_live
from monitor.app import App
from monitor.clock import SystemClock
from monitor.collectors.demo import DemoScenario
from monitor.config import parse_config
from monitor.config.sources import DemoSourceConfig
from monitor.model import Mention
from monitor.storage import open_store

ROOT = Path(__file__).resolve().parents[1]
CLOCK = SystemClock()
REPS = 3


def mentions(n: int, first_minute: int) -> tuple[list[Mention], int]:
    """`n` demo mentions re-timed to 1,000 per second of event time (the target load), so the
    wall sees the message rate production would: a bucket closes per minute of event time."""
    sc = DemoScenario(DemoSourceConfig(), origin=first_minute * 60.0)
    out: list[Mention] = []
    m = first_minute
    while len(out) < n:
        for brand in sc.config.brands:
            out.extend(sc.minute(brand, m))
        m += 1
    out.sort(key=lambda x: x.created_at)
    t0 = first_minute * 60.0
    out = [dataclasses.replace(x, created_at=t0 + i / 1000.0) for i, x in enumerate(out[:n])]
    return out, m  # the next unused demo minute: ids never repeat, event time only grows


async def feed(app: App, batch: list[Mention]) -> None:
    app.pipeline.ingest(batch)
    await asyncio.sleep(0)


async def advance(app: App) -> None:
    newest = app.pipeline.newest_event_time
    if newest is not None:
        await app.pipeline.advance(newest - 60.0)


async def throughput(app: App, ms: list[Mention], batch: int = 200) -> float:
    before = app.pipeline.processed
    t0 = CLOCK.monotonic()
    last_adv = t0
    for i in range(0, len(ms), batch):
        await feed(app, ms[i : i + batch])
        if CLOCK.monotonic() - last_adv >= 1.0:
            await advance(app)
            last_adv = CLOCK.monotonic()
    elapsed = CLOCK.monotonic() - t0
    assert app.pipeline.processed - before == len(ms), "every mention must be new (no dedup)"
    return len(ms) / elapsed


async def paced(
    app: App, ms: list[Mention], rate: float, batch: int = 20
) -> list[tuple[int, float]]:
    """Feed at `rate` mentions/s; return (processed count after batch, time ingest returned)."""
    marks: list[tuple[int, float]] = []
    t0 = CLOCK.monotonic()
    last_adv = t0
    for k, i in enumerate(range(0, len(ms), batch)):
        due = t0 + (k * batch) / rate
        delay = due - CLOCK.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        app.pipeline.ingest(ms[i : i + batch])
        marks.append((app.pipeline.processed, CLOCK.monotonic()))
        if CLOCK.monotonic() - last_adv >= 1.0:
            await advance(app)
            last_adv = CLOCK.monotonic()
    return marks


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- scale: snapshot and checkpoint at 2,000 topics ------------------------------------------
def scale_state(topics: int, points: int, seed: int = 7) -> WallState:
    """`topics` topics of `points` calm 1-minute points each (a few active, as in production)."""
    rng = random.Random(seed)
    state = WallState([{"name": f"topic-{i:04d}", "title": f"Topic {i}"} for i in range(topics)])
    t0 = 1_765_000_000.0
    for k in range(points):
        for i in range(topics):
            count = rng.randint(0, 120)
            neg, pos = rng.randint(0, count // 3), rng.randint(0, count // 3)
            exp = round(count * rng.uniform(0.8, 1.2), 3)
            active = rng.random() < 0.01
            state.apply(
                "series",
                {
                    "topic": f"topic-{i:04d}",
                    "t": t0 + 60.0 * k,
                    "width": 60.0,
                    "count": count,
                    "negative": neg,
                    "positive": pos,
                    "negative_share": round(neg / count, 4) if count else 0.0,
                    "sentiment": round(rng.uniform(-0.5, 0.5), 4),
                    "expected": exp,
                    "band": [round(exp * 0.6, 3), round(exp * 1.4, 3)],
                    "score": round(rng.uniform(0.9, 1.0) if active else rng.uniform(0, 0.3), 4),
                    "severity": 3 if active else None,
                    "onset": None,
                    "active": active,
                    "pages_from": None,
                },
            )
    return state


def scale(topics: int = 2000, points: int = 120, runs: int = 5) -> None:
    state = scale_state(topics, points)
    snap_s, snap_b = [], []
    for i in range(runs):
        state.apply("source", {"name": f"bench-{i}"})  # a new state version: no cached body
        t = time.perf_counter()
        frame = state.snapshot_frame("connect", 0.0)
        snap_s.append(time.perf_counter() - t)
        snap_b.append(len(frame.encode()))
    print(
        f"snapshot at {topics:,} topics x {points} points: {statistics.median(snap_b):,.0f} bytes,"
        f" build + encode {statistics.median(snap_s) * 1000:,.0f} ms (median of {runs})"
    )

    def first_form() -> dict[str, Any]:
        """The first form, {topic: [point…]}, of the same points, measured in the same runs."""
        return {n: list(b) for n, b in state.series.items() if b}

    forms: dict[str, Callable[[], dict[str, Any]]] = {
        "series_state()": state.series_state,
        "first form": first_form,
    }
    got: dict[str, list[tuple[int, int, float, float, float]]] = {k: [] for k in forms}
    for _ in range(runs):
        for name, form in forms.items():
            t = time.perf_counter()
            raw = json.dumps(form()).encode()
            dumped = time.perf_counter() - t
            stored = zlib.compress(raw, 6)
            zipped = time.perf_counter() - t
            again = WallState(state.topics)
            t = time.perf_counter()
            again.restore_series(json.loads(zlib.decompress(stored)))
            got[name].append((len(raw), len(stored), dumped, zipped, time.perf_counter() - t))
    for name, rows in got.items():
        raw_b, z_b, js, zs, rs = (statistics.median(c) for c in zip(*rows, strict=True))
        print(
            f"checkpoint, {name}: {raw_b:,.0f} bytes JSON, {z_b:,.0f} bytes json+zlib; "
            f"json {js * 1000:,.0f} ms, json+zlib {zs * 1000:,.0f} ms; "
            f"restore (unzip, parse, restore) {rs * 1000:,.0f} ms (median of {runs})"
        )


# --- the walls' process -----------------------------------------------------------------------
async def walls(url: str, n: int, out: str) -> None:
    arrivals: list[tuple[int, float]] = []
    stop = asyncio.Event()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:

        async def one(i: int) -> None:
            async with http.ws_connect(url, max_msg_size=0) as ws:
                async for msg in ws:
                    if i == 0 and msg.type == aiohttp.WSMsgType.TEXT:
                        f = json.loads(msg.data)
                        live = None
                        if f["type"] == "delta" and f["topic"] == "live":
                            live = f["data"]
                        elif f["type"] == "snapshot":
                            live = f["data"].get("live")
                        if live:
                            arrivals.append((live["processed"], CLOCK.monotonic()))

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), stop.set)  # the parent closes stdin to stop us
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    Path(out).write_text(json.dumps(arrivals))


# --- the service's process --------------------------------------------------------------------
async def main(n_clients: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-wall-"))
    doc: dict[str, Any] = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    doc["storage"] = {"url": f"sqlite:///{tmp}/cw.db"}
    doc["server"] = {"host": "127.0.0.1", "port": 0, "client_queue": 256}
    doc.setdefault("enrichment", {})["sentiment"] = "baseline"
    doc["sources"]["demo"]["enabled"] = False
    config = parse_config(doc)
    store = await open_store(config.storage.url)
    app = App(config, CLOCK, store)
    runner = web.AppRunner(app.web, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    live = asyncio.create_task(
        run_live(app.hub, lambda: live_view(app.pipeline.processed, app.pipeline.newest_event_time))
    )
    # consecutive event time throughout, so no phase's mentions arrive "late"
    first = 29_000_000
    warm, first = mentions(20_000, first)
    runs_0, runs_n = [], []
    for _ in range(REPS):
        ms, first = mentions(15_000, first)
        runs_0.append(ms)
    for _ in range(REPS):
        ms, first = mentions(15_000, first)
        runs_n.append(ms)
    batch_c, first = mentions(20_000, first)
    await throughput(app, warm)  # warm-up: detector baselines, caches

    tp0 = statistics.median([await throughput(app, ms) for ms in runs_0])
    print(f"throughput, 0 walls:   {tp0:,.0f} mentions/s (median of {REPS})")

    out = tmp / "arrivals.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--walls",
            f"ws://127.0.0.1:{port}/ws",
            str(n_clients),
            str(out),
        ],
        stdin=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if app.wall.walls >= n_clients:
                break
            await asyncio.sleep(0.05)
        print(f"walls connected:       {app.wall.walls}")
        await asyncio.sleep(2.0)  # let the connect snapshots drain
        tpn = statistics.median([await throughput(app, ms) for ms in runs_n])
        print(
            f"throughput, {n_clients} walls: {tpn:,.0f} mentions/s (median of {REPS}; "
            f"{tpn / tp0:.0%} of 0 walls)"
        )
        marks = await paced(app, batch_c, rate=1000.0)
        await asyncio.sleep(1.0)
        dropped = app.wall.dropped  # walls are fed by the view model, not the hub
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)
    arrivals = json.loads(out.read_text())
    lat = []
    j = 0
    for count, t in marks:
        while j < len(arrivals) and arrivals[j][0] < count:
            j += 1
        if j == len(arrivals):
            break
        lat.append(arrivals[j][1] - t)
    print(
        f"ingest -> wall at 1,000 mentions/s with {n_clients} walls: "
        f"p50 {percentile(lat, 0.5) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms, "
        f"max {max(lat) * 1000:.0f} ms over {len(lat)}/{len(marks)} batches; "
        f"messages dropped for slow walls: {dropped}"
    )
    live.cancel()
    await runner.cleanup()
    await app.close()
    await store.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--walls":
        asyncio.run(walls(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument("--clients", type=int, default=500)
        ap.add_argument("--scale", action="store_true", help="snapshot/checkpoint at 2,000 topics")
        args = ap.parse_args()
        if args.scale:
            scale()
        else:
            asyncio.run(main(args.clients))
