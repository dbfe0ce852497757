"""MQTT collector against the real Mosquitto at 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from contextlib import aclosing
from dataclasses import replace
from typing import Literal

import aiomqtt
import pytest

from monitor.clock import SystemClock
from monitor.collectors.mqtt import MqttPublisher, MqttSource, out_topic
from monitor.config.sources import MqttPublishConfig, MqttSourceConfig
from monitor.decode import encode_mention
from monitor.hub import Hub
from monitor.model import Author, Mention

from .conftest import DownKV, consuming, make_harness

HOST, PORT = "127.0.0.1", 1883


def _mention(i: int) -> Mention:
    return Mention(
        id=str(i),
        source="mqtt",
        channel="x",
        text=f"acme outage {i}",
        created_at=1_700_000_000.0 + i,
        author=Author(id=f"u{i % 97}", handle=f"@u{i % 97}"),
    )


async def _wait(pred: object, timeout: float) -> None:
    async def loop() -> None:
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_ten_thousand_with_restart_in_the_middle(protocol: Literal["3.1.1", "5"]) -> None:
    run = uuid.uuid4().hex[:12]
    prefix = f"cwtest/{run}"
    cfg = MqttSourceConfig(
        enabled=True, client_id=f"cw-test-{run}", topics=[f"{prefix}/in/#"], protocol=protocol
    )
    h = make_harness(SystemClock())  # the same KeyValue across both instances, like a restart
    n = 10_000
    seen: set[str] = set()
    deliveries = 0

    async def consume(src: MqttSource) -> None:
        nonlocal deliveries
        async with aclosing(src.stream()) as stream:
            async for m in stream:
                deliveries += 1
                seen.add(m.id)

    first = MqttSource(cfg, h.ctx)
    task = asyncio.create_task(consume(first))
    await _wait(lambda: first.health.connected, 10)

    published = 0
    async with aiomqtt.Client(HOST, PORT, identifier=f"cw-pub-{run}") as pub:

        async def produce() -> None:
            nonlocal published
            for i in range(n):
                # Mosquitto queues at most 1000 messages per client (max_queued_messages):
                # stay below it, as any producer must for a consumer that is down.
                while i - len(seen) > 800:
                    await asyncio.sleep(0.005)
                await pub.publish(f"{prefix}/in/x", json.dumps(encode_mention(_mention(i))), qos=1)
                published += 1

        producer = asyncio.create_task(produce())
        await _wait(lambda: len(seen) >= n // 3, 60)
        task.cancel()  # the service stops mid-stream, acked or not
        with pytest.raises(asyncio.CancelledError):
            await task
        at_stop = len(seen)
        await _wait(lambda: published - at_stop >= 600, 30)  # published while it is down
        while_down = published - at_stop

        second = MqttSource(cfg, h.ctx)
        task2 = asyncio.create_task(consume(second))
        await producer
        await _wait(lambda: len(seen) >= n, 60)
        await asyncio.sleep(0.2)  # would catch stragglers beyond n
        task2.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task2

    assert seen == {str(i) for i in range(n)}
    assert deliveries == n  # dedup (persisted across the restart) removed every redelivery
    assert while_down >= 600
    assert not h.letters.items
    assert h.metric("crisiswatch_collector_mentions_total", source="mqtt") == n


@pytest.mark.integration
async def test_bad_payloads_are_dead_lettered_and_the_stream_goes_on() -> None:
    run = uuid.uuid4().hex[:12]
    cfg = MqttSourceConfig(enabled=True, client_id=f"cw-bad-{run}", topics=[f"cwtest/{run}/#"])
    h = make_harness(SystemClock())
    src = MqttSource(cfg, h.ctx)
    task, got = consuming(src)
    await _wait(lambda: src.health.connected, 10)
    async with aiomqtt.Client(HOST, PORT) as pub:
        for payload in (b"{", b"\xff\xfe", b"[]", b'{"id": "1"}', b"x" * 300_000):
            await pub.publish(f"cwtest/{run}/in", payload, qos=1)
        await pub.publish(f"cwtest/{run}/in", json.dumps(encode_mention(_mention(1))), qos=1)
    await _wait(lambda: len(got) == 1, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.letters.reasons == {
        "malformed_json": 1,
        "invalid_utf8": 1,
        "not_object": 1,
        "missing_field": 1,
        "oversize": 1,
    }
    assert (
        h.metric("crisiswatch_collector_dead_letters_total", source="mqtt", reason="oversize") == 1
    )


@pytest.mark.integration
async def test_shared_subscription_splits_the_stream() -> None:
    run = uuid.uuid4().hex[:12]
    h = make_harness(SystemClock())
    srcs = [
        MqttSource(
            MqttSourceConfig(
                enabled=True,
                client_id=f"cw-share-{run}-{k}",
                topics=[f"cwtest/{run}/in"],
                shared_group=f"g{run}",
            ),
            h.ctx,
        )
        for k in range(2)
    ]
    got: list[list[str]] = [[], []]

    async def consume(k: int) -> None:
        async with aclosing(srcs[k].stream()) as stream:
            async for m in stream:
                got[k].append(m.id)

    tasks = [asyncio.create_task(consume(k)) for k in range(2)]
    await _wait(lambda: all(s.health.connected for s in srcs), 10)
    async with aiomqtt.Client(HOST, PORT) as pub:
        for i in range(200):
            await pub.publish(f"cwtest/{run}/in", json.dumps(encode_mention(_mention(i))), qos=1)
    await _wait(lambda: len(got[0]) + len(got[1]) >= 200, 10)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(got[0] + got[1], key=int) == [str(i) for i in range(200)]
    assert got[0] and got[1]  # each member got a share, neither got everything


@pytest.mark.integration
async def test_publisher_sends_hub_messages_to_documented_topics() -> None:
    run = uuid.uuid4().hex[:12]
    prefix = f"cwtest/{run}/out"
    cfg = MqttSourceConfig(
        publish=MqttPublishConfig(enabled=True, topic_prefix=prefix, client_id=f"p{run}")
    )
    h = make_harness(SystemClock())
    hub = Hub()
    publisher = MqttPublisher(cfg, h.ctx)
    received: list[tuple[str, dict[str, object]]] = []
    async with aiomqtt.Client(HOST, PORT) as sub:
        await sub.subscribe(f"{prefix}/#", qos=1)
        task = asyncio.create_task(publisher.run(hub))
        await _wait(lambda: publisher.connected and hub.subscribers == 1, 10)
        # a series point as the pipeline publishes it (`series_point`)
        hub.publish("series", {"topic": "acme", "t": 60.0, "count": 3, "score": 0.91})
        hub.publish("escalation", {"incident_id": "inc-7", "level": 2})
        hub.publish("incident", {"id": "inc-7", "state": "triggered"})

        async def collect(n: int) -> None:
            async for msg in sub.messages:
                assert isinstance(msg.payload, bytes)
                received.append((str(msg.topic), json.loads(msg.payload)))
                if len(received) == n:
                    return

        await asyncio.wait_for(collect(4), 10)
        task.cancel()  # a clean stop: the service says it is offline (no last will is sent)
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(collect(5), 10)
    assert received == [
        (f"{prefix}/status", {"online": True}),
        (f"{prefix}/series/acme", {"topic": "acme", "t": 60.0, "count": 3, "score": 0.91}),
        (f"{prefix}/escalation/inc-7", {"incident_id": "inc-7", "level": 2}),
        (f"{prefix}/incident/inc-7", {"id": "inc-7", "state": "triggered"}),
        (f"{prefix}/status", {"online": False}),
    ]
    assert out_topic(prefix, "source", {"name": "a/b"}) == f"{prefix}/source/a_b"
    async with aiomqtt.Client(HOST, PORT) as late:  # retained: a late subscriber learns it too
        await late.subscribe(f"{prefix}/status", qos=1)
        msg = await asyncio.wait_for(anext(aiter(late.messages)), 10)
        assert json.loads(bytes(msg.payload)) == {"online": False}
        await late.publish(f"{prefix}/status", b"", retain=True)  # leave no retained state


@pytest.mark.integration
async def test_reconnects_with_backoff_after_losing_the_connection() -> None:
    run = uuid.uuid4().hex[:12]
    cid = f"cw-kick-{run}"
    cfg = MqttSourceConfig(enabled=True, client_id=cid, topics=[f"cwtest/{run}/in"])
    h = make_harness(SystemClock())
    src = MqttSource(cfg, h.ctx, seed=3)
    task, got = consuming(src)
    await _wait(lambda: src.health.connected, 10)
    async with aiomqtt.Client(HOST, PORT) as pub:
        for i in range(50):
            await pub.publish(f"cwtest/{run}/in", json.dumps(encode_mention(_mention(i))), qos=1)
        await _wait(lambda: len(got) == 50, 10)
        # A client with the same id takes the session over: the broker drops our connection.
        # It does not subscribe; it leaves at once and the session stays for us.
        async with aiomqtt.Client(HOST, PORT, identifier=cid, clean_session=False):
            await _wait(lambda: not src.health.connected, 10)
        for i in range(50, 100):
            await pub.publish(f"cwtest/{run}/in", json.dumps(encode_mention(_mention(i))), qos=1)
        await _wait(lambda: len(got) == 100, 20)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [m.id for m in got] == [str(i) for i in range(100)]
    assert src.health.reconnects >= 1
    assert h.metric("crisiswatch_collector_reconnects_total", source="mqtt") >= 1


class HurriedClock(SystemClock):
    """Wall time as it is, but monotonic time 1000x faster: every message is save time."""

    def monotonic(self) -> float:
        return super().monotonic() * 1000.0


@pytest.mark.integration
async def test_a_state_store_outage_does_not_stop_the_stream() -> None:
    run = uuid.uuid4().hex[:12]
    cfg = MqttSourceConfig(enabled=True, client_id=f"cw-kvdown-{run}", topics=[f"cwtest/{run}/#"])
    h = make_harness(HurriedClock())
    kv = DownKV()
    src = MqttSource(cfg, replace(h.ctx, state=kv))
    task, got = consuming(src)
    await _wait(lambda: src.health.connected, 10)
    async with aiomqtt.Client(HOST, PORT) as pub:
        for i in range(50):
            await pub.publish(f"cwtest/{run}/in", json.dumps(encode_mention(_mention(i))), qos=1)
            await asyncio.sleep(0.002)  # spread them over several save periods
    await _wait(lambda: len(got) == 50 or task.done(), 20)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [m.id for m in got] == [str(i) for i in range(50)]
    assert kv.failed_puts >= 2  # it kept trying, and kept streaming in between


@pytest.mark.integration
async def test_qos0_input_beyond_the_queue_bound_is_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """QoS 0 has no flow control: 20,000 x 8 KB messages the pipeline could not take at once
    grew aiomqtt's queue without bound (RSS 259 -> 455 MB; QA, twelfth session)."""
    import monitor.collectors.mqtt as mod

    monkeypatch.setattr(mod, "MAX_QUEUED_QOS0", 50)
    run = uuid.uuid4().hex[:12]
    topic = f"cwtest/{run}/in/x"
    cfg = MqttSourceConfig(enabled=True, client_id=f"cw-test-{run}", topics=[topic])
    h = make_harness(SystemClock())
    src = MqttSource(cfg, h.ctx)
    rest: list[Mention] = []
    async with aclosing(src.stream()) as stream:
        first = asyncio.ensure_future(anext(stream))
        await _wait(lambda: src.health.connected, 10)
        async with aiomqtt.Client(HOST, PORT, identifier=f"cw-pub-{run}") as pub:
            for i in range(501):
                await pub.publish(topic, json.dumps(encode_mention(_mention(i))), qos=0)
        await first  # taken; then the consumer stalls while the rest arrives
        await _wait(lambda: src.dropped >= 400, 10)
        await asyncio.sleep(0.3)
        with contextlib.suppress(TimeoutError):
            while True:
                rest.append(await asyncio.wait_for(anext(stream), 0.5))
    assert len(rest) <= 50  # what waited in the bounded queue
    assert src.dropped + 1 + len(rest) <= 501 and src.dropped >= 450 - 5
    assert h.metric("crisiswatch_collector_dropped_total", source="mqtt") == src.dropped
