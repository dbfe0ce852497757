"""The dead-letter sink: bad input is stored with its reason, never raised.

Collectors count rejects per (source, reason) in `crisiswatch_collector_dead_letters_total`;
this sink keeps the evidence: all of it by default (nothing is lost), or, with `keep`
(`storage.dead_letter_keep`), the newest `keep` rejects of every (source, reason), so a flood
of one bad publisher can neither fill the disk nor push out the rare reason.

Rejects wait in one queue that a single writer task empties into the store, so a burst (one
bad batch of 10,000 items) is kept whole. The queue is bounded by bytes (`max_bytes`, 32 MiB:
~500 rejects with a full 64 KiB payload, ~100,000 small ones) against a store that is down or
slow; past that a reject is still counted, its evidence is not kept (`dropped`, counted in
`crisiswatch_dead_letters_dropped_total{why}` and logged). `flush()` (at shutdown) writes what
waits. The log names the first rejects of a source one by one, then sums up the rest at most
once per `log_every` seconds (:class:`RejectLog`): a flood is a few lines, not one per input.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from monitor.clock import Clock
from monitor.storage import Store

log = logging.getLogger(__name__)

MAX_DETAIL, MAX_PAYLOAD = 2000, 65536
# what a queued row costs beside its detail and payload (tuple, str/bytes headers, floats)
_ROW_BYTES = 300


@dataclass(slots=True)
class _Window:
    start: float
    shown: int = 0
    rest: Tally[str] = field(default_factory=Tally)


class RejectLog:
    """Which reject log lines to write: the first `first` rejects of a source one by one, then
    the rest as one summary per source at most every `every` seconds. Pure: time is passed in.

    >>> rl = RejectLog(first=2, every=60.0)
    >>> [rl.note("mqtt", "malformed_json", t) for t in (0.0, 1.0, 2.0, 3.0)]
    [True, True, False, False]
    >>> rl.due(30.0), rl.due(60.0)
    ([], ['mqtt: 2 more rejects in the last 60 s (malformed_json 2)'])
    >>> rl.note("mqtt", "oversize", 70.0), rl.due(100.0), rl.drain(100.0)  # the flood goes on
    (False, [], ['mqtt: 1 more reject in the last 40 s (oversize 1)'])
    >>> rl.note("mqtt", "oversize", 200.0)  # after a quiet interval: one by one again
    True
    """

    def __init__(self, first: int = 5, every: float = 60.0) -> None:
        self.first, self.every = first, every
        self._windows: dict[str, _Window] = {}

    def note(self, source: str, reason: str, now: float) -> bool:
        """Count a reject; True when it is to be logged on its own."""
        w = self._windows.get(source)
        if w is None or (not w.rest and now - w.start >= self.every):
            w = self._windows[source] = _Window(now)
        if w.shown < self.first:
            w.shown += 1
            return True
        w.rest[reason] += 1
        return False

    def next_due(self) -> float | None:
        """When the next summary is due, or None when none is owed."""
        return min((w.start + self.every for w in self._windows.values() if w.rest), default=None)

    def due(self, now: float) -> list[str]:
        """The summaries whose interval has ended; each source's next interval starts now."""
        windows = self._windows.items()
        return [
            self._summary(s, w, now) for s, w in windows if w.rest and now - w.start >= self.every
        ]

    def drain(self, now: float) -> list[str]:
        """Every summary still owed, due or not (at shutdown)."""
        return [self._summary(s, w, now) for s, w in self._windows.items() if w.rest]

    @staticmethod
    def _summary(source: str, w: _Window, now: float) -> str:
        n = sum(w.rest.values())
        reasons = ", ".join(f"{r} {c:,}" for r, c in w.rest.most_common())
        line = f"{source}: {n:,} more reject{'s' * (n != 1)} in the last {now - w.start:.0f} s"
        # the source stays summed up (`shown` is spent) until a whole interval passes quietly
        w.start, w.rest = now, Tally()
        return f"{line} ({reasons})"


def _clean(s: str) -> str:
    # a lone surrogate (from a JSON escape) cannot be stored as UTF-8: the row would be lost
    return s if s.isascii() else s.encode("utf-8", "replace").decode("utf-8")


class DeadLetters:
    """Implements `monitor.collectors.base.DeadLetterSink` on top of the store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        keep: int | None = None,
        prune_every: int = 1000,
        max_bytes: int = 32 * 1024 * 1024,
        registry: CollectorRegistry | None = None,
        log_first: int = 5,
        log_every: float = 60.0,
    ) -> None:
        self._store, self._clock = store, clock
        self._keep, self._prune_every, self._max_bytes = keep, prune_every, max_bytes
        self._queue: deque[tuple[str, str, str, bytes, float]] = deque()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._log = RejectLog(log_first, log_every)
        self._writes = 0
        self._warned: dict[str, float] = {}  # why -> when a lost row was last logged
        self.count = 0
        self.dropped = 0
        # registry None: counted here only (a unit test, a tool)
        self._dropped_total = Counter(
            "crisiswatch_dead_letters_dropped_total",
            "Rejects counted but not kept in the dead-letter store (queue_full: the store "
            "fell behind by more than the queue holds; store_error: the write failed)",
            ["why"],
            registry=registry,
        )
        for why in ("queue_full", "store_error"):  # at 0 from the start: a rate needs a series
            self._dropped_total.labels(why)

    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None:
        self.count += 1
        now = self._clock.now()
        if self._log.note(source, reason, now):
            log.info("dead letter from %s: %s", source, reason)
        for line in self._log.due(now):
            log.info("%s", line)
        if self._reporter is None and self._log.next_due() is not None:
            self._reporter = asyncio.get_running_loop().create_task(self._report())
        detail, payload = _clean(detail[:MAX_DETAIL]), payload[:MAX_PAYLOAD]
        size = _ROW_BYTES + len(detail) + len(payload)
        if self._queued_bytes + size > self._max_bytes:
            self._lost("queue_full", now)
            return
        self._queue.append((source, reason, detail, payload, now))
        self._queued_bytes += size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        # one writer, one row after another: a burst waits here in order, not as 10,000 tasks
        try:
            while self._queue:
                source, reason, detail, payload, at = self._queue.popleft()
                self._queued_bytes -= _ROW_BYTES + len(detail) + len(payload)
                try:
                    await self._store.add_dead_letter(source, reason, detail, payload, at)
                except Exception as exc:
                    self._lost("store_error", self._clock.now(), exc)
                    continue
                # the first write of a run prunes what earlier runs left, then every `prune_every`
                if self._keep is not None and self._writes % self._prune_every == 0:
                    try:
                        await self._store.prune_dead_letters(self._keep)
                    except Exception as exc:
                        log.warning("dead letters not pruned: %s: %s", type(exc).__name__, exc)
                self._writes += 1
        finally:
            self._writer = None

    def _lost(self, why: str, now: float, exc: Exception | None = None) -> None:
        self.dropped += 1
        self._dropped_total.labels(why).inc()
        last = self._warned.get(why)
        if last is not None and now - last < self._log.every:
            return
        self._warned[why] = now
        if exc is not None:
            log.error(
                "dead letter not stored: %s: %s (%d rejects not kept so far)",
                type(exc).__name__, str(exc)[:200], self.dropped,
            )  # fmt: skip
        else:
            log.warning(
                "dead-letter store is behind (%d bytes waiting): %d rejects counted but not kept"
                " so far",
                self._queued_bytes, self.dropped,
            )  # fmt: skip

    async def _report(self) -> None:
        try:
            while (due := self._log.next_due()) is not None:
                await self._clock.sleep(due - self._clock.now())
                for line in self._log.due(self._clock.now()):
                    log.info("%s", line)
        finally:
            if self._reporter is asyncio.current_task():
                self._reporter = None

    async def flush(self) -> None:
        """Write every queued reject (shutdown), and log the summaries still owed."""
        while self._writer is not None:
            await asyncio.shield(self._writer)
        for line in self._log.drain(self._clock.now()):
            log.info("%s", line)
        if self._reporter is not None:
            reporter, self._reporter = self._reporter, None
            reporter.cancel()
