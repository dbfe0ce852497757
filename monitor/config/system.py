"""Config sections of the kernel: topics, aggregation, storage, server."""

from __future__ import annotations

from pydantic import Field, field_validator

from monitor.config.base import Section


class TopicConfig(Section):
    """A brand or theme to watch, defined by a boolean query over mentions."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    query: str = Field(min_length=1)
    title: str | None = None
    labels: dict[str, str] = {}

    @field_validator("query")
    @classmethod
    def _parses(cls, v: str) -> str:
        # imported here: the query language is enrichment's; config only asks whether it parses
        from monitor.enrich.query import parse_query
        from monitor.errors import QuerySyntaxError

        try:
            parse_query(v)
        except QuerySyntaxError as exc:
            raise ValueError(str(exc)) from None
        return v


class AggregationConfig(Section):
    bucket_seconds: float = Field(default=60.0, gt=0)
    watermark_seconds: float = Field(default=60.0, ge=0)
    # After a restart no bucket closes until every source, push endpoints too, has delivered
    # once, or for at most this long: a source with a backlog (MQTT session, Jetstream cursor,
    # Mastodon backfill, an HTTP client re-sending what it held) may need a few seconds, and
    # its backlog must not arrive late.
    startup_hold_seconds: float = Field(default=30.0, ge=0)
    # On a first start (nothing saved) event time begins this long before now, or earlier for
    # what the demo backfills and what a replay plays. One archived item from days ago (an
    # RSS feed's first poll) otherwise began it days back: days of empty buckets the service
    # never watched, a detector warm on a zero baseline, and the first live minutes paged.
    # Older mentions count as late. Raise it to import history through HTTP ingest or MQTT.
    first_start_history_seconds: float = Field(default=600.0, ge=0)
    history_buckets: int = Field(default=240, ge=10, le=100_000)
    samples_per_bucket: int = Field(default=5, ge=0, le=100)


class StorageConfig(Section):
    url: str = "sqlite:///var/crisiswatch.db"
    checkpoint_seconds: float = Field(default=30.0, gt=0)
    # PostgreSQL: how long a statement waits for a lost connection to come back before it
    # fails; the service logs the failure and retries the write later (docs/delivery.md)
    retry_seconds: float = Field(default=30.0, ge=0)
    # Newest rejects kept per (source, reason) in the dead-letter store; unset keeps them all
    # (nothing is lost). A bound keeps one flooding publisher from filling the disk.
    dead_letter_keep: int | None = Field(default=None, ge=1)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    client_queue: int = Field(default=256, ge=1)
