"""MQTT collector against the real Mosquitto at 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Literal

import aiomqtt
import pytest

from monitor.clock import SystemClock
from monitor.collectors.mqtt import MqttPublisher, MqttSource, out_topic
from monitor.config.sources import BackoffConfig, MqttPublishConfig, MqttSourceConfig
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


@pytest.mark.integration
async def test_two_instances_with_one_client_id_back_off_instead_of_flapping() -> None:
    """The backoff started over as soon as a connection was up: two instances with the same
    client id took the session from each other ~2 times a second each, for ever (QA)."""
    run = uuid.uuid4().hex[:12]
    cfg = MqttSourceConfig(enabled=True, client_id=f"cw-twin-{run}", topics=[f"cwtest/{run}/in"])
    a = MqttSource(cfg, make_harness(SystemClock()).ctx, seed=1)
    b = MqttSource(cfg, make_harness(SystemClock()).ctx, seed=2)
    (ta, _), (tb, _) = consuming(a), consuming(b)
    await asyncio.sleep(8.0)
    ta.cancel()
    tb.cancel()
    await asyncio.gather(ta, tb, return_exceptions=True)
    # reset at each connect: ~30 reconnects in 8 s; backing off (0.5, 1, 2, 4 s caps): < 12
    assert a.health.reconnects + b.health.reconnects <= 12
    assert a.health.reconnects + b.health.reconnects >= 2  # they did kick each other
    # the health (and the log) say why and what to look at
    why = [s.health.last_error or "" for s in (a, b)]
    assert any("Unexpected disconnection" in w or "[code:" in w for w in why), why
    assert any(f"does another client use client id '{cfg.client_id}'" in w for w in why), why


def _broker(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """Our own Mosquitto without persistence (the shared one must not be touched)."""
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto could not start on {port} (port taken?)")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            time.sleep(0.1)
            if proc.poll() is None:  # it is ours that answered
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"mosquitto did not start on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs the mosquitto binary")
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_broker_that_lost_our_session_is_told_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: Literal["3.1.1", "5"]
) -> None:
    """A broker restarted without persistence drops what was published meanwhile; the
    collector resumed with clean_start=False and never looked at the CONNACK (QA)."""
    port = 19150 + (0 if protocol == "5" else 1)
    run = uuid.uuid4().hex[:12]
    cfg = MqttSourceConfig(
        enabled=True,
        host="127.0.0.1",
        port=port,
        client_id=f"cw-lost-{run}",
        topics=[f"cwtest/{run}/in"],
        protocol=protocol,
        backoff=BackoffConfig(initial_seconds=0.1, max_seconds=0.5),
    )
    h = make_harness(SystemClock())
    broker = _broker(port, tmp_path)
    try:
        # the first connect ever: no session expected, none lost
        first = MqttSource(cfg, h.ctx)
        task, _ = consuming(first)
        await _wait(lambda: first.health.connected, 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert first.sessions_lost == 0
        # a restart of the service: the broker kept the session, nothing lost
        src = MqttSource(cfg, h.ctx)
        task, _ = consuming(src)
        await _wait(lambda: src.health.connected, 10)
        assert src.sessions_lost == 0
        assert h.metric("crisiswatch_collector_sessions_lost_total", source="mqtt") == 0
        # the broker restarts without persistence while we are connected
        _stop(broker)
        await _wait(lambda: not src.health.connected, 10)
        broker = _broker(port, tmp_path)
        with caplog.at_level(logging.WARNING, logger="monitor.collectors.mqtt"):
            await _wait(lambda: src.health.connected, 20)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        _stop(broker)
    assert src.sessions_lost == 1
    assert h.metric("crisiswatch_collector_sessions_lost_total", source="mqtt") == 1
    assert "messages published while we were away are lost" in caplog.text
    assert cfg.client_id in caplog.text
