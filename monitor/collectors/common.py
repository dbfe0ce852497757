"""What every collector shares: backoff, recent keys, secrets, metrics, the accept/reject shell.

>>> b = Backoff(initial=1.0, maximum=8.0, seed=1)
>>> all(b.next() <= cap for cap in (1, 2, 4, 8, 8))
True
>>> b.reset(); b.attempt
0
"""

from __future__ import annotations

import json
import logging
import random
import weakref
from collections import OrderedDict
from collections.abc import Mapping

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.config.base import UNNAMED_VARIABLE, env_var
from monitor.errors import DecodeError
from monitor.model import Mention
from monitor.outage import Outage

log = logging.getLogger("monitor.collectors")


class Backoff:
    """Jittered exponential backoff ("full jitter"): attempt n waits U(0, min(max, initial·2ⁿ)).

    Full jitter spreads reconnect storms when many clients lose the same broker at once.
    A small floor keeps a hot loop from spinning when the random draw is near zero.

    Why not tenacity's ``wait_random_exponential``: the reconnect loops start over after a
    connection has been up ``STABLE_SECONDS`` (tenacity's attempt count only grows within one
    retry call), sleep on the injected clock, and tests need a per-instance seed (tenacity
    draws from the global ``random``). The delay itself is the two lines below.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        *,
        floor: float = 0.05,
        seed: int | None = None,
    ) -> None:
        self.initial, self.maximum, self.floor = initial, maximum, floor
        self.attempt = 0
        self._rng = random.Random(seed)

    def next(self) -> float:
        cap = min(self.maximum, self.initial * (2.0**self.attempt))
        self.attempt += 1
        return max(self.floor, self._rng.uniform(0.0, cap))

    def reset(self) -> None:
        self.attempt = 0

    def settle(self, up_seconds: float | None) -> None:
        """A connection ended after `up_seconds` (None: it never came up): start over only if
        it had been up ``STABLE_SECONDS``. Reset as soon as it was up, two clients with the
        same MQTT client id took the session from each other ~2 times a second for ever
        (QA: 268 warnings in 70 s).

        >>> b = Backoff(seed=1); _ = b.next(), b.next()
        >>> b.settle(2.0); b.attempt
        2
        >>> b.settle(STABLE_SECONDS); b.attempt
        0
        """
        if up_seconds is not None and up_seconds >= STABLE_SECONDS:
            self.reset()


# The websocket library's own frame limit sits this many times above a collector's
# ``max_frame_bytes``: a frame between the two is dead-lettered (``oversize``) and the stream
# goes on; only a frame above it ends the connection (the library must not buffer without bound).
WS_LIMIT_FACTOR = 8
# A connection counts as healthy, and its reconnect backoff starts over, only after it has been
# up this long: one that delivers a frame and then drops must not reconnect in a hot loop.
STABLE_SECONDS = 10.0


def ws_closed_oversize(exc: BaseException) -> bool:
    """Whether the websocket library ended the connection over a frame above its limit (1009).

    >>> from websockets.exceptions import ConnectionClosedError
    >>> from websockets.frames import Close
    >>> ws_closed_oversize(ConnectionClosedError(None, Close(1009, "over size limit")))
    True
    >>> ws_closed_oversize(ConnectionClosedError(None, None)), ws_closed_oversize(OSError())
    (False, False)
    """
    sent = getattr(exc, "sent", None)
    return sent is not None and sent.code == 1009


class RecentKeys:
    """Bounded memory of recently seen keys (LRU); ``seen(key)`` says whether it is a repeat.

    >>> d = RecentKeys(2)
    >>> [d.seen(k) for k in ("a", "b", "a", "c", "b")]
    [False, False, True, False, False]
    >>> RecentKeys.restore(d.snapshot(), 2).seen("c")
    True
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = max(1, capacity)
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return False

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def recent(self, n: int) -> list[str]:
        """The newest `n` keys, oldest first."""
        keys = list(self._keys)
        return keys[-n:] if n > 0 else []

    def snapshot(self, n: int | None = None) -> bytes:
        return json.dumps(self.recent(len(self._keys) if n is None else n)).encode()

    @classmethod
    def restore(cls, raw: bytes | None, capacity: int = 100_000) -> RecentKeys:
        d = cls(capacity)
        if raw:
            try:
                keys = json.loads(raw)
            except ValueError:
                keys = []  # a corrupt snapshot costs a few duplicates, not the collector
            if isinstance(keys, list):
                for k in keys:
                    if isinstance(k, str):
                        d.seen(k)
        return d


class Secret:
    """A value from the environment that never shows up in repr, str, logs or tracebacks.

    >>> s = Secret("hunter2")
    >>> s, str(s), s.reveal()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str | None) -> Secret | None:
        """The secret in variable `name`, or None when unset/empty (logged by name only, and
        only when `name` looks like a variable name: a short secret pasted into the ``*_env``
        key, ``hunter2``, passes the config's check and must not reach the log)."""
        if not name:
            return None
        value = env.get(name, "")
        if not value:
            var = env_var(name)
            if var == UNNAMED_VARIABLE:
                var = "a variable that a sources *_env key names (not shown: not a usual name)"
            log.warning("%s is not set; the feature that needs it is off", var)
            return None
        return cls(value)


class CollectorMetrics:
    """The collectors' Prometheus series, registered once per (injected) registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.received = Counter(
            "crisiswatch_collector_mentions_total",
            "Mentions accepted from a source (validated, not a duplicate)",
            ["source"],
            registry=r,
        )
        self.duplicates = Counter(
            "crisiswatch_collector_duplicates_total",
            "Mentions dropped by a source's dedup (redelivery, rewind, several streams)",
            ["source"],
            registry=r,
        )
        self.dead_letters = Counter(
            "crisiswatch_collector_dead_letters_total",
            "Inputs that could not become a mention, by reason",
            ["source", "reason"],
            registry=r,
        )
        self.reconnects = Counter(
            "crisiswatch_collector_reconnects_total",
            "Connection attempts after the first one",
            ["source"],
            registry=r,
        )
        self.connected = Gauge(
            "crisiswatch_collector_connected",
            "1 while the source is connected",
            ["source"],
            registry=r,
        )
        self.last_event = Gauge(
            "crisiswatch_collector_last_event_timestamp_seconds",
            "Event time of the newest mention from the source",
            ["source"],
            registry=r,
        )
        self.deletes = Counter(
            "crisiswatch_collector_deletes_total",
            "Delete/retract notices received from a source",
            ["source"],
            registry=r,
        )
        self.gap = Gauge(
            "crisiswatch_collector_stream_gap_seconds",
            "Event-time gap between the resume cursor and the first event after a reconnect",
            ["source"],
            registry=r,
        )
        self.gap_total = Counter(
            "crisiswatch_collector_missed_stream_seconds_total",
            "Sum of event-time gaps after reconnects (stream time possibly missed)",
            ["source"],
            registry=r,
        )
        self.auth_failures = Counter(
            "crisiswatch_collector_auth_failures_total",
            "Requests refused for a bad token or signature",
            ["source", "kind"],
            registry=r,
        )
        self.shed_requests = Counter(
            "crisiswatch_collector_shed_requests_total",
            "Ingest requests refused with 503 while the pipeline was backed up (none of "
            "their items was taken)",
            ["source"],
            registry=r,
        )
        self.dropped = Counter(
            "crisiswatch_collector_dropped_total",
            "Inputs a source took in and threw away unread, for want of room (MQTT: QoS 0 "
            "messages beyond the incoming queue)",
            ["source"],
            registry=r,
        )
        self.sessions_lost = Counter(
            "crisiswatch_collector_sessions_lost_total",
            "Reconnects that found the broker without the persistent session it kept for us "
            "(MQTT: what was published meanwhile is lost)",
            ["source"],
            registry=r,
        )
        self.published = Counter(
            "crisiswatch_mqtt_published_total",
            "Derived messages published to MQTT, by hub topic",
            ["topic"],
            registry=r,
        )


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, CollectorMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics_for(registry: CollectorRegistry) -> CollectorMetrics:
    """One :class:`CollectorMetrics` per registry (a memo keyed by the injected registry, so
    several collectors and the ingest routes can share the same series without clashing)."""
    m = _METRICS.get(registry)
    if m is None:
        m = _METRICS[registry] = CollectorMetrics(registry)
    return m


class Intake:
    """The accept/reject shell a collector funnels everything through.

    Keeps `health`, metrics, dead letters and dedup consistent across all collectors.
    ``accept`` returns False for a duplicate, which the caller then drops.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        ctx: SourceContext,
        *,
        stale_after: float | None = None,
        dedup_capacity: int = 100_000,
    ) -> None:
        self.name = name
        self.ctx = ctx
        self.health = SourceHealth(name=name, kind=kind, stale_after=stale_after)
        self.metrics = metrics_for(ctx.registry)
        self.dedup = RecentKeys(dedup_capacity)
        self._outage = Outage()  # how loud a failed connection attempt is
        self._up_at: float | None = None  # since when the connection has been up

    @staticmethod
    def key(m: Mention) -> str:
        return f"{m.source}\x1f{m.id}"

    def accept(self, m: Mention) -> bool:
        # the collector's own window, then the pipeline's: after a restart only the latter
        # knows what was counted (an HTTP client's re-sent batch was answered "accepted")
        if self.dedup.seen(self.key(m)) or (self.ctx.known is not None and self.ctx.known(m.key)):
            self.metrics.duplicates.labels(self.name).inc()
            return False
        now = self.ctx.clock.now()
        self.health.seen(m.created_at, now)
        self.metrics.received.labels(self.name).inc()
        if self.health.last_event_time is not None:
            self.metrics.last_event.labels(self.name).set(self.health.last_event_time)
        return True

    def reject(self, reason: str, detail: str, payload: bytes) -> None:
        self.health.dead_letters += 1
        self.metrics.dead_letters.labels(self.name, reason).inc()
        self.ctx.dead_letters.reject(self.name, reason, detail, payload)

    def reject_error(self, err: DecodeError, payload: bytes) -> None:
        self.reject(err.reason, err.detail, payload)

    def reject_unexpected(self, exc: Exception, payload: bytes) -> None:
        """A decoder bug met an input: dead-letter it (reason ``decoder_error``) and log it."""
        log.error("%s: decoder failed on an input", self.name, exc_info=exc)
        self.reject("decoder_error", f"{type(exc).__name__}: {str(exc)[:200]}", payload)

    def set_connected(self, up: bool) -> None:
        self.health.connected = up
        self.metrics.connected.labels(self.name).set(1.0 if up else 0.0)

    def link(self, up: bool, error: BaseException | None = None) -> None:
        """A pull source connected, lost its connection or failed to connect (`error`): its
        health keeps since when it is down (``SourceHealth.link``), the gauge follows, and the
        log says the first failure of an outage, then every 10 minutes (a line per attempt was
        ~300 an hour for a broker that stayed down; QA). A connection that drops before it
        has been up ``STABLE_SECONDS`` does not end the outage: a link that flaps is one
        trouble, told once, not once a flap (two MQTT clients with one client id: 268
        warnings in 70 s; QA)."""
        now = self.ctx.clock.now()
        self.health.link(up, now, error)
        self.set_connected(up)
        if up:
            if self._up_at is None:
                self._up_at = now
            return
        lasted = None if self._up_at is None else now - self._up_at
        self._up_at = None
        if lasted is not None and lasted >= STABLE_SECONDS:
            self._outage.recovered()
        if error is None:
            return
        level, why = self._outage.failed(now), self.health.last_error
        n = self._outage.failures
        if n == 1:
            log.log(level, "%s: connection lost: %s", self.name, why)
        elif lasted is not None:
            log.log(
                level,
                "%s: connection lost again after %.1f s (%d in a row lasted less than %.0f s): %s",
                self.name, lasted, n, STABLE_SECONDS, why,
            )  # fmt: skip
        else:
            log.log(level, "%s: still not connected (%d attempts): %s", self.name, n, why)

    def reconnected(self) -> None:
        self.health.reconnects += 1
        self.metrics.reconnects.labels(self.name).inc()

    async def deleted(self, key: tuple[str, str]) -> None:
        """The origin deleted a mention: count it and tell the pipeline if it listens."""
        self.metrics.deletes.labels(self.name).inc()
        if self.ctx.retract is not None:
            await self.ctx.retract(key)


class Checkpoint:
    """Best-effort saving of a collector's resume state (cursor, dedup keys, newest id).

    The state only bookmarks the stream, so a store outage must not stop the stream: a
    failed save is logged and the collector streams on (the cost is a longer replay after a
    restart, removed by dedup). After a failure the next periodic save waits
    ``retry_seconds``, so a store that blocks for its own retry period on every call does
    not stall every message.
    """

    def __init__(
        self, name: str, ctx: SourceContext, *, every: float, retry_seconds: float = 60.0
    ) -> None:
        self.name, self.ctx = name, ctx
        self.every, self.retry_seconds = every, retry_seconds
        self.failures = 0
        self._next = ctx.clock.monotonic() + every

    def due(self) -> bool:
        """Time for a periodic save."""
        return self.ctx.clock.monotonic() >= self._next

    async def save(self, key: str, value: bytes) -> bool:
        """Put ``value`` now; False (logged, never raised) when the store refused it."""
        try:
            await self.ctx.state.put(key, value)
        except Exception as exc:
            self.failures += 1
            self._next = self.ctx.clock.monotonic() + max(self.every, self.retry_seconds)
            log.warning(
                "%s: could not save its resume state, streaming on: %s: %s",
                self.name, type(exc).__name__, str(exc)[:200],
            )  # fmt: skip
            return False
        self._next = self.ctx.clock.monotonic() + self.every
        return True


def payload_bytes(obj: object, limit: int | None = 64 * 1024) -> bytes:
    """A dead-letter payload for an already-decoded value (compact JSON, cut at `limit` bytes;
    ``limit=None`` for its whole size).

    >>> payload_bytes({"a": 1}), payload_bytes(["é" * 9], limit=8)
    (b'{"a":1}', b'["\\xc3\\xa9\\xc3\\xa9\\xc3\\xa9')
    """
    try:
        raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    except (TypeError, ValueError):
        raw = repr(obj).encode("utf-8", "replace")
    return raw[:limit]


async def read_body(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """An HTTP body read to its end, or None as soon as it exceeds ``limit`` bytes.

    Not ``content.read(limit + 1)``: that returns what has arrived so far, so a body that
    comes in several TCP segments would be cut short.
    """
    body = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
