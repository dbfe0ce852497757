"""What every collector is: a named async stream of mentions with a health record."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from monitor.clock import Clock
from monitor.model import Mention

#: A resume position (a Jetstream cursor, a Mastodon status id) dated further ahead of the clock
#: than this is a bad value, not the stream's newest: saved, every reconnect would ask for it.
AHEAD_SECONDS = 300.0
#: A polled source (RSS) is stale after this many of its poll intervals without a good poll.
POLL_MISSES = 3


@dataclass(slots=True)
class SourceHealth:
    """Live state of one source, shown on /healthz, in metrics and on the wall."""

    name: str
    kind: str
    connected: bool = False
    last_event_time: float | None = None  # event time of the newest mention
    last_received_at: float | None = None  # clock time it arrived
    events: int = 0
    reconnects: int = 0
    dead_letters: int = 0
    expected_interval: float | None = None  # typical seconds between events, learned
    # a fixed silence limit instead of the learned one (inf: silence is normal, never stale)
    stale_after: float | None = None
    finished: bool = False  # a source that ended by design (a replay played out): not down
    # polled sources (RSS): their longest poll interval, and when a poll last succeeded (200
    # or 304): a sign of life even when it brings nothing new
    poll_interval: float | None = None
    alive_at: float | None = None
    # pull sources: since when it has been trying to connect (its start, or the loss of its
    # connection); None while connected, and for sources with nothing to connect to
    down_since: float | None = None
    down_reconnects: int = 0  # `reconnects` when that outage began
    last_error: str | None = None  # why the last connection attempt or poll failed

    def seen(self, event_time: float, now: float) -> None:
        if self.last_received_at is not None:
            gap = max(0.0, now - self.last_received_at)
            prev = self.expected_interval
            self.expected_interval = gap if prev is None else 0.95 * prev + 0.05 * gap
        self.events += 1
        self.last_received_at = now
        # an item dated ahead (a wrong clock upstream) must not hide the source's real lag
        event_time = min(event_time, now)
        if self.last_event_time is None or event_time > self.last_event_time:
            self.last_event_time = event_time

    def lag(self, now: float) -> float | None:
        return None if self.last_event_time is None else max(0.0, now - self.last_event_time)

    def stale(self, now: float, floor: float = 60.0) -> bool:
        """Silent for much longer than its usual rate (and at least `floor` seconds), or for
        longer than its fixed ``stale_after``. A polled source is silent only when its polls
        fail: for ``POLL_MISSES`` poll intervals (and at least `floor`) without a good poll.

        >>> h = SourceHealth("rss", "rss", poll_interval=300.0)
        >>> h.seen(0.0, now=0.0); h.alive(0.0); h.alive(300.0)
        >>> h.stale(1199.0), h.stale(1201.0)
        (False, True)
        """
        last = self.last_received_at
        if self.poll_interval is not None and self.alive_at is not None:
            last = self.alive_at if last is None else max(last, self.alive_at)
        if last is None:
            return False
        if self.stale_after is not None:
            return now - last > self.stale_after
        if self.poll_interval is not None:
            # a poll's items arrive back to back: the learned interval says nothing here
            return now - last > max(floor, POLL_MISSES * self.poll_interval)
        usual = self.expected_interval or 0.0
        return now - last > max(floor, 10 * usual)

    def memory(self) -> dict[str, float] | None:
        """What the next start needs to judge this source's silence (None: it never delivered).

        >>> h = SourceHealth("mqtt", "mqtt")
        >>> h.memory() is None
        True
        >>> h.seen(0.0, now=0.0); h.seen(5.0, now=5.0); h.memory()
        {'expected_interval': 5.0}
        """
        if self.last_received_at is None:
            return None
        return {"expected_interval": self.expected_interval or 0.0}

    def recall(self, memory: Mapping[str, object], now: float) -> None:
        """Resume from what a previous run kept: a source that delivered before is judged from
        this start, so one that stays silent after a restart goes stale (it looked healthy
        for good: never having delivered meant never stale; QA).

        >>> h = SourceHealth("mqtt", "mqtt")
        >>> h.recall({"expected_interval": 5.0}, now=1000.0)
        >>> h.stale(1059.0), h.stale(1061.0)
        (False, True)
        """
        if self.last_received_at is not None:  # it delivered in this run already
            return
        interval = memory.get("expected_interval")
        if isinstance(interval, int | float) and math.isfinite(interval) and interval > 0:
            self.expected_interval = float(interval)
        self.last_received_at = now

    def alive(self, now: float) -> None:
        """A poll succeeded (a polled source), whether or not it brought anything new."""
        self.alive_at = now

    def link(self, up: bool, now: float, error: BaseException | None = None) -> None:
        """A pull source connected, or lost its connection, or failed to connect (`error`).

        Its outage counts from the first failure after it was up, or from its start:

        >>> h = SourceHealth("bluesky", "jetstream")
        >>> h.link(False, now=0.0); h.reconnects = 11
        >>> h.link(False, 20.0, ConnectionRefusedError(111, "Connect call failed"))
        >>> h.down_for(25.0), h.down(25.0, grace=60.0), h.down(61.0, grace=60.0)
        (25.0, False, True)
        >>> h.link(True, now=70.0); h.down_for(80.0) is None
        True
        """
        if up:
            self.down_since = None
        elif self.down_since is None:
            self.down_since, self.down_reconnects = now, self.reconnects
        if error is not None:
            self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
        self.connected = up

    def down_for(self, now: float) -> float | None:
        """How long a pull source has been trying to connect; None when connected, finished
        (a replay played out) or not a source that connects (push endpoints, the demo)."""
        if self.connected or self.finished or self.down_since is None:
            return None
        return max(0.0, now - self.down_since)

    def down(self, now: float, grace: float = 60.0) -> bool:
        """Not connected for longer than `grace`: a wrong host or token, a broker down."""
        d = self.down_for(now)
        return d is not None and d > grace

    def to_dict(self, now: float, stale_floor: float = 60.0) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "connected": self.connected,
            "last_event_time": self.last_event_time,
            "lag_seconds": self.lag(now),
            "events": self.events,
            "reconnects": self.reconnects,
            "dead_letters": self.dead_letters,
            "stale": self.stale(now, stale_floor),
            "finished": self.finished,
            # not connected for longer than the stale floor (pull sources): /healthz says why
            "down": self.down(now, stale_floor),
            "down_seconds": self.down_for(now),
            "outage_reconnects": (
                self.reconnects - self.down_reconnects if self.down_since is not None else 0
            ),
            "last_error": self.last_error,
        }


class Source(Protocol):
    """A collector. `stream()` runs until cancelled; bad input goes to the dead-letter sink."""

    name: str
    health: SourceHealth

    def stream(self) -> AsyncIterator[Mention]: ...


class DeadLetterSink(Protocol):
    """Where bad input goes: kept with its reason and counted per (source, reason)."""

    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None: ...


class KeyValue(Protocol):
    """Small persistent state a collector keeps across restarts (cursors, ETags)."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


@dataclass(slots=True)
class SourceContext:
    """What the composition root hands every collector.

    `submit` is for push-based inputs (HTTP ingest, webhooks): it feeds a mention into the
    same pipeline the pull-based sources' `stream()` feeds.
    """

    clock: Clock
    dead_letters: DeadLetterSink
    state: KeyValue
    registry: CollectorRegistry
    submit: Callable[[Mention], Awaitable[None]]
    # Optional: told when a source says a mention was deleted at the origin (Jetstream,
    # Mastodon, Meta "remove"); receives the mention's key. None = deletes are only counted.
    retract: Callable[[tuple[str, str]], Awaitable[None]] | None = None
    # Optional: has the pipeline counted this key already (its dedup window, which survives a
    # restart)? Then the collector reports the mention as a duplicate instead of "accepted".
    known: Callable[[tuple[str, str]], bool] | None = None
