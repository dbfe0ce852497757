"""The pipeline, top to bottom: dedup -> enrich -> aggregate -> (watermark) -> detect -> verdicts.

This module owns the flow, not the algorithms: enrichment, detection and what happens to
verdicts (incidents, escalation) are handed in by the composition root (`monitor.app`) as
objects that satisfy the small protocols below. Live, replay and backtest drive the same
`Pipeline`; only the source and the clock differ.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import Gauge

from detectors._round import round_to
from monitor.aggregate import Aggregator
from monitor.clock import Clock
from monitor.decode import format_time
from monitor.dedup import Dedup
from monitor.hub import Hub
from monitor.metrics import PipelineMetrics
from monitor.model import CHANNELS, Bucket, Enriched, Mention

log = logging.getLogger(__name__)

#: Distinct `source` label values the pipeline's metrics take before counting as "other": a
#: mention's source may come from its payload (HTTP ingest, MQTT), i.e. from any client.
MAX_SOURCE_LABELS = 64

#: At most one log line per this much event time about mentions arriving after their bucket
#: closed: the metric alone left an operator guessing why a replay of history paged nothing.
LATE_LOG_SECONDS = 600.0

#: Closed buckets judged between two turns of the event loop (about 30 ms of detection,
#: points and metrics on a quiet 2-core machine).
ADVANCE_SLICE = 500


class Enrich(Protocol):
    def enrich_batch(self, mentions: Sequence[Mention]) -> list[Enriched]: ...


class VerdictLike(Protocol):
    """What the flow reads from a detection verdict (structural: `detectors.stage.Verdict`)."""

    @property
    def series(self) -> str: ...
    @property
    def t(self) -> float: ...
    @property
    def score(self) -> float: ...
    @property
    def severity(self) -> int | None: ...
    @property
    def onset(self) -> str | None: ...  # "open" | "repage" | None
    @property
    def active(self) -> bool: ...
    @property
    def resolved(self) -> bool: ...
    @property
    def explanation(self) -> Mapping[str, Any]: ...


class Detect(Protocol):
    def observe_many(self, buckets: Sequence[Bucket]) -> Sequence[VerdictLike]: ...

    def pages_from(self, series: str) -> float | None: ...


OnVerdicts = Callable[[Sequence[VerdictLike]], Awaitable[None]]


def series_point(
    bucket: Bucket, verdict: VerdictLike, pages_from: float | None = None
) -> dict[str, Any]:
    """The wall's and the MQTT publisher's view of one closed series bucket; `pages_from` is
    when a series still learning its baseline may first page (None: it may now)."""
    ex = verdict.explanation
    return {
        "topic": bucket.series,
        "t": bucket.start,
        "width": bucket.width,
        "count": bucket.count,
        "negative": bucket.negative,
        "positive": bucket.positive,
        "negative_share": round_to(bucket.negative_share, 4),
        "sentiment": round_to(bucket.sentiment_sum / bucket.count, 4) if bucket.count else 0.0,
        "expected": ex.get("expected"),
        "band": ex.get("band"),
        "score": round_to(verdict.score, 4),
        "severity": verdict.severity,
        "onset": verdict.onset,
        "active": verdict.active,
        "pages_from": pages_from,
    }


class Pipeline:
    def __init__(
        self,
        *,
        enricher: Enrich,
        aggregator: Aggregator,
        detector: Detect,
        on_verdicts: OnVerdicts,
        hub: Hub,
        metrics: PipelineMetrics,
        dedup: Dedup | None = None,
    ) -> None:
        self.enricher, self.aggregator, self.detector = enricher, aggregator, detector
        self.on_verdicts, self.hub, self.metrics = on_verdicts, hub, metrics
        self.dedup = dedup or Dedup()
        self.newest_event_time: float | None = None
        self._handing: asyncio.Future[list[VerdictLike]] | None = None  # verdicts being handed on
        self.processed = 0
        self._source_labels: set[str] = set()
        self._series_gauges: dict[str, tuple[Gauge, Gauge, Gauge]] = {}
        self._late = aggregator.late  # what the metric has been told of
        self._late_since_log = 0
        self._oldest_late = math.inf
        self._late_logged_at = -math.inf  # event time (the aggregator's closed_until)

    def _source_label(self, source: str) -> str:
        if source in self._source_labels:
            return source
        if len(self._source_labels) < MAX_SOURCE_LABELS:
            self._source_labels.add(source)
            return source
        return "other"

    def ingest(self, batch: Sequence[Mention]) -> int:
        """Dedup, enrich and count a batch into open buckets; returns how many were new."""
        with self.metrics.batch_seconds.time():
            fresh = []
            for m in batch:
                if self.dedup.first(m.key):
                    fresh.append(m)
                else:
                    self.metrics.duplicates.labels(self._source_label(m.source)).inc()
            for e in self.enricher.enrich_batch(fresh):
                m = e.mention
                # label values stay a fixed set whatever a source sends (bounded cardinality)
                channel = m.channel if m.channel in CHANNELS else "other"
                self.metrics.mentions.labels(self._source_label(m.source), channel).inc()
                if self.newest_event_time is None or m.created_at > self.newest_event_time:
                    self.newest_event_time = m.created_at
                if not e.topics:
                    continue
                if not self.aggregator.add(e):
                    self._late_since_log += 1
                    self._oldest_late = min(self._oldest_late, m.created_at)
                    continue
                for topic in e.topics:
                    self.metrics.matched.labels(topic).inc()
                    self.metrics.sentiment.labels(topic, e.sentiment.label).inc()
        self.processed += len(fresh)
        self._count_late()
        self._log_late()
        return len(fresh)

    def _log_late(self) -> None:
        closed = self.aggregator.closed_until
        if not self._late_since_log or closed is None:
            return
        if closed - self._late_logged_at < LATE_LOG_SECONDS:
            return
        log.warning(
            "%d topic mentions arrived after their bucket had closed and count in no series"
            " (event time from %s; buckets closed up to %s): a source that far behind, or"
            " history replayed after the first start (docs/collectors.md)",
            self._late_since_log, format_time(self._oldest_late), format_time(closed),
        )  # fmt: skip
        self._late_since_log, self._oldest_late = 0, math.inf
        self._late_logged_at = closed

    def _count_late(self) -> None:
        # the aggregator counts both kinds: mentions for a closed bucket, and those in open
        # buckets dropped beyond its horizon (which the metric used to miss)
        if n := self.aggregator.late - self._late:
            self.metrics.late.inc(n)
            self._late = self.aggregator.late

    async def advance(self, watermark: float) -> list[VerdictLike]:
        """Close buckets up to `watermark`, detect on them, hand verdicts on, publish points."""
        buckets = self.aggregator.advance(watermark)
        self._count_late()
        self._log_late()  # what arrived late since the last line, once its interval is over
        if not buckets:
            # still told: a periodic checkpoint hangs off it, and waiting for a bucket to close
            # stretched `checkpoint_seconds` to the bucket width (5 min buckets: 50 mentions,
            # acknowledged with 200, gone after a kill -9 45 s later; QA, tenth session)
            await self.on_verdicts([])
            return []
        # Judged and handed over to the end even when the ticker is cancelled (a stop): the
        # aggregator has given these buckets up and the final checkpoint saves that, so
        # verdicts cut off here were lost for good (a stop during a burst: 572 of 863 onsets
        # never paged; QA). `settle` waits for it.
        self._handing = asyncio.ensure_future(self._judge(buckets))
        return await asyncio.shield(self._handing)

    async def _judge(self, buckets: Sequence[Bucket]) -> list[VerdictLike]:
        """Detect on closed buckets a slice at a time, publish their points, hand verdicts on.

        The event loop runs between slices: the first advance after importing history
        closes every topic's backlog at once (2,000 topics x 2 h: 240,000 buckets held the
        loop 17 s, /healthz and every wall stood still; QA, thirteenth session).
        """
        verdicts: list[VerdictLike] = []
        for i in range(0, len(buckets), ADVANCE_SLICE):
            if i:
                await asyncio.sleep(0)
            part = buckets[i : i + ADVANCE_SLICE]
            judged = self.detector.observe_many(part)
            for bucket, verdict in zip(part, judged, strict=True):
                count, negative, score = self._gauges(bucket.series)
                count.set(bucket.count)
                negative.set(bucket.negative_share)
                score.set(verdict.score)
                point = series_point(bucket, verdict, self.detector.pages_from(bucket.series))
                self.hub.publish("series", point)
            verdicts += judged
        await self.on_verdicts(verdicts)
        return verdicts

    def _gauges(self, series: str) -> tuple[Gauge, Gauge, Gauge]:
        # a series' children, looked up once: `labels()` took a quarter of a closing bucket's
        # cost (three locked lookups, 10 us each)
        g = self._series_gauges.get(series)
        if g is None:
            m = self.metrics
            g = self._series_gauges[series] = (
                m.bucket_count.labels(series),
                m.negative_share.labels(series),
                m.crisis_score.labels(series),
            )
        return g

    async def settle(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) for verdicts still being handed on by an `advance` the
        ticker's cancellation left running; False if they are not all handed on, and then
        the hand-off is cancelled (left running, it wrote to a closed store and the process
        never exited; QA)."""
        handing = self._handing
        if handing is None or handing.done():
            return True
        log.info("stopping: handing the last verdicts to alerting first")
        done, _ = await asyncio.wait([handing], timeout=timeout)
        if not done:
            handing.cancel()
            await asyncio.wait([handing])
        return bool(done)


async def batches(queue: asyncio.Queue[Mention], max_batch: int) -> AsyncIterator[list[Mention]]:
    """Yield whatever is queued (at least one, at most `max_batch`) as soon as it is there."""
    while True:
        batch = [await queue.get()]
        while len(batch) < max_batch and not queue.empty():
            batch.append(queue.get_nowait())
        yield batch


async def run_ticker(
    pipeline: Pipeline,
    clock: Clock,
    complete_until: Callable[[], float],
    watermark_seconds: float,
    interval: float,
) -> None:
    """Advance the watermark on clock time, so silent buckets close too.

    `complete_until` says up to which event time the input is complete (the clock's now
    for live sources; less while a source is catching up on a backlog or a backfill).
    """
    while True:
        await clock.sleep(interval)
        await pipeline.advance(complete_until() - watermark_seconds)
