"""What the app admits into the queue: a mention from a source with a wrong clock counts now."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.app import FUTURE_SECONDS, App
from monitor.clock import FakeClock
from monitor.collectors.base import SourceHealth
from monitor.errors import CrisiswatchError
from monitor.model import Author, Mention
from monitor.storage import open_store
from tests.conftest import demo_config

NOW = 1_700_000_000.0


def mention(i: int, t: float) -> Mention:
    return Mention(f"m{i}", "http", "x", "acme is down", t, Author("a", "@a"), lang="en")


async def test_a_mention_dated_in_the_future_counts_at_the_bound(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    try:
        app = await App.open(cfg, FakeClock(NOW), store)
        await app.submit(mention(1, NOW + 10 * 365 * 86_400.0))  # a typo'd year
        await app.submit(mention(2, NOW + 60.0))  # a clock a minute fast: kept as it is
        first, second = app.queue.get_nowait(), app.queue.get_nowait()
        assert first.created_at == NOW + FUTURE_SECONDS and first.id == "m1"
        assert second.created_at == NOW + 60.0
        assert app.registry.get_sample_value("crisiswatch_future_dated_mentions_total") == 1.0
        app.queue.put_nowait(first)
        app.queue.put_nowait(second)
        app.drain()
        await app.pipeline.advance(NOW)
        # the lag is measured against real event times again, and no bucket waits for 2033
        assert app.pipeline.newest_event_time == NOW + FUTURE_SECONDS
        assert max(b.start for b in app.aggregator.open_buckets()) < NOW + 2 * FUTURE_SECONDS
        await app.close()
    finally:
        await store.close()


async def test_a_port_in_use_releases_what_the_app_holds(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}}, server={"port": port})
        store = await open_store(cfg.storage.url)
        try:
            app = await App.open(cfg, FakeClock(NOW), store)
            with pytest.raises(CrisiswatchError, match=r"cannot listen on 127\.0\.0\.1"):
                await app.run(asyncio.Event())
            assert app.http.closed  # before: "Unclosed client session" at exit
        finally:
            await store.close()


class _OneFutureMention:
    name = "future"

    def __init__(self) -> None:
        self.health = SourceHealth(name="future", kind="test")

    async def stream(self) -> AsyncIterator[Mention]:
        yield mention(7, NOW + 10 * 365 * 86_400.0)
        await asyncio.Event().wait()


async def test_a_mention_stranded_at_shutdown_is_bounded_too(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    try:
        app = await App.open(cfg, FakeClock(NOW), store)
        while not app.queue.full():
            app.queue.put_nowait(mention(0, NOW))
        pump = asyncio.create_task(app.pump(_OneFutureMention()))
        for _ in range(100):  # until the pump waits on the full queue
            await asyncio.sleep(0)
        pump.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pump
        (stranded,) = app._stranded
        assert stranded.id == "m7" and stranded.created_at == NOW + FUTURE_SECONDS
        await app.close()
    finally:
        await store.close()
