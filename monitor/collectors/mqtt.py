"""MQTT in (mentions) and out (derived data), with aiomqtt.

In: a persistent session (MQTT 3.1.1 ``clean_session=False``; MQTT 5 ``clean_start=False`` plus
a session expiry) keyed by a stable client id, QoS 1, and *manual* acknowledgement: a PUBACK is
sent only after the consumer of :meth:`MqttSource.stream` asked for the next mention, i.e.
after it took the previous one. A crash before that makes the broker redeliver; the
redelivered copy is dropped by dedup (in memory, and a snapshot of the newest keys is kept in
the ``KeyValue`` store so a restart drops it too). Taken is not yet durable: what the pipeline
counted lives in memory until its next checkpoint (``storage.checkpoint_seconds``, 30 s by
default), so a kill -9 loses the mentions acknowledged since then (QA: 502 of 1,999). A
graceful stop loses nothing.

A reconnect that finds the broker without the session it kept for us (restarted without
persistence, or the session expired) is logged and counted
(``crisiswatch_collector_sessions_lost_total``): what was published meanwhile is gone.

Out: :class:`MqttPublisher` forwards hub messages to ``<prefix>/<topic>/<key>`` as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import (
    STABLE_SECONDS,
    Backoff,
    Checkpoint,
    Intake,
    RecentKeys,
    Secret,
    metrics_for,
)
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
        self._session_key = f"collector:{cfg.name}:session"
        self.sessions_lost = 0  # reconnects that found the broker without our session
        self._intake.metrics.sessions_lost.labels(cfg.name)  # at 0, for increase()
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

    async def _expects_session(self) -> bool:
        """Whether the broker should hold a session for us already at our first connect: an
        earlier run of this service connected with the same client id (a restart must find
        its session too, or what was published while it was down is gone)."""
        try:
            raw = await self.ctx.state.get(self._session_key)
            mark = json.loads(raw) if raw else None
        except Exception:  # unknown: the first connect then proves nothing either way
            return False
        return (
            isinstance(mark, dict)
            and mark.get("client_id") == self.cfg.client_id
            and isinstance(mark.get("at"), int | float)
        )

    async def _mark_session(self) -> None:
        """Remember that the broker holds a session for our client id (best effort)."""
        mark = {"client_id": self.cfg.client_id, "at": self.ctx.clock.now()}
        with contextlib.suppress(Exception):
            await self.ctx.state.put(self._session_key, json.dumps(mark).encode())

    def _session_lost(self) -> None:
        """The broker answered a resume without the session it kept for us (restarted without
        persistence, or the session expired): what was published meanwhile is gone."""
        self.sessions_lost += 1
        self._intake.metrics.sessions_lost.labels(self.name).inc()
        log.warning(
            "%s: the broker %s:%s had no session for client id %r (restarted without "
            "persistence, or the session expired after %d s): messages published while we "
            "were away are lost",
            self.name, self.cfg.host, self.cfg.port, self.cfg.client_id,
            self.cfg.session_expiry_seconds,
        )  # fmt: skip

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
        expect_session = await self._expects_session()
        short = 0  # connections in a row that dropped before they were stable
        self._intake.link(False)  # down from the start until the broker answers
        try:
            while True:
                if attempts:
                    self._intake.reconnected()
                attempts += 1
                error: BaseException | None = None
                up_at: float | None = None
                client = _client(
                    self.cfg, self.cfg.client_id, self._password, persistent=True, queue_type=queue
                )
                # aiomqtt has no public switch for it; paho's manual ack is what makes QoS 1
                # at-least-once end to end instead of "acked on arrival, lost on crash".
                client._client.manual_ack_set(True)
                session = _capture_session_present(client)
                try:
                    async with client:
                        up_at = clock.monotonic()
                        if expect_session and session.present is False:
                            self._session_lost()
                        expect_session = True
                        await self._mark_session()
                        for f in filters:
                            await _unless_dropped(client, client.subscribe(f, qos=self.cfg.qos))
                        self._intake.link(True)
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
                    lasted = None if up_at is None else clock.monotonic() - up_at
                    short = short + 1 if lasted is not None and lasted < STABLE_SECONDS else 0
                    hint = self.cfg.client_id if short >= 2 else None
                    error = aiomqtt.MqttError(lost_reason(exc, lasted, hint))
                finally:
                    _drop_reason(client)
                    self._intake.link(False, error)
                # start over only after a connection that held: reset as soon as it was up,
                # two instances with one client id kicked each other ~2 times a second (QA)
                backoff.settle(None if up_at is None else clock.monotonic() - up_at)
                await clock.sleep(backoff.next())
        finally:
            await self._save_dedup(checkpoint)


class _Session:
    present: bool | None = None  # the CONNACK's session-present flag, once it came


def _capture_session_present(client: aiomqtt.Client) -> _Session:
    """The session-present flag of the client's next CONNACK (aiomqtt drops it), read by
    wrapping the paho client's ``on_connect`` that aiomqtt installed."""
    seen = _Session()
    paho = client._client
    aiomqtt_on_connect: Callable[..., None] = paho.on_connect  # type: ignore[assignment]

    def on_connect(
        c: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        seen.present = bool(flags.session_present)
        aiomqtt_on_connect(c, userdata, flags, reason_code, properties)

    paho.on_connect = on_connect
    return seen


def lost_reason(exc: aiomqtt.MqttError, lasted: float | None, client_id: str | None) -> str:
    """Why the connection ended, with the broker's reason (aiomqtt keeps it in ``__cause__``),
    and the usual cause when connections keep dropping soon after they came up (`client_id`
    given): two clients using one client id take the session from each other.

    >>> from paho.mqtt.packettypes import PacketTypes
    >>> from paho.mqtt.reasoncodes import ReasonCode
    >>> taken = aiomqtt.MqttCodeError(ReasonCode(PacketTypes.DISCONNECT, identifier=142))
    >>> try:
    ...     raise aiomqtt.MqttError("Disconnected during message iteration") from taken
    ... except aiomqtt.MqttError as e:
    ...     dropped = e
    >>> lost_reason(dropped, 0.4, None)
    'Disconnected during message iteration: [code:142] Session taken over'
    >>> lost_reason(dropped, 0.4, "cw-1")[-66:]
    "(after 0.4 s connected: does another client use client id 'cw-1'?)"
    >>> lost_reason(aiomqtt.MqttError("[Errno 111] Connection refused"), None, "cw-1")
    '[Errno 111] Connection refused'
    """
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    if client_id is not None and lasted is not None:
        text += (
            f" (after {lasted:.1f} s connected: does another client use client id {client_id!r}?)"
        )
    return text


async def _unless_dropped(client: aiomqtt.Client, request: Awaitable[object]) -> None:
    """Await a request to the broker (a SUBSCRIBE), but give up as soon as the connection
    drops: aiomqtt waits for the answer for its whole timeout (10 s) regardless."""
    task = asyncio.ensure_future(request)
    dropped = client._disconnected
    try:
        await asyncio.wait((task, dropped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
    if task.done() and not task.cancelled():
        task.result()
        return
    raise aiomqtt.MqttError("Disconnected while subscribing") from _drop_reason(client)


def _drop_reason(client: aiomqtt.Client) -> BaseException | None:
    """Why the client's connection dropped, if it did; reading it also tells asyncio it was
    seen. aiomqtt reads it only while iterating messages: a drop during a SUBSCRIBE or while
    the consumer held a mention logged "Future exception was never retrieved" (QA: twice
    after a broker pause)."""
    fut = client._disconnected
    if fut.done() and not fut.cancelled():
        return fut.exception()
    return None


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
