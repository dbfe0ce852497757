"""Ingest throughput: decoder, HTTP ingest endpoint, MQTT collector (real Mosquitto if up).

Run: ``.venv/bin/python bench/bench_ingest.py [--quick]``. Prints medians of several runs.
Method: mentions are realistic (~350 bytes JSON); the pipeline behind `submit` is a no-op, so
these are the collectors' own ceilings, not the service's end-to-end rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import ClientSession, web
from prometheus_client import CollectorRegistry

from monitor.clock import SystemClock
from monitor.collectors.base import SourceContext
from monitor.collectors.common import Secret
from monitor.collectors.ingest import MentionIngest
from monitor.collectors.mqtt import MqttSource
from monitor.config.sources import HttpIngestConfig, MqttSourceConfig
from monitor.decode import decode_json_bytes, encode_mention
from monitor.model import Author, Mention


def sample(i: int) -> Mention:
    return Mention(
        id=f"{i}-{uuid.uuid4().hex[:8]}",
        source="bench",
        channel="x",
        text=f"@acme my order #{i} is three weeks late and support does not answer, refund now",
        created_at=1_714_564_800.0 + i * 0.01,
        author=Author(id=f"u{i % 5000}", handle=f"@user{i % 5000}", followers=i % 10_000),
        lang="en",
        url=f"https://x.com/user/status/{i}",
        kind="reply",
        in_reply_to="1",
        metrics=(("likes", i % 7), ("shares", i % 3)),
    )


class NullKV:
    async def get(self, key: str) -> bytes | None:
        return None

    async def put(self, key: str, value: bytes) -> None:
        return None


class NullLetters:
    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None:
        return None


def ctx(counter: list[int]) -> SourceContext:
    async def submit(m: Mention) -> None:
        counter[0] += 1

    return SourceContext(SystemClock(), NullLetters(), NullKV(), CollectorRegistry(), submit)


def bench_decode(n: int) -> float:
    raws = [json.dumps(encode_mention(sample(i))).encode() for i in range(n)]
    t = time.perf_counter()
    for r in raws:
        decode_json_bytes(r)
    return n / (time.perf_counter() - t)


async def bench_http(n: int, batch: int) -> float:
    count = [0]
    app = web.Application()
    app.add_routes(
        MentionIngest(
            HttpIngestConfig(enabled=True, max_items=batch), ctx(count), Secret("t")
        ).routes()
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bodies = [
        b"\n".join(json.dumps(encode_mention(sample(b * batch + i))).encode() for i in range(batch))
        for b in range(n // batch)
    ]
    headers = {"Authorization": "Bearer t", "Content-Type": "application/x-ndjson"}
    async with ClientSession() as s:
        t = time.perf_counter()
        for body in bodies:
            async with s.post(
                f"http://127.0.0.1:{port}/api/v1/mentions", data=body, headers=headers
            ) as r:
                assert r.status == 200, await r.text()
        dt = time.perf_counter() - t
    await runner.cleanup()
    assert count[0] == len(bodies) * batch
    return count[0] / dt


async def bench_mqtt(n: int) -> float:
    import aiomqtt

    run = uuid.uuid4().hex[:10]
    cfg = MqttSourceConfig(enabled=True, client_id=f"bench-{run}", topics=[f"bench/{run}/#"])
    count = [0]
    src = MqttSource(cfg, ctx(count))
    done = asyncio.Event()
    start: list[float] = []

    async def consume() -> None:
        async with aclosing(src.stream()) as stream:
            async for _ in stream:
                if not start:
                    start.append(time.perf_counter())
                count[0] += 1
                if count[0] == n:
                    done.set()

    task = asyncio.create_task(consume())
    while not src.health.connected:
        await asyncio.sleep(0.01)
    payloads = [json.dumps(encode_mention(sample(i))) for i in range(n)]
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"bench-pub-{run}") as pub:
        for i, p in enumerate(payloads):
            while i - count[0] > 800:  # stay under Mosquitto's per-client queue (1000)
                await asyncio.sleep(0.001)
            await pub.publish(f"bench/{run}/in", p, qos=1)
    await asyncio.wait_for(done.wait(), 120)
    dt = time.perf_counter() - start[0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return n / dt


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def amedian_of(runs: int, fn: Callable[[], Awaitable[float]]) -> float:
    return statistics.median(asyncio.run(fn()) for _ in range(runs))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    runs = 3 if args.quick else 5
    n = 5_000 if args.quick else 20_000
    dec = median_of(runs, lambda: bench_decode(n))
    print(f"decode_json_bytes: {dec:,.0f} mentions/s (median of {runs})")
    http = amedian_of(runs, lambda: bench_http(n, 1000))
    print(f"HTTP ingest, NDJSON batches of 1000: {http:,.0f} mentions/s (median of {runs})")
    if broker_up():
        mq = amedian_of(runs, lambda: bench_mqtt(n // 2))
        print(f"MQTT QoS1 collector (manual ack): {mq:,.0f} mentions/s (median of {runs})")
    else:
        print("MQTT: broker at 127.0.0.1:1883 not reachable, skipped")


if __name__ == "__main__":
    main()
