from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from monitor.aggregate import Aggregator
from monitor.hub import Hub
from monitor.metrics import PipelineMetrics
from monitor.model import Author, Bucket, Enriched, Mention, Sentiment
from monitor.pipeline import MAX_SOURCE_LABELS, Pipeline, VerdictLike


class NoTopics:
    def enrich_batch(self, mentions: Sequence[Mention]) -> list[Enriched]:
        return [Enriched(m, (), "en", Sentiment("neutral", 0.0)) for m in mentions]


class NoDetection:
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
