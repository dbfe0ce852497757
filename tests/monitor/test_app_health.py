"""/healthz problems for pull sources that never connect (QA, twelfth session: a wrong port or
URL looked healthy forever, `bluesky connected:false reconnects:11` with `ok: true`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from contextlib import aclosing

import pytest

from monitor.app import HEALTH_LEARNING_LIMIT, health_problems, learning_shown
from monitor.clock import FakeClock
from monitor.collectors.base import Source, SourceContext, SourceHealth
from monitor.collectors.jetstream import JetstreamSource
from monitor.collectors.mastodon import MastodonSource
from monitor.collectors.mqtt import MqttSource
from monitor.collectors.registry import health_dict
from monitor.collectors.rss import RssSource
from monitor.config.sources import (
    FeedConfig,
    JetstreamConfig,
    MastodonConfig,
    MastodonStreamConfig,
    MqttSourceConfig,
    RssConfig,
)
from tests.monitor.collectors.conftest import make_harness

START = 1_700_000_000.0


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mqtt(ctx: SourceContext, port: int) -> Source:
    return MqttSource(MqttSourceConfig(enabled=True, port=port, client_id="cw-down"), ctx, seed=1)


def jetstream(ctx: SourceContext, port: int) -> Source:
    return JetstreamSource(JetstreamConfig(enabled=True, url=f"ws://127.0.0.1:{port}/s"), ctx)


def mastodon(ctx: SourceContext, port: int) -> Source:
    streams = [MastodonStreamConfig(stream="public")]
    cfg = MastodonConfig(enabled=True, url=f"ws://127.0.0.1:{port}/", streams=streams)
    return MastodonSource(cfg, ctx, seed=1)


def rss(ctx: SourceContext, port: int) -> Source:
    feeds = [FeedConfig(url=f"http://127.0.0.1:{port}/rss")]
    return RssSource(RssConfig(enabled=True, feeds=feeds), ctx, seed=1)


@pytest.mark.parametrize("build", [mqtt, jetstream, mastodon, rss])
async def test_a_pull_source_that_never_connects_is_a_problem_after_the_stale_floor(
    build: Callable[[SourceContext, int], Source],
) -> None:
    clock = FakeClock(START)
    h = make_harness(clock)
    src = build(h.ctx, closed_port())

    async def consume() -> None:
        async with aclosing(src.stream()) as stream:  # type: ignore[type-var]
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(20):
            while src.health.reconnects < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # the attempts' backoff moved the fake clock; the outage counts from the start
    assert not src.health.connected and src.health.down_since == START
    name = src.name
    early = health_dict(src.health, START + 59.0, 60.0)
    assert health_problems([early], [], None, {}) == []  # within the grace: a slow start
    late = health_dict(src.health, START + 85.0, 60.0)
    [problem] = health_problems([late], [], None, {})
    reconnects = src.health.reconnects
    assert problem.startswith(f"source {name} is not connected ({reconnects} reconnects in 85 s")
    assert "last error: " in problem  # what an operator needs to fix it
    assert h.metric("crisiswatch_collector_connected", source=name) == 0.0


def test_a_lost_connection_counts_from_the_loss_and_ends_when_it_is_back() -> None:
    h = SourceHealth("bluesky", "jetstream")
    h.link(False, START)
    h.link(True, START + 1.0)
    assert not h.down(START + 3600.0)
    h.reconnects = 4
    h.link(False, START + 3600.0, OSError("Connect call failed"))
    h.reconnects = 6
    h.link(False, START + 3620.0, OSError("Connect call failed again"))
    d = health_dict(h, START + 3661.0, 60.0)
    assert d["down"] and d["down_seconds"] == 61.0 and d["outage_reconnects"] == 2
    assert health_problems([d], [], None, {}) == [
        "source bluesky is not connected (2 reconnects in 61 s; last error: OSError: Connect"
        " call failed again)"
    ]


def test_the_demo_a_finished_replay_and_push_endpoints_are_never_down() -> None:
    demo = SourceHealth("demo", "demo")  # connected set directly; never links
    replay = SourceHealth("replay", "replay")
    replay.link(False, START)
    replay.finished = True  # played all its files
    push = SourceHealth("http", "http")  # not connected = not configured, its own problem
    for h in (demo, replay, push):
        assert not h.down(START + 86_400.0) and h.down_for(START + 86_400.0) is None
        assert health_problems([health_dict(h, START + 86_400.0)], [], None, {}) == []


def test_healthz_names_only_the_learning_topics_that_page_last() -> None:
    """It listed every one: 77 KB at 2,000 topics, on every probe (QA, thirteenth session)."""
    learning = {f"topic-{i:04}": 1000.0 + i for i in range(2000)}
    shown = learning_shown(learning)
    assert len(shown) == HEALTH_LEARNING_LIMIT
    assert list(shown) == [f"topic-{i:04}" for i in range(1999, 1999 - HEALTH_LEARNING_LIMIT, -1)]
