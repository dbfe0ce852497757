"""What every collector is: a named async stream of mentions with a health record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from monitor.clock import Clock
from monitor.model import Mention


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
        longer than its fixed ``stale_after``."""
        if self.last_received_at is None:
            return False
        if self.stale_after is not None:
            return now - self.last_received_at > self.stale_after
        usual = self.expected_interval or 0.0
        return now - self.last_received_at > max(floor, 10 * usual)

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
