"""Wiring from config, secrets from the environment only (never in logs), health gauges."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.clock import FakeClock
from monitor.collectors.jetstream import JetstreamSource
from monitor.collectors.mastodon import MastodonSource
from monitor.collectors.mqtt import MqttPublisher, MqttSource
from monitor.collectors.registry import (
    build_ingest,
    build_sources,
    ingest_routes,
    publisher,
    watch_health,
)
from monitor.collectors.replay import ReplaySource
from monitor.collectors.rss import RssSource
from monitor.config import parse_config
from monitor.decode import encode_mention
from monitor.errors import ConfigError
from monitor.model import Author, Mention

from .conftest import make_harness

ENV = {
    "CRISISWATCH_INGEST_TOKEN": "ingest-SECRET-1",
    "META_VERIFY_TOKEN": "verify-SECRET-2",
    "META_APP_SECRET": "app-SECRET-3",
    "MASTODON_TOKEN": "masto-SECRET-4",
    "MQTT_PASSWORD": "mqtt-SECRET-5",
}

YAML_LIKE = {
    "topics": [{"name": "acme", "query": "acme"}],
    "sources": {
        "mqtt": {
            "enabled": True,
            "password_env": "MQTT_PASSWORD",
            "username": "cw",
            "publish": {"enabled": True},
        },
        "http": {"enabled": True},
        "meta": {"enabled": True},
        "jetstream": {"enabled": True},
        "mastodon": {"enabled": True, "streams": [{"stream": "hashtag", "tag": "acme"}]},
        "rss": {"enabled": True, "feeds": [{"url": "https://news.example/rss"}]},
        "replay": {"enabled": True, "paths": ["x.jsonl"], "speed": None},
    },
}


def test_everything_enabled_builds_every_source() -> None:
    cfg = parse_config(YAML_LIKE).sources
    h = make_harness()
    sources = build_sources(cfg, h.ctx, env=ENV)
    assert [type(s) for s in sources] == [
        MqttSource,
        JetstreamSource,
        MastodonSource,
        RssSource,
        ReplaySource,
    ]
    assert [s.name for s in sources] == ["mqtt", "bluesky", "mastodon", "rss", "replay"]
    ingest = build_ingest(cfg, h.ctx, env=ENV)
    assert {(r.method, r.path) for r in ingest.routes if isinstance(r, web.RouteDef)} == {
        ("POST", "/api/v1/mentions"),
        ("GET", "/api/v1/webhooks/meta"),
        ("POST", "/api/v1/webhooks/meta"),
    }
    assert [x.name for x in ingest.health] == ["http", "meta"]
    assert isinstance(publisher(cfg, h.ctx, env=ENV), MqttPublisher)
    assert build_sources(parse_config({"topics": []}).sources, h.ctx, env={}) == []
    assert ingest_routes(parse_config({"topics": []}).sources, h.ctx, env={}) == []


def test_config_errors_name_the_path() -> None:
    with pytest.raises(
        ConfigError, match=r"sources.mastodon.streams\[0\].tag: stream 'hashtag' needs a tag"
    ):
        parse_config({"topics": [], "sources": {"mastodon": {"streams": [{"stream": "hashtag"}]}}})
    with pytest.raises(ConfigError, match=r"sources.replay.name: name 'rss' already used"):
        parse_config(
            {
                "topics": [],
                "sources": {
                    "rss": {"enabled": True, "feeds": [{"url": "https://a.example/"}]},
                    "replay": {"enabled": True, "name": "rss", "paths": ["a"]},
                },
            }
        )
    with pytest.raises(ConfigError, match=r"sources\.mqtt\.tokn: unknown key"):
        parse_config({"topics": [], "sources": {"mqtt": {"tokn": "x"}}})


async def test_secrets_never_reach_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = parse_config(YAML_LIKE).sources
    h = make_harness()
    sources = build_sources(cfg, h.ctx, env=ENV)
    app = web.Application()
    app.add_routes(ingest_routes(cfg, h.ctx, env=ENV))
    async with TestClient(TestServer(app)) as client:
        await client.post(
            "/api/v1/mentions", json={"id": 1}, headers={"Authorization": "Bearer no"}
        )
        await client.post(
            "/api/v1/webhooks/meta", data=b"{}", headers={"X-Hub-Signature-256": "sha256=00"}
        )
        await client.get(
            "/api/v1/webhooks/meta", params={"hub.mode": "subscribe", "hub.verify_token": "x"}
        )
    build_sources(cfg, h.ctx, env={})  # missing secrets are logged by variable name only
    text = caplog.text + repr(cfg) + "".join(repr(vars(s)) for s in sources)
    assert "MASTODON_TOKEN" in caplog.text
    for value in ENV.values():
        assert value not in text


def test_health_gauges_at_scrape_time() -> None:
    clock = FakeClock(1000.0)
    h = make_harness(clock)
    sources = build_sources(parse_config(YAML_LIKE).sources, h.ctx, env=ENV)
    watch_health(h.registry, lambda: [s.health for s in sources], clock, stale_floor=60)
    mqtt = sources[0]
    for i in range(5):
        mqtt.health.seen(990.0 + i, clock.now())
        clock.advance(2)
    assert h.metric("crisiswatch_source_lag_seconds", source="mqtt") == 1010.0 - 994.0
    assert h.metric("crisiswatch_source_stale", source="mqtt") == 0.0
    clock.advance(120)
    assert h.metric("crisiswatch_source_stale", source="mqtt") == 1.0
    assert h.metric("crisiswatch_source_silence_seconds", source="mqtt") == 122.0
    assert h.registry.get_sample_value("crisiswatch_source_lag_seconds", {"source": "rss"}) is None


def test_intake_metrics_per_source() -> None:
    h = make_harness()
    (src,) = build_sources(
        parse_config({"topics": [], "sources": {"mqtt": {"enabled": True}}}).sources, h.ctx
    )
    assert isinstance(src, MqttSource)
    m = Mention(
        id="1",
        source="mqtt",
        channel="x",
        text="t",
        created_at=5.0,
        author=Author(id="a", handle="a"),
    )
    assert src.decode(json.dumps(encode_mention(m)).encode()) == m
    assert src.decode(json.dumps(encode_mention(m)).encode()) is None  # duplicate
    assert src.decode(b"nope") is None
    assert h.metric("crisiswatch_collector_mentions_total", source="mqtt") == 1
    assert h.metric("crisiswatch_collector_duplicates_total", source="mqtt") == 1
    assert (
        h.metric("crisiswatch_collector_dead_letters_total", source="mqtt", reason="malformed_json")
        == 1
    )
    assert h.metric("crisiswatch_collector_last_event_timestamp_seconds", source="mqtt") == 5.0
    assert src.health.dead_letters == 1 and src.health.events == 1


def test_the_documented_example_config_is_valid() -> None:
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).parents[3] / "docs/collectors.md").read_text()
    match = re.search(r"## Example config\n\n```yaml\n(.*?)```", doc, re.S)
    assert match is not None
    data = yaml.safe_load(match.group(1))
    cfg = parse_config({**data, "topics": []}).sources
    assert cfg.mqtt.enabled and cfg.http.enabled and cfg.mqtt.publish.enabled


@pytest.mark.parametrize(("stale_after", "stale_at_an_hour"), [(None, False), (600.0, True)])
def test_a_push_endpoint_is_stale_only_after_its_own_limit(
    stale_after: float | None, stale_at_an_hour: bool
) -> None:
    """One test batch used to make the whole service unhealthy 60 s later (/healthz 503, the
    wall striped STALE DATA): senders push when they have something."""
    clock = FakeClock(1000.0)
    h = make_harness(clock)
    doc = {**YAML_LIKE, "sources": {"http": {"enabled": True, "stale_after_seconds": stale_after}}}
    ingest = build_ingest(parse_config(doc).sources, h.ctx, env=ENV)
    watch_health(h.registry, lambda: ingest.health, clock, stale_floor=60)
    (http,) = ingest.health
    http.seen(999.0, clock.now())
    clock.advance(300)
    assert h.metric("crisiswatch_source_stale", source="http") == 0.0
    clock.advance(3300)
    assert h.metric("crisiswatch_source_stale", source="http") == float(stale_at_an_hour)


@pytest.mark.parametrize(
    ("section", "stale_after", "stale_at"),
    [("mqtt", None, 61.0), ("mqtt", 3600.0, 3601.0), ("rss", 86400.0, 86401.0)],
)
def test_a_pull_source_quiet_by_nature_sets_its_own_limit(
    section: str, stale_after: float | None, stale_at: float
) -> None:
    """A topic or feed that posts a few times a day would otherwise mark the service unhealthy
    a minute after each post (the learned rule's floor)."""
    clock = FakeClock(1000.0)
    h = make_harness(clock)
    extra = {"feeds": [{"url": "http://127.0.0.1:9/feed.xml"}]} if section == "rss" else {}
    doc = {
        **YAML_LIKE,
        "sources": {section: {"enabled": True, "stale_after_seconds": stale_after, **extra}},
    }
    (source,) = build_sources(parse_config(doc).sources, h.ctx, env=ENV)
    watch_health(h.registry, lambda: [source.health], clock, stale_floor=60)
    source.health.seen(999.0, clock.now())
    clock.advance(stale_at - 1.0)
    assert h.metric("crisiswatch_source_stale", source=source.name) == 0.0
    clock.advance(1.0)
    assert h.metric("crisiswatch_source_stale", source=source.name) == 1.0


def test_feeds_polled_less_often_than_the_watermark_allows_are_named() -> None:
    """At the default 300 s interval two thirds of a healthy feed's items counted in no series,
    /healthz 200 and one generic late-mentions line saying anything (QA)."""
    from monitor.collectors.registry import late_share, lateness_warnings
    from monitor.config.sources import FeedConfig, RssConfig, SourcesConfig

    feeds = [
        FeedConfig(url="https://news.example/rss.xml", name="Example News"),
        FeedConfig(url="https://fast.example/rss", interval_seconds=45),
    ]
    cfg = SourcesConfig(rss=RssConfig(enabled=True, feeds=feeds))
    (warning,) = lateness_warnings(cfg, watermark_seconds=60.0, bucket_seconds=60.0)
    for part in (
        "sources.rss.feeds[0] (Example News)",
        "every 300 s",
        "aggregation.watermark_seconds is 60 s",
        "about 70%",
        "interval_seconds",
        "5x the requests",
        "raise aggregation.watermark_seconds to 300",
        "240 s later",
    ):
        assert part in warning
    assert lateness_warnings(cfg, watermark_seconds=300.0) == []
    off = SourcesConfig(rss=RssConfig(enabled=False, feeds=feeds))
    assert lateness_warnings(off, watermark_seconds=60.0) == []
    # the share agrees with counting: an item published each second, read at the next poll
    # (polls every `interval`, at several phases against the buckets), late when read after
    # its bucket's end + watermark
    for interval, watermark, bucket in ((300, 60, 60), (90, 60, 60), (120, 30, 300)):
        late = total = 0
        for phase in range(0, bucket, 7):
            for t in range(6000):
                read = ((t - phase) // interval + 1) * interval + phase
                late += read > (t // bucket + 1) * bucket + watermark
                total += 1
        assert abs(late / total - late_share(interval, watermark, bucket)) < 0.03
