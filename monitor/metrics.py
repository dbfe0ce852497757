"""Prometheus metrics of the kernel pipeline, on a registry that is passed in (no globals).

Names follow Prometheus conventions: `crisiswatch_` prefix, base units, `_total` counters.
Label cardinality is bounded by config: `topic` comes from configured topics, `source`
from configured sources, `channel` from the fixed channel list.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.mentions = Counter(
            "crisiswatch_mentions_total",
            "Mentions accepted into the pipeline (after decode and dedup).",
            ["source", "channel"],
            registry=registry,
        )
        self.matched = Counter(
            "crisiswatch_topic_mentions_total",
            "Mentions matched to a topic.",
            ["topic"],
            registry=registry,
        )
        self.sentiment = Counter(
            "crisiswatch_topic_sentiment_total",
            "Matched mentions by sentiment label.",
            ["topic", "sentiment"],
            registry=registry,
        )
        self.duplicates = Counter(
            "crisiswatch_duplicate_mentions_total",
            "Mentions dropped because (source, id) was already seen.",
            ["source"],
            registry=registry,
        )
        self.late = Counter(
            "crisiswatch_late_mentions_total",
            "Mentions whose event-time bucket had already closed.",
            registry=registry,
        )
        self.bucket_count = Gauge(
            "crisiswatch_series_mentions",
            "Mentions in the last closed bucket of a topic.",
            ["topic"],
            registry=registry,
        )
        self.negative_share = Gauge(
            "crisiswatch_series_negative_ratio",
            "Share of negative mentions in the last closed bucket (0-1).",
            ["topic"],
            registry=registry,
        )
        self.crisis_score = Gauge(
            "crisiswatch_crisis_score",
            "Crisis score of the last closed bucket (0-1).",
            ["topic"],
            registry=registry,
        )
        self.watermark_lag = Gauge(
            "crisiswatch_pipeline_lag_seconds",
            "Clock time minus the event-time watermark.",
            registry=registry,
        )
        self.hub_dropped = Counter(
            "crisiswatch_hub_dropped_messages_total",
            "Hub messages dropped from a full subscriber queue (a wall that fell behind, which"
            " then resyncs from a snapshot; the MQTT publisher).",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "crisiswatch_batch_duration_seconds",
            "Time to enrich and aggregate one batch of mentions.",
            # up to 10 s: an overloaded pipeline (slow host, big batch_size) must show as such
            # on the p99 panel, not as the top bucket's 1 s
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
