"""Outbox cost: durable enqueue latency and end-to-end delivery throughput.

    .venv/bin/python bench/bench_delivery.py [--n 500] [--runs 3] [--pg URL]

Each run enqueues `n` notifications (each one committed before `enqueue` returns) into a fresh
SQLite file (and PostgreSQL schema with --pg), then drains them with ``Outbox.tick`` through a
notifier that POSTs to a local aiohttp receiver (real HTTP, loopback). Prints medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from alerting.notification import Notification  # noqa: E402
from alerting.notifiers import build_notifiers  # noqa: E402
from alerting.outbox import Outbox  # noqa: E402
from monitor.clock import SystemClock  # noqa: E402
from monitor.config.receivers import DeliveryConfig  # noqa: E402
from monitor.storage import open_store  # noqa: E402


async def one_run(url: str, n: int, receiver: str) -> tuple[float, float]:
    clock = SystemClock()
    store = await open_store(url)
    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "hook", "type": "webhook", "url": receiver, "secret_env": "S"}]}
    )
    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(cfg.receivers, session, env={"S": "s"}, clock=clock)
        ob = Outbox(store, notifiers, clock, CollectorRegistry())
        lat = []
        for i in range(n):
            note = Notification(f"n{i}", "hook", "trigger", f"k{i}", {"id": f"i{i}"}, clock.now())
            t0 = time.perf_counter()
            await ob.enqueue(note)
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        while (await store.outbox_stats(clock.now()))["pending"]:
            await ob.tick()
        drain = time.perf_counter() - t0
    if hasattr(store, "drop_schema"):
        await store.drop_schema()
    await store.close()
    return statistics.median(lat) * 1000, n / drain


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", default=None, help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver = f"http://127.0.0.1:{port}/hook"
    backends = {"sqlite": None, "postgresql": args.pg}
    for name, base in backends.items():
        if name == "postgresql" and not base:
            continue
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                url = (
                    f"sqlite:///{tmp}/bench.db"
                    if base is None
                    else f"{base}?schema=bench_{uuid.uuid4().hex[:8]}"
                )
                results.append(await one_run(url, args.n, receiver))
        enq = statistics.median(r[0] for r in results)
        rate = statistics.median(r[1] for r in results)
        print(f"{name}: enqueue median {enq:.2f} ms, delivery {rate:.0f} notifications/s "
              f"(n={args.n}, runs={args.runs})")  # fmt: skip
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
