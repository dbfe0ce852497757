from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from monitor.aggregate import Aggregator
from monitor.hub import Hub
from monitor.metrics import PipelineMetrics
from monitor.model import Author, Bucket, Enriched, Mention, Sentiment
from monitor.pipeline import (
    ADVANCE_SLICE,
    LATE_LOG_SECONDS,
    MAX_SOURCE_LABELS,
    Pipeline,
    VerdictLike,
)


class NoTopics:
    def enrich_batch(self, mentions: Sequence[Mention]) -> list[Enriched]:
        return [Enriched(m, (), "en", Sentiment("neutral", 0.0)) for m in mentions]


class NoDetection:
    def pages_from(self, series: str) -> float | None:
        return None

    def observe_many(self, buckets: Sequence[Bucket]) -> Sequence[VerdictLike]:
        return []


async def ignore(verdicts: Sequence[VerdictLike]) -> None:
    return None


def test_a_source_named_by_the_payload_cannot_grow_the_metrics_without_bound() -> None:
    registry = CollectorRegistry()
    pipeline = Pipeline(
        enricher=NoTopics(),
        aggregator=Aggregator(["acme"]),
        detector=NoDetection(),
        on_verdicts=ignore,
        hub=Hub(),
        metrics=PipelineMetrics(registry),
    )
    batch = [Mention(str(i), f"client-{i}", "x", "hi", 1.0, Author("a", "@a")) for i in range(1000)]
    assert pipeline.ingest(batch + batch[:10]) == 1000
    (mentions,) = [m for m in registry.collect() if m.name == "crisiswatch_mentions"]
    totals = [s for s in mentions.samples if s.name.endswith("_total")]
    assert len(totals) == MAX_SOURCE_LABELS + 1
    by_source = {s.labels["source"]: s.value for s in totals}
    assert by_source["client-0"] == 1 and by_source["other"] == 1000 - MAX_SOURCE_LABELS
    (dups,) = [m for m in registry.collect() if m.name == "crisiswatch_duplicate_mentions"]
    assert sum(s.value for s in dups.samples if s.name.endswith("_total")) == 10


class Calm:
    def pages_from(self, series: str) -> float | None:
        return None

    def observe_many(self, buckets: Sequence[Bucket]) -> Sequence[VerdictLike]:
        return [
            SimpleNamespace(
                series=b.series,
                t=b.start,
                score=0.0,
                severity=None,
                onset=None,
                active=False,
                resolved=False,
                explanation={},
            )
            for b in buckets
        ]


class Acme:
    def enrich_batch(self, mentions: Sequence[Mention]) -> list[Enriched]:
        return [Enriched(m, ("acme",), "en", Sentiment("neutral", 0.0)) for m in mentions]


def acme_pipeline(registry: CollectorRegistry, horizon_seconds: float) -> Pipeline:
    """Every mention about acme, 1-minute buckets, no detection."""
    return Pipeline(
        enricher=Acme(),
        aggregator=Aggregator(["acme"], bucket_seconds=60, horizon_seconds=horizon_seconds),
        detector=Calm(),
        on_verdicts=ignore,
        hub=Hub(),
        metrics=PipelineMetrics(registry),
    )


async def test_mentions_in_buckets_dropped_beyond_the_horizon_count_as_late() -> None:
    """A watermark that jumps more than the horizon (a restart after a long outage) drops the
    open buckets it passes: the log said so, the late counter stayed at 0 (QA, tenth session)."""
    registry = CollectorRegistry()
    pipeline = acme_pipeline(registry, horizon_seconds=3600)

    def late() -> float | None:
        return registry.get_sample_value("crisiswatch_late_mentions_total")

    await pipeline.advance(600.0)
    pipeline.ingest(
        [Mention(str(i), "demo", "x", "acme", 605.0, Author("a", "@a")) for i in range(3)]
    )
    pipeline.ingest([Mention("old", "demo", "x", "acme", 30.0, Author("a", "@a"))])
    assert late() == 1  # its bucket had closed
    await pipeline.advance(600.0 + 86400.0)
    assert late() == 4  # the three in the bucket the jump dropped


async def test_late_mentions_are_logged_once_per_interval_with_their_event_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """History replayed after the first start arrives late and counts nowhere: the metric alone
    left an operator guessing why a replay paged nothing (eleventh session's left-alone list)."""
    pipeline = acme_pipeline(CollectorRegistry(), horizon_seconds=86400)

    def old(i: int, t: float) -> Mention:
        return Mention(f"old-{t}-{i}", "replay", "x", "acme", t, Author("a", "@a"))

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "arrived after" in r.getMessage()]

    await pipeline.advance(7200.0)
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        pipeline.ingest([old(i, 60.0 + i) for i in range(3)])
        pipeline.ingest([old(i, 30.0) for i in range(2)])  # within the interval: held back
        await pipeline.advance(7200.0 + LATE_LOG_SECONDS - 60)
        assert len(lines()) == 1
        await pipeline.advance(7200.0 + LATE_LOG_SECONDS)  # the interval is over: told
        await pipeline.advance(7200.0 + 3 * LATE_LOG_SECONDS)  # nothing new: silent
    assert lines() == [
        "3 topic mentions arrived after their bucket had closed and count in no series (event"
        " time from 1970-01-01T00:01:00.000Z; buckets closed up to 1970-01-01T02:00:00.000Z):"
        " a source that far behind, or history replayed after the first start"
        " (docs/collectors.md)",
        "2 topic mentions arrived after their bucket had closed and count in no series (event"
        " time from 1970-01-01T00:00:30.000Z; buckets closed up to 1970-01-01T02:10:00.000Z):"
        " a source that far behind, or history replayed after the first start"
        " (docs/collectors.md)",
    ]


async def test_verdicts_being_handed_on_when_the_ticker_is_cancelled_are_handed_on_all() -> None:
    """A stop cancelled the ticker in the middle of handing a burst's verdicts to alerting;
    the final checkpoint then saved detectors past onsets that never paged (QA, thirteenth
    session: 572 of 863)."""
    gate, handed = asyncio.Event(), []

    async def slow(verdicts: Sequence[VerdictLike]) -> None:
        for v in verdicts:
            await gate.wait()  # an outbox write per page
            handed.append(v.series)

    pipeline = acme_pipeline(CollectorRegistry(), horizon_seconds=3600)
    pipeline.on_verdicts = slow
    pipeline.ingest(
        [Mention(str(i), "s", "x", "acme", 60.0 * i, Author("a", "@a")) for i in range(5)]
    )
    ticker = asyncio.create_task(pipeline.advance(300.0))
    await asyncio.sleep(0.01)
    ticker.cancel()  # the stop
    with pytest.raises(asyncio.CancelledError):
        await ticker
    gate.set()
    assert await pipeline.settle(timeout=5)
    assert handed == ["acme"] * 5  # the buckets of 0 to 240 s closed


async def test_a_hand_off_that_does_not_end_in_time_is_cancelled_not_left_running() -> None:
    """Left running past the stop's wait, it wrote to the closed store and the process never
    exited (QA, thirteenth session)."""
    never = asyncio.Event()

    async def stuck(verdicts: Sequence[VerdictLike]) -> None:
        await never.wait()

    pipeline = acme_pipeline(CollectorRegistry(), horizon_seconds=3600)
    pipeline.on_verdicts = stuck
    pipeline.ingest([Mention("1", "s", "x", "acme", 0.0, Author("a", "@a"))])
    ticker = asyncio.create_task(pipeline.advance(300.0))
    await asyncio.sleep(0.01)
    ticker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ticker
    assert not await pipeline.settle(timeout=0.05)
    assert pipeline._handing is not None and pipeline._handing.cancelled()


async def test_a_backlog_closed_at_once_is_judged_in_slices_the_loop_runs_between() -> None:
    """The first advance after importing 2 h of history for 2,000 topics held the event loop
    17 s: /healthz and every wall stood still (QA, thirteenth session)."""
    n = 3 * ADVANCE_SLICE + 1
    pipeline = acme_pipeline(CollectorRegistry(), horizon_seconds=60.0 * (n + 1))
    pipeline.ingest(
        [Mention(str(i), "s", "x", "acme", 60.0 * i, Author("a", "@a")) for i in range(n)]
    )
    slices: list[int] = []
    seen_by_others: list[int] = []
    observe = pipeline.detector.observe_many

    def counting(buckets: Sequence[Bucket]) -> Sequence[VerdictLike]:
        slices.append(len(buckets))
        return observe(buckets)

    async def other_task() -> None:
        while True:
            seen_by_others.append(len(slices))
            await asyncio.sleep(0)

    pipeline.detector.observe_many = counting  # type: ignore[method-assign]
    other = asyncio.create_task(other_task())
    verdicts = await pipeline.advance(60.0 * n)
    other.cancel()
    assert [v.t for v in verdicts] == [60.0 * i for i in range(n)]
    assert slices == [ADVANCE_SLICE] * 3 + [1]
    assert {1, 2, 3} <= set(seen_by_others)  # it ran between the slices


async def test_a_stop_in_the_middle_of_a_backlog_still_judges_and_hands_on_all_of_it() -> None:
    """The aggregator has given the buckets up: cut off between slices, the rest were never
    learned and their onsets never paged."""
    n = 2 * ADVANCE_SLICE
    handed: list[VerdictLike] = []

    async def keep(verdicts: Sequence[VerdictLike]) -> None:
        handed.extend(verdicts)

    pipeline = acme_pipeline(CollectorRegistry(), horizon_seconds=60.0 * (n + 1))
    pipeline.on_verdicts = keep
    pipeline.ingest(
        [Mention(str(i), "s", "x", "acme", 60.0 * i, Author("a", "@a")) for i in range(n)]
    )
    ticker = asyncio.create_task(pipeline.advance(60.0 * n))
    await asyncio.sleep(0)  # the first slice is judged, the ticker waits at the loop's turn
    ticker.cancel()  # the stop
    with pytest.raises(asyncio.CancelledError):
        await ticker
    assert await pipeline.settle(timeout=5)
    assert len(handed) == n
