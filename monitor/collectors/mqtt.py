"""MQTT in (mentions) and out (derived data), with aiomqtt.

In: a persistent session (MQTT 3.1.1 ``clean_session=False``; MQTT 5 ``clean_start=False`` plus
a session expiry) keyed by a stable client id, QoS 1, and *manual* acknowledgement: a PUBACK is
sent only after the consumer of :meth:`MqttSource.stream` asked for the next mention, i.e.
after it took the previous one. A crash before that makes the broker redeliver, so nothing is
lost; the redelivered copy is dropped by dedup (in memory, and a snapshot of the newest keys is
kept in the ``KeyValue`` store so a restart drops it too).

Out: :class:`MqttPublisher` forwards hub messages to ``<prefix>/<topic>/<key>`` as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Backoff, Checkpoint, Intake, RecentKeys, Secret, metrics_for
from monitor.config.sources import MqttSourceConfig
from monitor.decode import decode_json_bytes
from monitor.errors import DecodeError
from monitor.hub import Hub
from monitor.model import Mention
from monitor.outage import Outage

log = logging.getLogger("monitor.collectors.mqtt")

#: Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum).
RECEIVE_MAXIMUM = 100
#: QoS 0 messages waiting in aiomqtt's incoming queue before the next one is dropped. QoS 0
#: has no flow control: a burst the pipeline cannot take at once grew the queue without bound
#: (20,000 x 8 KB: RSS 259 -> 455 MB; QA, twelfth session). QoS 1/2 are bounded by the broker.
MAX_QUEUED_QOS0 = 1_000
_DROP_LOG_SECONDS = 60.0
_DEDUP_KEEP = 4 * RECEIVE_MAXIMUM  # enough to cover every redelivery after a restart
_SAVE_EVERY_SECONDS = 5.0


def subscription_filters(topics: list[str], shared_group: str | None) -> list[str]:
    """Topic filters to subscribe, as shared subscriptions when a group is set.

    >>> subscription_filters(["a/#", "b/+"], "workers")
    ['$share/workers/a/#', '$share/workers/b/+']
    >>> subscription_filters(["a/#"], None)
    ['a/#']
    """
    if not shared_group:
        return list(topics)
    return [f"$share/{shared_group}/{t}" for t in topics]


def incoming_queue(
    limit: int, dropped: Callable[[aiomqtt.Message], None]
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue, holding at most `limit` QoS 0 messages: the next is dropped
    and told to `dropped`. QoS 1/2 are always queued.

    Not aiomqtt's ``max_queued_incoming_messages``: it discards whatever arrives on a full
    queue, QoS 1 included, and a QoS 1 message dropped under manual ack is never acknowledged,
    so it holds one of the broker's in-flight slots (Receive Maximum) until the next reconnect;
    QoS 1/2 need no bound here, the broker's flow control is theirs.

    >>> lost = []
    >>> q = incoming_queue(2, lost.append)()
    >>> for qos in (0, 0, 0, 1): q.put_nowait(aiomqtt.Message("t", b"", qos, False, 0, None))
    >>> q.qsize(), len(lost)
    (3, 1)
    """

    class Incoming(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if item.qos == 0 and self.qsize() >= limit:
                dropped(item)
                return
            super().put_nowait(item)

    return Incoming


def _client(
    cfg: MqttSourceConfig,
    client_id: str,
    password: Secret | None,
    *,
    persistent: bool,
    will: aiomqtt.Will | None = None,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
) -> aiomqtt.Client:
    v5 = cfg.protocol == "5"
    kwargs: dict[str, Any] = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = cfg.session_expiry_seconds
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        kwargs["properties"] = props
        # False = resume the session the broker kept for this client id (never wipe it)
        kwargs["clean_start"] = not persistent
    else:
        kwargs["clean_session"] = not persistent
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        username=cfg.username,
        password=password.reveal() if password else None,
        keepalive=cfg.keepalive_seconds,
        timeout=10.0,
        will=will,
        queue_type=queue_type,
        **kwargs,
    )


class MqttSource:
    """Mentions from MQTT topics (JSON, one mention per message, docs/mention-schema.json)."""

    def __init__(
        self,
        cfg: MqttSourceConfig,
        ctx: SourceContext,
        *,
        password: Secret | None = None,
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self._intake = Intake(cfg.name, "mqtt", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health
        self._intake.metrics.dropped.labels(cfg.name)  # at 0 from the start: a rate needs it
        self._password = password
        self._seed = seed
        self._state_key = f"collector:{cfg.name}:dedup"
        self.dropped = 0  # QoS 0 messages dropped on a full incoming queue
        self._drops_logged = 0
        self._drop_log_at: float | None = None

    def _dropped(self, msg: aiomqtt.Message) -> None:
        """A QoS 0 message the pipeline had no room for: counted, logged once a minute."""
        self.dropped += 1
        self._intake.metrics.dropped.labels(self.name).inc()
        now = self.ctx.clock.monotonic()
        if self._drop_log_at is None or now - self._drop_log_at >= _DROP_LOG_SECONDS:
            log.warning(
                "%s: dropped %d QoS 0 message(s) (%d in all): %d already wait for the "
                "pipeline; publish at QoS 1 to have the broker hold them instead",
                self.name, self.dropped - self._drops_logged, self.dropped, MAX_QUEUED_QOS0,
            )  # fmt: skip
            self._drops_logged, self._drop_log_at = self.dropped, now

    def decode(self, payload: bytes) -> Mention | None:
        """Payload -> mention, or None (dead-lettered, or a duplicate)."""
        try:
            m = decode_json_bytes(payload, source=self.name, max_bytes=self.cfg.max_payload_bytes)
        except DecodeError as err:
            self._intake.reject_error(err, payload[: self.cfg.max_payload_bytes])
            return None
        return m if self._intake.accept(m) else None

    async def _save_dedup(self, checkpoint: Checkpoint) -> None:
        await checkpoint.save(self._state_key, self._intake.dedup.snapshot(_DEDUP_KEEP))

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        restored = RecentKeys.restore(await self.ctx.state.get(self._state_key))
        for key in restored.recent(len(restored)):
            self._intake.dedup.seen(key)
        backoff = Backoff(
            self.cfg.backoff.initial_seconds, self.cfg.backoff.max_seconds, seed=self._seed
        )
        filters = subscription_filters(self.cfg.topics, self.cfg.shared_group)
        attempts = 0
        checkpoint = Checkpoint(self.name, self.ctx, every=_SAVE_EVERY_SECONDS)
        queue = incoming_queue(MAX_QUEUED_QOS0, self._dropped)
        self._intake.link(False)  # down from the start until the broker answers
        try:
            while True:
                if attempts:
                    self._intake.reconnected()
                attempts += 1
                error: BaseException | None = None
                client = _client(
                    self.cfg, self.cfg.client_id, self._password, persistent=True, queue_type=queue
                )
                # aiomqtt has no public switch for it; paho's manual ack is what makes QoS 1
                # at-least-once end to end instead of "acked on arrival, lost on crash".
                client._client.manual_ack_set(True)
                try:
                    async with client:
                        for f in filters:
                            await client.subscribe(f, qos=self.cfg.qos)
                        self._intake.link(True)
                        backoff.reset()
                        log.info("%s: connected to %s:%s", self.name, self.cfg.host, self.cfg.port)
                        async for msg in client.messages:
                            raw = msg.payload
                            payload = (
                                raw if isinstance(raw, bytes | bytearray) else str(raw).encode()
                            )
                            m = self.decode(bytes(payload))
                            if m is not None:
                                yield m
                            # reached only once the consumer asked for more: now it is safe
                            client._client.ack(msg.mid, msg.qos)
                            if checkpoint.due():
                                await self._save_dedup(checkpoint)
                except aiomqtt.MqttError as exc:
                    error = exc
                finally:
                    self._intake.link(False, error)
                await clock.sleep(backoff.next())
        finally:
            await self._save_dedup(checkpoint)


def out_topic(prefix: str, topic: str, message: Mapping[str, Any]) -> str:
    """Where a hub message goes on MQTT.

    >>> out_topic("crisiswatch/out", "series", {"topic": "acme/x", "score": 0.7})
    'crisiswatch/out/series/acme_x'
    >>> out_topic("p", "incident", {"id": "inc-1"}), out_topic("p", "other", {})
    ('p/incident/inc-1', 'p/other')
    """
    # the key that names each message's subject (`pipeline.series_point` calls a series "topic")
    field = {"series": "topic", "incident": "id", "source": "name", "escalation": "incident_id"}
    key = field.get(topic)
    value = message.get(key) if key else None
    if value is None and topic == "incident":
        inner = message.get("incident")
        value = inner.get("id") if isinstance(inner, Mapping) else None
    base = f"{prefix.rstrip('/')}/{_level(topic)}"
    return f"{base}/{_level(str(value))}" if value not in (None, "") else base


def _level(s: str) -> str:
    # a topic level must not contain the separators or wildcards of MQTT
    return "".join("_" if c in "/+#\x00" else c for c in s) or "_"


#: Hub topics whose newest message is a state (retained for late subscribers), not an event.
RETAINED = frozenset({"source"})
#: ``<prefix>/status``, retained: whether the service is up. The retained ``source`` states are
#: its last word, so a late subscriber must learn that it has stopped: ``online: false`` on a
#: clean stop, and the broker's last will when the connection dies without one.
ONLINE, OFFLINE = b'{"online":true}', b'{"online":false}'


class MqttPublisher:
    """Publishes what the service derives to MQTT; reconnects with backoff, never blocks the hub.

    The hub subscription is bounded and drop-oldest, so a broker outage costs old points,
    counted by the hub, never memory or pipeline latency.
    """

    def __init__(
        self,
        cfg: MqttSourceConfig,
        ctx: SourceContext,
        *,
        password: Secret | None = None,
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self._password = password
        self._seed = seed
        self._metrics = metrics_for(ctx.registry)
        self.connected = False

    async def run(self, hub: Hub) -> None:
        pub = self.cfg.publish
        backoff = Backoff(
            self.cfg.backoff.initial_seconds, self.cfg.backoff.max_seconds, seed=self._seed
        )
        held: tuple[str, dict[str, Any]] | None = None
        status = out_topic(pub.topic_prefix, "status", {})
        will = aiomqtt.Will(status, OFFLINE, qos=1, retain=True)
        outage = Outage()  # the first failed attempt of an outage told, then every 10 minutes
        with hub.subscribe(pub.queue) as sub:
            while True:
                client = _client(
                    self.cfg, pub.client_id, self._password, persistent=False, will=will
                )
                try:
                    async with client:
                        self.connected = True
                        backoff.reset()
                        if failed := outage.recovered():
                            log.info("MQTT publisher: connected again (%d attempts failed)", failed)
                        await client.publish(status, ONLINE, qos=1, retain=True)
                        try:
                            while True:
                                if held is None:
                                    held = await anext(sub)
                                topic, message = held
                                await client.publish(
                                    out_topic(pub.topic_prefix, topic, message),
                                    json.dumps(message, separators=(",", ":"), default=str),
                                    qos=pub.qos,
                                    retain=topic in RETAINED,
                                )
                                self._metrics.published.labels(topic).inc()
                                held = None
                        except asyncio.CancelledError:
                            # a clean disconnect sends no last will: say it ourselves
                            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                                await asyncio.wait_for(
                                    client.publish(status, OFFLINE, qos=1, retain=True), 2.0
                                )
                            raise
                except aiomqtt.MqttError as exc:
                    level = outage.failed(self.ctx.clock.now())
                    log.log(level, "MQTT publisher: connection lost: %s", exc)
                finally:
                    self.connected = False
                await self.ctx.clock.sleep(backoff.next())
