"""Config sections of the kernel: topics, aggregation, storage, server."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from monitor.config.base import Section


class TopicConfig(Section):
    """A brand or theme to watch, defined by a boolean query over mentions."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """The topic's id: its series, metrics and incidents (`topic=` in matchers) carry it;
    renamed, a topic starts its history afresh."""
    query: str = Field(min_length=1)
    """Boolean query a mention must match to count for this topic (syntax: docs/queries.md;
    checked at load)."""
    title: str | None = None
    """Display name on the wall and in pages (`ACME Corp`); null: `name`."""
    labels: dict[str, str] = {}
    """Extra labels of the topic's incidents, for route, silence and inhibit matchers (e.g.
    `{team: social}`)."""

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
    """Per-topic event-time buckets and when they close."""

    bucket_seconds: float = Field(default=60.0, gt=0)
    """Width of a bucket: every series counts its mentions per bucket of event time."""
    watermark_seconds: float = Field(default=60.0, ge=0)
    """Allowed lateness: a bucket closes (and is judged) this long after its end; a mention
    arriving later counts in no series, only in `crisiswatch_late_mentions_total`."""
    startup_hold_seconds: float = Field(default=30.0, ge=0)
    """After a restart no bucket closes until every source, push endpoints too, has delivered
    once, or for at most this long.

    A source with a backlog (MQTT session, Jetstream cursor, Mastodon backfill, an HTTP client
    re-sending what it held) may need a few seconds, and its backlog must not arrive late."""
    first_start_history_seconds: float = Field(default=600.0, ge=0)
    """On a first start (nothing saved) event time begins this long before now, or earlier for
    what the demo backfills and what a replay plays; older mentions count as late. Raise it to
    import history through HTTP ingest or MQTT.

    One archived item from days ago (an RSS feed's first poll) otherwise began it days back:
    days of empty buckets the service never watched, a detector warm on a zero baseline, and
    the first live minutes paged."""
    history_buckets: int = Field(default=240, ge=10, le=100_000)
    """Closed buckets per topic the wall's charts show (and a new wall gets in its snapshot)."""
    samples_per_bucket: int = Field(default=5, ge=0, le=100)
    """Posts a bucket keeps as samples for the explanation (the highest-reach ones)."""


class StorageConfig(Section):
    """Where state lives: incidents, outbox, checkpoints, dead letters."""

    url: str = "sqlite:///var/crisiswatch.db"
    """`sqlite:///path` (relative to the working directory) or `postgresql://…`."""
    checkpoint_seconds: float = Field(default=30.0, gt=0)
    """How often detector state, open buckets, the dedup window and the wall's history are
    saved (a restart resumes from the last save)."""
    retry_seconds: float = Field(default=30.0, ge=0)
    """PostgreSQL: how long a statement waits for a lost connection to come back before it
    fails (the service logs the failure and retries the write later), and how long the start
    waits for a database that is not up yet."""
    dead_letter_keep: int | None = Field(default=None, ge=1)
    """Newest rejects kept per (source, reason) in the dead-letter store; unset keeps them all.
    A bound keeps one flooding publisher from filling the disk."""


class ServerConfig(Section):
    """The HTTP server: wall, websocket, metrics, health, REST API."""

    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0` for every interface)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port to listen on; 0 takes any free port (tests)."""
    client_queue: int = Field(default=256, ge=1)
    """Messages queued per wall before it is sent a fresh snapshot instead (a slow screen)."""
    wall_origins: list[str] = []
    """Browser origins (`https://wall.example.com`) whose pages may open the wall's websocket
    besides the host and port it is reached at (a reverse proxy that rewrites Host); a page of
    any other origin is refused, so a cross-site page cannot read the wall."""

    @field_validator("wall_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not re.fullmatch(r"https?://[^/?#\s]+", o)]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port], no path): {bad[0]!r}")
        return v
