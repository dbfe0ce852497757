"""The dead-letter sink: bad input is stored with its reason, never raised.

Collectors count rejects per (source, reason) in `crisiswatch_collector_dead_letters_total`;
this sink keeps the evidence: all of it by default (nothing is lost), or, with `keep`
(`storage.dead_letter_keep`), the newest `keep` rejects of every (source, reason), so a flood
of one bad publisher can neither fill the disk nor push out the rare reason.

Rejects wait in one queue that a single writer task empties into the store, up to `BATCH` rows
a transaction, so a burst (one bad batch of 10,000 items) is kept whole. The queue is bounded
by bytes (`max_bytes`, 32 MiB, the batch being written included: ~500 rejects with a full
64 KiB payload, ~76,000 small ones of ~140 bytes of detail and payload) against a store that is
down or slow; past that a reject is still counted, its evidence is not kept (`dropped`, counted
in `crisiswatch_dead_letters_dropped_total{why}` and logged). A batch the store refuses is
dropped (`why="store_error"`) and the writer pauses (`PAUSE`, doubling up to `MAX_PAUSE` while
the store keeps failing) while new rejects queue. `flush(timeout)` (at shutdown) writes what
waits until the deadline and counts the rest as dropped (`why="shutdown"`). The log names the
first rejects of a source one by one, then sums up the rest at most once per `log_every`
seconds (:class:`RejectLog`): a flood is a few lines, not one per input.
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
#: rows per store call (one transaction), and bytes: a transaction holds the store's lock
BATCH, BATCH_BYTES = 500, 1024 * 1024
#: the pause after a failed write, doubled while writes keep failing (seconds, on the clock)
PAUSE, MAX_PAUSE = 5.0, 60.0
# how long `flush` waits for a writer it cancelled at the deadline to let go of the store
_UNWIND = 2.0

_Row = tuple[str, str, str, bytes, float]


def _size(row: _Row) -> int:
    return _ROW_BYTES + len(row[2]) + len(row[3])


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
        self._queue: deque[_Row] = deque()
        self._batch: list[_Row] = []  # taken from the queue, being written
        self._queued_bytes = 0  # queue and batch
        self._writer: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._log = RejectLog(log_first, log_every)
        self._writes = 0  # rows stored
        self._pruned_at: int | None = None  # `_writes` at the last prune; None: not this run
        self._pause = 0.0  # after a failed write; 0 while writes succeed
        self._resume_at = 0.0  # clock.monotonic() before which no write is tried
        self._pausing = False  # the writer waits out a pause
        self._flushing = False
        self._stopping = False  # flush's deadline: the writer takes no further batch
        self._warned: dict[str, float] = {}  # why -> when a lost row was last logged
        self.count = 0
        self.dropped = 0
        # registry None: counted here only (a unit test, a tool)
        self._dropped_total = Counter(
            "crisiswatch_dead_letters_dropped_total",
            "Rejects counted but not kept in the dead-letter store (queue_full: the store "
            "fell behind by more than the queue holds; store_error: the write failed; "
            "shutdown: still queued when the stop's deadline came)",
            ["why"],
            registry=registry,
        )
        for why in ("queue_full", "store_error", "shutdown"):  # at 0: a rate needs a series
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
        row = (source, reason, _clean(detail[:MAX_DETAIL]), payload[:MAX_PAYLOAD], now)
        size = _size(row)
        if self._queued_bytes + size > self._max_bytes:
            self._lost("queue_full", now)
            return
        self._queue.append(row)
        self._queued_bytes += size
        if self._writer is None and not self._flushing:  # flush counts what comes meanwhile
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        # one writer, a batch after another: a burst waits here in order, not as 10,000 tasks
        try:
            while self._queue and not self._stopping:
                wait = self._resume_at - self._clock.monotonic()
                if wait > 0 and not self._flushing:  # the store failed: let it be a while
                    self._pausing = True
                    try:
                        await self._clock.sleep(wait)
                    finally:
                        self._pausing = False
                    continue
                # rows and bytes: 500 rows of 64 KiB would hold the store's lock for 32 MiB
                batch, size = self._batch, 0
                while self._queue and len(batch) < BATCH and size < BATCH_BYTES:
                    batch.append(self._queue.popleft())
                    size += _size(batch[-1])
                n = len(batch)
                try:
                    await self._store.add_dead_letters(batch)
                except Exception as exc:
                    failed: Exception | None = exc
                else:
                    failed = None
                # (cancelled by `flush` at its deadline, the batch stays for it to count)
                self._batch = []
                self._queued_bytes -= sum(map(_size, batch))
                if failed is not None:
                    self._pause = min(max(PAUSE, 2.0 * self._pause), MAX_PAUSE)
                    self._resume_at = self._clock.monotonic() + self._pause
                    self._lost("store_error", self._clock.now(), failed, n)
                    if self._flushing:  # no time to wait for it: the rest is `shutdown`'s
                        return
                    continue
                self._pause, self._writes = 0.0, self._writes + n
                # the first write of a run prunes what earlier runs left, then every `prune_every`
                if self._keep is not None and (
                    self._pruned_at is None or self._writes - self._pruned_at >= self._prune_every
                ):
                    self._pruned_at = self._writes
                    try:
                        await self._store.prune_dead_letters(self._keep)
                    except Exception as exc:
                        log.warning("dead letters not pruned: %s: %s", type(exc).__name__, exc)
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    def _lost(self, why: str, now: float, exc: Exception | None = None, n: int = 1) -> None:
        self.dropped += n
        self._dropped_total.labels(why).inc(n)
        last = self._warned.get(why)
        if last is not None and now - last < self._log.every:
            return
        self._warned[why] = now
        if exc is not None:
            log.error(
                "dead letter not stored: %s: %s (%d rejects not kept so far; next write in"
                " %.0f s at the earliest)",
                type(exc).__name__, str(exc)[:200], self.dropped, self._pause,
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

    async def _stop_writer(self) -> None:
        """Cancel the writer and wait (at most `_UNWIND`) until it is gone: a writer started
        meanwhile would share the batch's books."""
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.wait({writer}, timeout=_UNWIND)
        self._writer = None

    async def flush(self, timeout: float = 10.0) -> None:
        """Write the queued rejects (shutdown) for at most `timeout` seconds (wall time): a
        pause after a failed write is cut short, and one more failure or the deadline ends it.
        What is still queued then is counted as dropped (`why="shutdown"`) with one warning;
        the batch in flight gets `_UNWIND` more to end on its own (a cancelled commit may still
        land, and its rows would be counted as lost though stored) and is only cancelled and
        counted when it does not: at most `timeout` + 2 x `_UNWIND` in all. Then log the
        summaries still owed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._flushing = True
        try:
            if self._pausing:  # try once more now, not after the pause (no batch in flight)
                await self._stop_writer()
            if self._queue and self._writer is None:
                self._writer = loop.create_task(self._write())
            if (writer := self._writer) is not None:
                await asyncio.wait({writer}, timeout=max(0.0, deadline - loop.time()))
                self._stopping = True  # no batch after the one in flight, which may end
                await asyncio.wait({writer}, timeout=_UNWIND)
                await self._stop_writer()  # a store that hangs: cancelled, its batch counted
        finally:
            self._flushing = self._stopping = False
        if n := len(self._queue) + len(self._batch):
            self._queue.clear()
            self._batch, self._queued_bytes = [], 0
            self.dropped += n
            self._dropped_total.labels("shutdown").inc(n)
            log.warning(
                "%d dead letters not stored at shutdown (the store failed or was slower than"
                " %g s); counted in crisiswatch_dead_letters_dropped_total{why=\"shutdown\"}",
                n, timeout,
            )  # fmt: skip
        for line in self._log.drain(self._clock.now()):
            log.info("%s", line)
        if self._reporter is not None:
            reporter, self._reporter = self._reporter, None
            reporter.cancel()
