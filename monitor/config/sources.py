"""Config of the collectors (owned by monitor/collectors).

Secrets are never config values: a section names the environment variable that holds them
(``*_env`` keys), so a config file can be committed and logged safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from monitor.config.base import Section, at

_TOPIC_LEVEL = r"^[^#+\x00]+$"


class DemoSourceConfig(Section):
    """The embedded simulator: brands, their daily rhythm and scripted crises."""

    enabled: bool = False
    seed: int = 7
    """Seed of the scenario: the same seed and start give the same mentions."""
    brands: list[str] = ["acme", "globex", "initech"]
    """Brands mentioned; crises rotate through them (topics must match them to see them)."""
    speed: float = Field(default=1.0, gt=0)
    """The service clock's speed while the demo is on (`run --speed` overrides it)."""
    base_rate_per_minute: float = Field(default=40.0, gt=0)
    """Mentions a minute of the first brand before its daily and weekly rhythm (the others get
    0.35-0.8 of it)."""
    first_crisis_after_seconds: float = Field(default=90.0, ge=0)
    crisis_every_seconds: float = Field(default=600.0, gt=0)
    crisis_duration_seconds: float = Field(default=240.0, gt=0)
    backfill_seconds: float = Field(default=3 * 3600.0, ge=0)
    """History generated at start so baselines and the wall have something to show."""


class BackoffConfig(Section):
    initial_seconds: float = Field(default=0.5, gt=0)
    max_seconds: float = Field(default=30.0, gt=0)


class MqttPublishConfig(Section):
    """Derived data (series points, crisis scores, incidents, source health) out to MQTT."""

    enabled: bool = False
    topic_prefix: str = Field(default="crisiswatch/out", pattern=_TOPIC_LEVEL)
    qos: Literal[0, 1, 2] = 1
    client_id: str = Field(default="crisiswatch-publisher", min_length=1, max_length=128)
    queue: int = Field(default=10_000, ge=1)


def topic_filter_error(f: str) -> str | None:
    """Why ``f`` is not a valid MQTT subscription filter, or None.

    >>> [topic_filter_error(f) for f in ("a/+/b", "a/#", "#")]
    [None, None, None]
    >>> topic_filter_error("a/#/b"), topic_filter_error("a+")
    ("'#' must be the whole last level", "'+' must be a whole level")
    """
    if not f:
        return "empty topic filter"
    if "\x00" in f:
        return "NUL in topic filter"
    levels = f.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be the whole last level"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


class PullSource(Section):
    """A source the service reads from: silence is judged against its usual rate."""

    stale_after_seconds: float | None = Field(default=None, gt=0)
    """Silence after which this source counts as stale (/healthz 503, the wall's STALE DATA).
    None: learned, ``max(sources.stale_floor_seconds, 10 x its usual interval)``; set it for a
    topic, hashtag or feed that is quiet by nature."""


class PushEndpoint(Section):
    """An endpoint senders post to when they have something: silence is normal."""

    stale_after_seconds: float | None = Field(default=None, gt=0)
    """Silence after which this endpoint counts as stale (/healthz 503, the wall's STALE DATA).
    None: never (one test batch used to make the service unhealthy 60 s later)."""


class MqttSourceConfig(PullSource):
    enabled: bool = False
    name: str = Field(default="mqtt", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"
    # The broker keys the persistent session on this id: keep it stable across restarts.
    client_id: str = Field(default="crisiswatch", min_length=1, max_length=128)
    username: str | None = None
    password_env: str | None = None
    topics: list[str] = Field(default=["crisiswatch/in/mentions/#"], min_length=1)
    # MQTT v5 shared subscription group: topics become $share/<group>/<filter>, so several
    # replicas split one stream instead of each receiving everything.
    shared_group: str | None = Field(default=None, pattern=r"^[^/#+]+$")
    qos: Literal[1, 2] = 1
    session_expiry_seconds: int = Field(default=7 * 86400, ge=0)
    keepalive_seconds: int = Field(default=30, ge=5)
    max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    backoff: BackoffConfig = BackoffConfig()
    publish: MqttPublishConfig = MqttPublishConfig()

    @model_validator(mode="after")
    def _filters(self) -> MqttSourceConfig:
        # the broker client refuses a bad filter only at subscribe time, and then on every
        # reconnect: a typo would keep the collector crashing instead of failing the config
        for i, topic in enumerate(self.topics):
            if (why := topic_filter_error(topic)) is not None:
                raise at(f"topics[{i}]", f"{why}: {topic!r}")
        return self


class HttpIngestConfig(PushEndpoint):
    """``POST /api/v1/mentions`` (JSON object, array or NDJSON) with a bearer token."""

    enabled: bool = False
    name: str = Field(default="http", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    token_env: str = "CRISISWATCH_INGEST_TOKEN"
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_item_bytes: int = Field(default=256 * 1024, ge=256)
    max_items: int = Field(default=10_000, ge=1)
    # Accepted values of a mention's `source` field; empty = any. Others are dead-lettered.
    allowed_sources: list[str] = []


class MetaWebhookConfig(PushEndpoint):
    """Facebook/Instagram webhooks (Graph API): GET handshake and signed POST."""

    enabled: bool = False
    name: str = Field(default="meta", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    path: str = Field(default="/api/v1/webhooks/meta", pattern=r"^/[A-Za-z0-9_./-]*$")
    verify_token_env: str = "META_VERIFY_TOKEN"
    app_secret_env: str = "META_APP_SECRET"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class JetstreamConfig(PullSource):
    """Bluesky Jetstream (JSON firehose over websockets)."""

    enabled: bool = False
    name: str = Field(default="bluesky", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    url: str = Field(default="wss://jetstream2.us-east.bsky.network/subscribe", pattern=r"^wss?://")
    wanted_collections: list[str] = ["app.bsky.feed.post"]
    wanted_dids: list[str] = []
    """Only posts of these accounts (DIDs); empty: every account."""
    # On reconnect resume a little before the last cursor: the last events before a drop may
    # not have reached us; the overlap is removed by dedup.
    rewind_seconds: float = Field(default=3.0, ge=0, le=3600)
    cursor_save_seconds: float = Field(default=5.0, gt=0)
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    backoff: BackoffConfig = BackoffConfig()


class MastodonStreamConfig(Section):
    stream: Literal["public", "public:local", "public:remote", "hashtag", "hashtag:local", "list"]
    tag: str | None = None
    list: str | None = None

    @model_validator(mode="after")
    def _args(self) -> MastodonStreamConfig:
        if self.stream.startswith("hashtag") and not self.tag:
            raise at("tag", f"stream {self.stream!r} needs a tag")
        if self.stream == "list" and not self.list:
            raise at("list", "stream 'list' needs a list id")
        return self


class MastodonConfig(PullSource):
    enabled: bool = False
    name: str = Field(default="mastodon", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    url: str = Field(default="wss://mastodon.social/api/v1/streaming", pattern=r"^wss?://")
    token_env: str | None = "MASTODON_TOKEN"
    streams: list[MastodonStreamConfig] = [MastodonStreamConfig(stream="public")]
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    backoff: BackoffConfig = BackoffConfig()
    # After a reconnect or restart, each stream's REST timeline is read from the newest
    # status seen, at most this many pages of 40 (0 = no backfill).
    backfill_pages: int = Field(default=5, ge=0, le=100)
    # The REST API's origin; None = the streaming URL's (wss://h/... -> https://h).
    rest_url: str | None = Field(default=None, pattern=r"^https?://[^/]+$")
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    """Timeout of each backfill request to the REST API."""


class FeedConfig(Section):
    url: str = Field(pattern=r"^https?://")
    name: str | None = None
    interval_seconds: float | None = Field(default=None, gt=0)


class RssConfig(PullSource):
    enabled: bool = False
    name: str = Field(default="rss", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    feeds: list[FeedConfig] = []
    interval_seconds: float = Field(default=300.0, gt=0)
    """Time between two polls of a feed (a feed may set its own)."""
    timeout_seconds: float = Field(default=20.0, gt=0)
    """A poll fails after this long (and is retried with backoff, 5 s growing to four
    intervals)."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """A feed body larger than this is refused (dead-lettered as `oversize`)."""
    user_agent: str = "crisiswatch/0.1 (+rss poller)"
    """Sent with every poll (some feeds refuse unnamed clients)."""
    remember_items: int = Field(default=5000, ge=10)


class ReplayConfig(PullSource):
    """Replays JSONL (the mention schema) or CSV files in event time."""

    enabled: bool = False
    name: str = Field(default="replay", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    paths: list[str] = []
    # Event time runs `speed` times faster than wall time; null = as fast as possible.
    speed: float | None = Field(default=1.0, gt=0)
    loop: bool = False


class SourcesConfig(Section):
    demo: DemoSourceConfig = DemoSourceConfig()
    mqtt: MqttSourceConfig = MqttSourceConfig()
    http: HttpIngestConfig = HttpIngestConfig()
    meta: MetaWebhookConfig = MetaWebhookConfig()
    jetstream: JetstreamConfig = JetstreamConfig()
    mastodon: MastodonConfig = MastodonConfig()
    rss: RssConfig = RssConfig()
    replay: ReplayConfig = ReplayConfig()
    # A source silent for longer than max(stale_floor_seconds, 10 x its usual interval) is stale,
    # unless it sets its own `stale_after_seconds` (push endpoints: only then).
    stale_floor_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesConfig:
        seen: dict[str, str] = {}
        for section in ("mqtt", "http", "meta", "jetstream", "mastodon", "rss", "replay"):
            cfg = getattr(self, section)
            if not cfg.enabled:
                continue
            if cfg.name in seen or cfg.name == "demo":
                raise at(f"{section}.name", f"name {cfg.name!r} already used")
            seen[cfg.name] = section
        if self.rss.enabled and not self.rss.feeds:
            raise at("rss.feeds", "rss is enabled but has no feeds")
        if self.replay.enabled and not self.replay.paths:
            raise at("replay.paths", "replay is enabled but has no paths")
        return self


def source_secret_refs(config: SourcesConfig) -> Iterator[tuple[str, str]]:
    """``(config path, variable name)`` of every secret an enabled source names, for a
    pre-flight check (``crisiswatch check-config --secrets``): the service starts without
    them (the feature is off: HTTP ingest answers 503, MQTT connects without a password).

    >>> cfg = SourcesConfig.model_validate({"http": {"enabled": True, "token_env": "CW_IN"}})
    >>> list(source_secret_refs(cfg))
    [('sources.http.token_env', 'CW_IN')]
    """
    for section, cfg in config:
        if not getattr(cfg, "enabled", False):
            continue
        for key, name in cfg:
            if key.endswith("_env") and isinstance(name, str) and name:
                yield f"sources.{section}.{key}", name
