from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from monitor.hub import Hub
from monitor.metrics import PipelineMetrics


async def test_publish_fans_out_and_never_blocks_on_a_slow_subscriber() -> None:
    hub = Hub()
    with hub.subscribe(maxsize=3) as slow, hub.subscribe(maxsize=100) as fast:
        for i in range(10):
            hub.publish("series", {"i": i})
        assert [m["i"] for _, m in fast.drain()] == list(range(10))
        # the slow one kept the newest three and knows it must resync
        assert [m["i"] for _, m in slow.drain()] == [7, 8, 9]
        assert slow.dropped == 7 and slow.resync
    assert hub.subscribers == 0


async def test_async_iteration_waits_for_the_next_message() -> None:
    hub = Hub()
    with hub.subscribe() as sub:

        async def later() -> None:
            await asyncio.sleep(0.01)
            hub.publish("incident", {"id": "x"})

        task = asyncio.create_task(later())
        topic, msg = await asyncio.wait_for(sub.__anext__(), 1)
        await task
    assert (topic, msg) == ("incident", {"id": "x"})


def test_every_dropped_message_is_counted_also_after_its_subscriber_left() -> None:
    registry = CollectorRegistry()
    hub = Hub(on_drop=PipelineMetrics(registry).hub_dropped.inc)
    with hub.subscribe(maxsize=2), hub.subscribe(maxsize=100):
        for i in range(5):
            hub.publish("series", {"i": i})
    with hub.subscribe(maxsize=1):
        for i in range(3):
            hub.publish("series", {"i": i})
    # `Hub.dropped` forgets subscribers that are gone; the exported counter must not
    assert hub.dropped == 0
    assert registry.get_sample_value("crisiswatch_hub_dropped_messages_total") == 3 + 2
