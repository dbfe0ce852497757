"""Composition of the collectors from config: what the integrator wires into the app.

- :func:`build_sources` — the enabled *pull* sources (everything but ``demo``).
- :func:`build_ingest` / :func:`ingest_routes` — the *push* endpoints (HTTP ingest, Meta).
- :func:`publisher` — the MQTT publisher of derived data (run it with the hub).
- :func:`watch_health` — lag / staleness gauges computed at scrape time.
- :func:`lateness_warnings` — polled feeds whose items arrive later than the watermark allows.

Secrets are read here, from the environment variables the config names, and only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.clock import Clock
from monitor.collectors.base import Source, SourceContext, SourceHealth
from monitor.collectors.common import Secret
from monitor.collectors.ingest import MentionIngest
from monitor.collectors.jetstream import JetstreamSource
from monitor.collectors.mastodon import MastodonSource
from monitor.collectors.meta import MetaWebhook
from monitor.collectors.mqtt import MqttPublisher, MqttSource
from monitor.collectors.replay import ReplaySource
from monitor.collectors.rss import RssSource
from monitor.config.sources import SourcesConfig


def late_share(interval: float, watermark: float, bucket: float) -> float:
    """The share of a polled feed's items that arrive after their bucket closed, for items
    published evenly in time: one is read up to `interval` after it was published (uniform),
    and its bucket closes `watermark` after the bucket's end, itself up to `bucket` after it.

    >>> round(late_share(300.0, 60.0, 60.0), 2), late_share(60.0, 60.0, 60.0)
    (0.7, 0.0)
    >>> round(late_share(90.0, 60.0, 60.0), 3)
    0.083
    """
    room = interval - watermark  # how far past the watermark a read can fall
    if room <= 0 or interval <= 0:
        return 0.0
    if room >= bucket:
        return (room - bucket / 2) / interval
    return room * room / (2 * interval * bucket)


def lateness_warnings(
    config: SourcesConfig, watermark_seconds: float, bucket_seconds: float = 60.0
) -> list[str]:
    """One warning per enabled RSS feed polled less often than ``aggregation.watermark_seconds``
    allows: a poll reads items up to an interval old, and those older than the watermark when
    they arrive count in no series (at the defaults, 300 s and 60 s, about 70 % of a healthy
    feed's items; /healthz stays 200; QA). Pure: the caller logs them (``run``) or prints them
    (``check-config``).

    >>> from monitor.config.sources import FeedConfig, RssConfig
    >>> feeds = [FeedConfig(url="https://n.example/rss"),
    ...          FeedConfig(url="https://t.example/a", interval_seconds=30)]
    >>> rss = RssConfig(enabled=True, feeds=feeds)
    >>> [w[:89] for w in lateness_warnings(SourcesConfig(rss=rss), 60.0)]
    ['sources.rss.feeds[0] (https://n.example/rss) is polled every 300 s, aggregation.watermark']
    """
    rss = config.rss
    if not rss.enabled:
        return []
    out = []
    for i, feed in enumerate(rss.feeds):
        interval = feed.interval_seconds or rss.interval_seconds
        if interval <= watermark_seconds:
            continue
        share = late_share(interval, watermark_seconds, bucket_seconds)
        out.append(
            f"sources.rss.feeds[{i}] ({feed.name or feed.url}) is polled every {interval:g} s, "
            f"aggregation.watermark_seconds is {watermark_seconds:g} s: an item is read up to "
            f"{interval:g} s after it was published, and one read after its bucket closed "
            f"counts in no series (only in crisiswatch_late_mentions_total), about "
            f"{share:.0%} of this feed's items. Either poll it every {watermark_seconds:g} s "
            f"or less (interval_seconds; {interval / max(watermark_seconds, 1.0):.0f}x the "
            f"requests, mostly 304 Not Modified) or raise aggregation.watermark_seconds to "
            f"{interval:g} (every series of every source then closes its buckets, and detects "
            f"and pages, {interval - watermark_seconds:g} s later)"
        )
    return out


def build_sources(
    config: SourcesConfig, ctx: SourceContext, *, env: Mapping[str, str] | None = None
) -> list[Source]:
    """Every enabled pull source except ``demo``, in a stable order."""
    env = os.environ if env is None else env
    out: list[Source] = []
    if config.mqtt.enabled:
        password = Secret.from_env(env, config.mqtt.password_env)
        out.append(MqttSource(config.mqtt, ctx, password=password))
    if config.jetstream.enabled:
        out.append(JetstreamSource(config.jetstream, ctx))
    if config.mastodon.enabled:
        token = Secret.from_env(env, config.mastodon.token_env)
        out.append(MastodonSource(config.mastodon, ctx, token=token))
    if config.rss.enabled:
        out.append(RssSource(config.rss, ctx))
    if config.replay.enabled:
        out.append(ReplaySource(config.replay, ctx))
    return out


@dataclass
class Ingest:
    """The push endpoints: their routes, and their health records (for /healthz and the wall)."""

    routes: list[web.RouteDef] = field(default_factory=list)
    health: list[SourceHealth] = field(default_factory=list)


def build_ingest(
    config: SourcesConfig, ctx: SourceContext, *, env: Mapping[str, str] | None = None
) -> Ingest:
    env = os.environ if env is None else env
    out = Ingest()
    if config.http.enabled:
        http = MentionIngest(config.http, ctx, Secret.from_env(env, config.http.token_env))
        out.routes += http.routes()
        out.health.append(http.health)
    if config.meta.enabled:
        meta = MetaWebhook(
            config.meta,
            ctx,
            verify_token=Secret.from_env(env, config.meta.verify_token_env),
            app_secret=Secret.from_env(env, config.meta.app_secret_env),
        )
        out.routes += meta.routes()
        out.health.append(meta.health)
    return out


def ingest_routes(
    config: SourcesConfig, ctx: SourceContext, *, env: Mapping[str, str] | None = None
) -> list[web.RouteDef]:
    """``POST /api/v1/mentions`` and the Meta webhook GET/POST, as configured."""
    return build_ingest(config, ctx, env=env).routes


def publisher(
    config: SourcesConfig, ctx: SourceContext, *, env: Mapping[str, str] | None = None
) -> MqttPublisher | None:
    """The MQTT publisher of derived data, or None if disabled. Run: ``await p.run(hub)``."""
    if not config.mqtt.publish.enabled:
        return None
    env = os.environ if env is None else env
    return MqttPublisher(config.mqtt, ctx, password=Secret.from_env(env, config.mqtt.password_env))


def health_dict(h: SourceHealth, now: float, stale_floor: float = 60.0) -> dict[str, object]:
    """:meth:`SourceHealth.to_dict` with the configured stale floor and the silence.

    >>> h = SourceHealth(name="mqtt", kind="mqtt")
    >>> h.seen(100.0, now=100.0); h.seen(101.0, now=101.0)
    >>> d = health_dict(h, now=400.0, stale_floor=120.0)
    >>> d["stale"], d["silent_seconds"], d["lag_seconds"]
    (True, 299.0, 299.0)
    """
    d = h.to_dict(now, stale_floor)
    d["silent_seconds"] = None if h.last_received_at is None else max(0.0, now - h.last_received_at)
    d["expected_interval"] = h.expected_interval
    return d


class SourceHealthCollector(Collector):
    """Lag, silence and the stale flag per source, computed when Prometheus scrapes."""

    def __init__(
        self, healths: Callable[[], Iterable[SourceHealth]], clock: Clock, stale_floor: float
    ) -> None:
        self._healths, self._clock, self._floor = healths, clock, stale_floor

    def collect(self) -> Iterator[Metric]:
        now = self._clock.now()
        lag = GaugeMetricFamily(
            "crisiswatch_source_lag_seconds",
            "Clock time minus event time of the newest mention",
            labels=["source"],
        )
        silent = GaugeMetricFamily(
            "crisiswatch_source_silence_seconds",
            "Seconds since the source last delivered a mention",
            labels=["source"],
        )
        stale = GaugeMetricFamily(
            "crisiswatch_source_stale",
            "1 when the source is silent for much longer than its usual rate",
            labels=["source"],
        )
        for h in self._healths():
            if (v := h.lag(now)) is not None:
                lag.add_metric([h.name], v)
            if h.last_received_at is not None:
                silent.add_metric([h.name], max(0.0, now - h.last_received_at))
            stale.add_metric([h.name], 1.0 if h.stale(now, self._floor) else 0.0)
        yield lag
        yield silent
        yield stale

    def describe(self) -> list[Metric]:
        return []  # computed on scrape; nothing to check at registration


def watch_health(
    registry: CollectorRegistry,
    healths: Callable[[], Iterable[SourceHealth]],
    clock: Clock,
    stale_floor: float = 60.0,
) -> SourceHealthCollector:
    """Register the scrape-time health gauges for the sources `healths()` returns."""
    c = SourceHealthCollector(healths, clock, stale_floor)
    registry.register(c)
    return c
