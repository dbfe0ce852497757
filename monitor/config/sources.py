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
    """Run the simulator as a source (config/default.yaml does); `speed` applies only then."""
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
    """The first scripted crisis starts this long after the service started."""
    crisis_every_seconds: float = Field(default=600.0, gt=0)
    """Time from the start of one scripted crisis to the next (each on the next brand)."""
    crisis_duration_seconds: float = Field(default=240.0, gt=0)
    """How long a scripted crisis lasts: it ramps up over its first quarter and fades over its
    last."""
    backfill_seconds: float = Field(default=3 * 3600.0, ge=0)
    """History generated at start so baselines and the wall have something to show."""


class BackoffConfig(Section):
    """Reconnect delays, with full jitter: attempt n waits a random time up to
    ``min(max_seconds, initial_seconds x 2^n)``."""

    initial_seconds: float = Field(default=0.5, gt=0)
    """Longest wait before the first reconnect; doubles with each failed attempt and starts
    over once a connection has held for 10 s."""
    max_seconds: float = Field(default=30.0, gt=0)
    """Cap of the wait between two reconnect attempts."""


class MqttPublishConfig(Section):
    """Derived data (series points, crisis scores, incidents, source health) out to MQTT."""

    enabled: bool = False
    """Publish to the broker of `sources.mqtt` (its host, port and credentials), whether or not
    mentions are read from it."""
    topic_prefix: str = Field(default="crisiswatch/out", pattern=_TOPIC_LEVEL)
    """Topics are `<prefix>/<hub topic>/<key>`, and `<prefix>/status` says whether the service
    is online (retained)."""
    qos: Literal[0, 1, 2] = 1
    """QoS of the published messages (`status` is always sent at QoS 1)."""
    client_id: str = Field(default="crisiswatch-publisher", min_length=1, max_length=128)
    """The publisher's own client id (a clean session); keep it apart from `sources.mqtt`'s,
    since the broker allows one connection per id."""
    queue: int = Field(default=10_000, ge=1)
    """Messages held while the broker is slow or down; beyond that the oldest are dropped, so an
    outage never blocks the pipeline."""


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
    """MQTT in: one JSON mention per message, from a persistent session with manual ack."""

    enabled: bool = False
    """Subscribe to `topics` on the broker (publishing is `publish.enabled`)."""
    name: str = Field(default="mqtt", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The source's name in health, metrics and dead letters, and the `source` of mentions that
    give none; unique among enabled sources."""
    host: str = "127.0.0.1"
    """The broker's host name or address (also used by `publish`)."""
    port: int = Field(default=1883, ge=1, le=65535)
    """The broker's port (also used by `publish`)."""
    protocol: Literal["3.1.1", "5"] = "5"
    """MQTT version; `shared_group` and `session_expiry_seconds` need 5."""
    client_id: str = Field(default="crisiswatch", min_length=1, max_length=128)
    """The broker keys the persistent session on this id: keep it stable across restarts (a
    new id loses what the broker queued for the old one)."""
    username: str | None = None
    """User name to log in with; null: none."""
    password_env: str | None = None
    """Variable holding the password; null, or the variable unset: connect without one."""
    topics: list[str] = Field(default=["crisiswatch/in/mentions/#"], min_length=1)
    """Topic filters to subscribe (`+` and `#` only as whole levels, `#` last; checked at
    load)."""
    shared_group: str | None = Field(default=None, pattern=r"^[^/#+]+$")
    """MQTT v5 shared subscription group: topics become `$share/<group>/<filter>`, so several
    replicas split one stream instead of each receiving everything."""
    qos: Literal[1, 2] = 1
    """Subscription QoS. QoS 1 with manual ack (sent once the pipeline took the mention) is
    lossless; input published at QoS 0 stays QoS 0, and beyond 1,000 waiting it is dropped."""
    session_expiry_seconds: int = Field(default=7 * 86400, ge=0)
    """MQTT 5: how long the broker keeps the session, and queues messages for it, while the
    service is away."""
    keepalive_seconds: int = Field(default=30, ge=5)
    """MQTT keepalive: a ping is sent after this much silence; the broker drops a client silent
    for 1.5 x this."""
    max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    """A message larger than this is dead-lettered (`oversize`)."""
    backoff: BackoffConfig = BackoffConfig()
    """Reconnect delays (of `publish` too)."""
    publish: MqttPublishConfig = MqttPublishConfig()
    """Derived data out to the same broker."""

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
    """Serve the endpoint."""
    name: str = Field(default="http", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The endpoint's name in health, metrics and dead letters, and the `source` of mentions
    that give none; unique among enabled sources."""
    token_env: str = "CRISISWATCH_INGEST_TOKEN"
    """Variable holding the bearer token; while it is unset the endpoint answers 503 (and
    /healthz says it refuses everything) rather than run open."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """A larger body is cut off and refused with 413 (read in chunks, never whole)."""
    max_item_bytes: int = Field(default=256 * 1024, ge=256)
    """An item larger than this (a document or NDJSON line as sent, an array item as compact
    JSON) is dead-lettered `oversize`; the others are taken."""
    max_items: int = Field(default=10_000, ge=1)
    """A body with more items is refused whole with 413, as soon as the one past this is read."""
    allowed_sources: list[str] = []
    """Accepted values of a mention's `source` field; empty: any. Others are dead-lettered
    (`unknown_source`)."""


class MetaWebhookConfig(PushEndpoint):
    """Facebook/Instagram webhooks (Graph API): GET handshake and signed POST."""

    enabled: bool = False
    """Serve the webhook."""
    name: str = Field(default="meta", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The endpoint's name in health, metrics and dead letters, and the `source` of its
    mentions; unique among enabled sources."""
    path: str = Field(default="/api/v1/webhooks/meta", pattern=r"^/[A-Za-z0-9_./-]*$")
    """URL path of the webhook (the callback URL given to Meta)."""
    verify_token_env: str = "META_VERIFY_TOKEN"
    """Variable holding the verify token of the GET handshake (unset: the handshake is 503)."""
    app_secret_env: str = "META_APP_SECRET"
    """Variable holding the app secret that signs each POST (`X-Hub-Signature-256`; unset: POST
    is 503)."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """A larger body is answered 413 and logged, not dead-lettered (it is never read, so never
    verified)."""


class JetstreamConfig(PullSource):
    """Bluesky Jetstream (JSON firehose over websockets)."""

    enabled: bool = False
    """Read the Jetstream."""
    name: str = Field(default="bluesky", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The source's name in health, metrics and dead letters, and the `source` of its
    mentions; unique among enabled sources."""
    url: str = Field(default="wss://jetstream2.us-east.bsky.network/subscribe", pattern=r"^wss?://")
    """The relay's subscribe URL."""
    wanted_collections: list[str] = ["app.bsky.feed.post"]
    """Collections asked for (`wantedCollections`); only posts (`app.bsky.feed.post`) become
    mentions, other records are skipped."""
    wanted_dids: list[str] = []
    """Only posts of these accounts (DIDs); empty: every account."""
    rewind_seconds: float = Field(default=3.0, ge=0, le=3600)
    """On reconnect resume this far before the last cursor: the last events before a drop may
    not have reached us; the overlap is removed by dedup."""
    cursor_save_seconds: float = Field(default=5.0, gt=0)
    """How often the cursor is saved (and on shutdown); a restart resumes from it."""
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A larger frame is dead-lettered (`oversize`); one over 8 x this ends the connection and
    is stepped over."""
    backoff: BackoffConfig = BackoffConfig()
    """Reconnect delays."""


class MastodonStreamConfig(Section):
    """One stream of the streaming API to subscribe to."""

    stream: Literal["public", "public:local", "public:remote", "hashtag", "hashtag:local", "list"]
    """The stream's kind: the public timeline (all, local or remote), a hashtag, or a list."""
    tag: str | None = None
    """The hashtag (without `#`) of a `hashtag` or `hashtag:local` stream, which needs one."""
    list: str | None = None
    """The list id of a `list` stream, which needs one."""

    @model_validator(mode="after")
    def _args(self) -> MastodonStreamConfig:
        if self.stream.startswith("hashtag") and not self.tag:
            raise at("tag", f"stream {self.stream!r} needs a tag")
        if self.stream == "list" and not self.list:
            raise at("list", "stream 'list' needs a list id")
        return self


class MastodonConfig(PullSource):
    """Mastodon streaming API (one websocket), with the gap after a drop read back over REST."""

    enabled: bool = False
    """Read the streams."""
    name: str = Field(default="mastodon", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The source's name in health, metrics and dead letters, and the `source` of its
    mentions; unique among enabled sources."""
    url: str = Field(default="wss://mastodon.social/api/v1/streaming", pattern=r"^wss?://")
    """The instance's streaming URL."""
    token_env: str | None = "MASTODON_TOKEN"
    """Variable holding the access token (sent to the REST API too); null, or the variable
    unset: connect without one."""
    streams: list[MastodonStreamConfig] = [MastodonStreamConfig(stream="public")]
    """Streams subscribed on the one connection."""
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A larger frame is dead-lettered (`oversize`); one over 8 x this ends the connection."""
    backoff: BackoffConfig = BackoffConfig()
    """Reconnect delays."""
    backfill_pages: int = Field(default=5, ge=0, le=100)
    """After a reconnect or restart, each stream's REST timeline is read from the newest status
    seen, at most this many pages of 40 (0: no backfill)."""
    rest_url: str | None = Field(default=None, pattern=r"^https?://[^/]+$")
    """The REST API's origin, for the backfill; null: the streaming URL's (`wss://h/...` ->
    `https://h`)."""
    http_timeout_seconds: float = Field(default=20.0, gt=0)
    """Timeout of each backfill request to the REST API."""


class FeedConfig(Section):
    """One feed to poll."""

    url: str = Field(pattern=r"^https?://")
    """The feed's URL (RSS, Atom or RDF)."""
    name: str | None = None
    """Author of items that name none when the feed has no title; null: the feed's URL."""
    interval_seconds: float | None = Field(default=None, gt=0)
    """Time between two polls of this feed; null: `sources.rss.interval_seconds`."""


class RssConfig(PullSource):
    """RSS/Atom feeds, polled with conditional GET."""

    stale_after_seconds: float | None = Field(default=None, gt=0)
    """Time without a good poll (200 or 304) after which the source counts as stale (/healthz
    503, the wall's STALE DATA). None: ``max(sources.stale_floor_seconds, 3 x the longest feed
    interval)``."""
    enabled: bool = False
    """Poll the feeds (then `feeds` needs at least one)."""
    name: str = Field(default="rss", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The source's name in health, metrics and dead letters, and the `source` of its
    mentions; unique among enabled sources."""
    feeds: list[FeedConfig] = []
    """Feeds polled one at a time, each at its own interval."""
    interval_seconds: float = Field(default=300.0, gt=0)
    """Time between two polls of a feed (a feed may set its own)."""
    timeout_seconds: float = Field(default=20.0, gt=0)
    """A poll fails after this long (and is retried with backoff: 5 s doubling up to the
    feed's interval or 60 s, at least what a 429/503's `Retry-After` asks)."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """A feed body larger than this is refused (dead-lettered as `oversize`)."""
    user_agent: str = "crisiswatch/0.1 (+rss poller)"
    """Sent with every poll (some feeds refuse unnamed clients)."""
    remember_items: int = Field(default=5000, ge=10)
    """Item ids remembered per feed (and saved), so an item still in the feed is not emitted
    again."""


class ReplayConfig(PullSource):
    """Replays JSONL (the mention schema) or CSV files in event time."""

    enabled: bool = False
    """Play the files (then `paths` needs at least one)."""
    name: str = Field(default="replay", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """The source's name in health, metrics and dead letters, and the `source` of records that
    give none; unique among enabled sources."""
    paths: list[str] = []
    """Files to play, one after the other: `.csv` files as CSV, any other as JSONL."""
    speed: float | None = Field(default=1.0, gt=0)
    """Event time runs `speed` times faster than wall time; null: as fast as possible."""
    loop: bool = False
    """Start over after the last file, with fresh ids and times moved past the last round;
    without it the played-out source is finished, never stale."""


class SourcesConfig(Section):
    """Where mentions come from (each source is off until `enabled`), and when one is stale."""

    demo: DemoSourceConfig = DemoSourceConfig()
    """The embedded simulator."""
    mqtt: MqttSourceConfig = MqttSourceConfig()
    """MQTT in (mentions) and out (derived data)."""
    http: HttpIngestConfig = HttpIngestConfig()
    """HTTP ingest: mentions POSTed to the service."""
    meta: MetaWebhookConfig = MetaWebhookConfig()
    """Facebook/Instagram/Messenger webhooks."""
    jetstream: JetstreamConfig = JetstreamConfig()
    """Bluesky, through Jetstream."""
    mastodon: MastodonConfig = MastodonConfig()
    """Mastodon's streaming API."""
    rss: RssConfig = RssConfig()
    """RSS/Atom feeds."""
    replay: ReplayConfig = ReplayConfig()
    """Recorded mentions (JSONL or CSV files) played in event time."""
    stale_floor_seconds: float = Field(default=60.0, gt=0)
    """A source silent for longer than ``max(this, 10 x its usual interval)`` (RSS: 3 poll
    intervals without a good poll) is stale, unless it sets `stale_after_seconds`; also the
    grace after which a pull source that is not connected is down. Either makes /healthz 503."""

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
