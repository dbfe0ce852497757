"""Config of delivery (owned by alerting/ delivery): receivers, outbox, signed links, API tokens.

Secrets never appear in config: a field ending in ``_env`` names an environment variable that
holds the secret (checked to look like a name when the file is parsed, see
:func:`monitor.config.base.env_name_error`), resolved once at start-up by :func:`secret`
(missing or empty ones, and a ``url_env`` that holds no http(s) URL, are config errors that
name the variable if it looks like a variable name, never its value). :func:`check_secrets`
resolves all of them at once, with the config path of each.

>>> cfg = DeliveryConfig.model_validate({"receivers": [
...     {"name": "pager", "type": "pagerduty", "routing_key_env": "PD_KEY"},
...     {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"}]})
>>> [r.type for r in cfg.receivers], cfg.receiver("am").repeat_seconds
(['pagerduty', 'alertmanager'], 60.0)
>>> secret({"PD_KEY": "k"}, "PD_KEY", "receivers.pager.routing_key_env")
'k'
>>> check_secrets(cfg, {"PD_KEY": ""})
Traceback (most recent call last):
...
monitor.errors.ConfigError: delivery.receivers[0].routing_key_env: ... PD_KEY is empty
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from monitor.config.base import Section, at, env_var
from monitor.errors import ConfigError

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


def secret(env: Mapping[str, str], name: str, path: str, *, url: bool | None = None) -> str:
    """The value of environment variable `name`; a ConfigError naming `path` (and the variable
    when `name` looks like a variable name, see :func:`~monitor.config.base.env_var`; never the
    value) when it is unset or empty, or, for a URL, not an absolute http(s) URL.

    `url` None means: the key at `path` says, i.e. it ends in ``url_env`` (Slack's webhook URL
    is itself a secret, so a typo in it must fail at start-up too, not at the first page).

    >>> secret({"HOOK": "not-a-url"}, "HOOK", "delivery.receivers[2].url_env")
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: delivery.receivers[2].url_env: ... HOOK does not hold ...
    >>> secret({}, "hunter2", "delivery.receivers[1].password_env")
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: delivery.receivers[1].password_env: the variable this key ...
    """
    var = env_var(name)  # "hunter2" in `password_env` passes as a name: shown only if one
    value = env.get(name)
    if value is None:
        raise ConfigError(path, f"{var} is not set")
    if not value.strip():
        raise ConfigError(path, f"{var} is empty")
    if url is None:
        url = path.endswith("url_env")
    if url:
        try:
            _http_url(value)
        except ValueError:
            reason = f"{var} does not hold an absolute http:// or https:// URL"
            raise ConfigError(path, reason) from None
    return value


def _http_url(value: str) -> str:
    """Accept an absolute ``http(s)://host...`` URL; anything else would fail at the first page.

    >>> _http_url("https://events.pagerduty.com/v2/enqueue")
    'https://events.pagerduty.com/v2/enqueue'
    >>> _http_url("cw.example.org")
    Traceback (most recent call last):
    ...
    ValueError: expected an absolute http:// or https:// URL, got 'cw.example.org'
    """
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected an absolute http:// or https:// URL, got {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Receiver(Section):
    name: str = Field(pattern=_NAME)
    """What users, levels and routes call it (`receiver:<name>`)."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """One delivery attempt fails after this long (and is retried by the outbox)."""


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2."""

    type: Literal["pagerduty"]
    """`pagerduty`: events to a PagerDuty service."""
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    """The Events API v2 endpoint."""
    routing_key_env: str
    """Variable holding the service's integration (routing) key; a missing one stops the start."""
    source: str = "crisiswatch"
    """`payload.source` of each trigger: the system PagerDuty shows the alert came from."""
    client_url: HttpUrl | None = None
    """Link PagerDuty shows with the `client` (`crisiswatch`), e.g. the wall's URL; null: none."""


class AlertmanagerReceiver(_Receiver):
    """Alertmanager API v2 (`POST {url}/api/v2/alerts`), re-sent while the incident fires."""

    type: Literal["alertmanager"]
    """`alertmanager`: alerts to a Prometheus Alertmanager."""
    url: HttpUrl
    """Alertmanager's base URL; alerts go to `{url}/api/v2/alerts`."""
    repeat_seconds: float = Field(default=60.0, gt=0)
    """The last trigger or ack is re-sent this often until the resolve; each sets `endsAt` 4 x
    this ahead, so an alert no longer re-sent ends by itself."""
    labels: dict[str, str] = {}
    """Extra labels on every alert (e.g. `{team: social}`), for Alertmanager's own routing."""


class SlackReceiver(_Receiver):
    """Slack incoming webhook. The webhook URL is itself a secret, so it comes from `url_env`."""

    type: Literal["slack"]
    """`slack`: messages to a Slack incoming webhook."""
    url_env: str
    """Variable holding the webhook URL (an http(s) URL; checked at start)."""
    max_samples: int = Field(default=3, ge=0, le=10)
    """Sample posts quoted in a trigger."""


class WebhookReceiver(_Receiver):
    """Generic JSON webhook signed with HMAC-SHA256 in ``X-Crisiswatch-Signature: v1=<hex>``."""

    type: Literal["webhook"]
    """`webhook`: JSON POSTs to any HTTP endpoint."""
    url: HttpUrl
    """Where each notification is POSTed."""
    secret_env: str
    """Variable holding the HMAC-SHA256 key that signs each body (`X-Crisiswatch-Signature`)."""


class EmailReceiver(_Receiver):
    """SMTP email; `to` may be empty when every notification names its recipient address."""

    type: Literal["email"]
    """`email`: mail over SMTP."""
    host: str = "127.0.0.1"
    """The SMTP server."""
    port: int = Field(default=25, ge=1, le=65535)
    """Its port (587 for STARTTLS, 465 for SSL, usually)."""
    sender: str
    """The From address."""
    to: list[str] = []
    """Addresses every mail goes to, besides the paged user's (`contact.email`, or a user name
    that is an address)."""
    starttls: bool = False
    """Upgrade the connection with STARTTLS (not with `ssl`)."""
    ssl: bool = False
    """Connect over TLS from the start (SMTPS; not with `starttls`)."""
    username: str | None = None
    """Log in as this user (only with `password_env` set); null: no login."""
    password_env: str | None = None
    """Variable holding the SMTP password; null: no login."""

    @model_validator(mode="after")
    def _tls(self) -> EmailReceiver:
        if self.ssl and self.starttls:
            raise at("starttls", "choose ssl or starttls, not both")
        return self


class LogReceiver(_Receiver):
    """One line per notification in the service log: the demo's pager, and a way to try
    routes and escalation policies before any real receiver is set up."""

    type: Literal["log"]
    """`log`: a WARNING line per notification on the `crisiswatch.pages` logger."""


ReceiverConfig = Annotated[
    PagerDutyReceiver
    | AlertmanagerReceiver
    | SlackReceiver
    | WebhookReceiver
    | EmailReceiver
    | LogReceiver,
    Field(discriminator="type"),
]


class OutboxConfig(Section):
    """Retry policy: exponential backoff with jitter, until delivered or `expire_seconds`."""

    base_delay_seconds: float = Field(default=2.0, gt=0)
    """Wait before the first retry; each further retry waits about twice as long."""
    max_delay_seconds: float = Field(default=300.0, gt=0)
    """Longest wait between two retries."""
    expire_seconds: float = Field(default=6 * 3600.0, gt=0)
    """A notification not delivered this long after it was queued is given up (logged and
    counted)."""
    poll_seconds: float = Field(default=1.0, gt=0)
    """How often the outbox looks for due rows besides being woken by a new one."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Deliveries in flight at once per receiver (a receiver that hangs holds up only its own)."""
    keep_seconds: float = Field(default=7 * 86400.0, gt=0)
    """Delivered, failed and expired rows are deleted once they are this old."""

    @model_validator(mode="after")
    def _backoff(self) -> OutboxConfig:
        base, cap, expire = self.base_delay_seconds, self.max_delay_seconds, self.expire_seconds
        if base > cap:
            # every retry would wait max_delay_seconds: the exponential part never happens
            raise at("base_delay_seconds", f"{base:g} is above max_delay_seconds ({cap:g})")
        if expire <= base:
            # the first retry is due up to base_delay_seconds after a failure (jitter)
            raise at(
                "expire_seconds",
                f"{expire:g} is not longer than base_delay_seconds ({base:g}): a notification "
                "that fails once could expire before its first retry",
            )
        return self


class LinksConfig(Section):
    """Signed expiring one-click links. Disabled while `secret_env` is unset."""

    base_url: HttpUrl = "http://127.0.0.1:8080"
    """Where responders reach this service: the links in pages start with it."""
    secret_env: str | None = None
    """Variable holding the signing secret (unset: pages carry no links, `/act/…` is 404)."""
    ttl_seconds: float = Field(default=12 * 3600.0, gt=0)
    """A link stops working this long after the page that carried it."""
    snooze_seconds: float = Field(default=3600.0, gt=0)
    """How long a snooze link snoozes."""


class ApiToken(Section):
    """A bearer token for the REST API; the token itself is read from `token_env`."""

    name: str = Field(pattern=_NAME)
    """Who acts with this token: timelines and logs name them, and a silence's author."""
    token_env: str
    """Variable holding the token (only its SHA-256 digest is kept)."""
    roles: list[Literal["responder", "viewer"]] = ["responder"]
    """`viewer`: read incidents, silences and the wall; `responder`: also acknowledge,
    resolve, snooze and silence."""


class ApiConfig(Section):
    """Who may use the REST API and the wall's ACK, and PagerDuty's webhook secret."""

    tokens: list[ApiToken] = []
    """Bearer tokens; once any is set, the wall and the API need one."""
    pagerduty_webhook_secret_env: str | None = None
    """Variable holding the PagerDuty v3 webhook's signing secret (unset: the webhook is 404)."""
    max_snooze_seconds: float = Field(default=7 * 86400.0, gt=0)
    """Longest snooze the API accepts."""


class DeliveryConfig(Section):
    """How notifications leave the service (receivers, outbox) and how people act on them
    (one-click links, the REST API)."""

    receivers: list[ReceiverConfig] = []
    """Where notifications go, each by its `type`; users, levels and routes name them."""
    outbox: OutboxConfig = OutboxConfig()
    """Durable queue and retry policy of every notification."""
    links: LinksConfig = LinksConfig()
    """Signed one-click acknowledge/resolve/snooze links in pages."""
    api: ApiConfig = ApiConfig()
    """Tokens of the REST API and the wall."""

    @model_validator(mode="after")
    def _unique(self) -> DeliveryConfig:
        seen: set[str] = set()
        for i, r in enumerate(self.receivers):
            if r.name in seen:
                raise at(f"receivers[{i}].name", f"duplicate receiver {r.name!r}")
            seen.add(r.name)
        names: set[str] = set()
        for i, t in enumerate(self.api.tokens):
            if t.name in names:
                raise at(f"api.tokens[{i}].name", f"duplicate token name {t.name!r}")
            names.add(t.name)
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)


def secret_refs(config: DeliveryConfig) -> Iterator[tuple[str, str]]:
    """``(config path, variable name)`` of every secret the delivery section names."""
    for i, r in enumerate(config.receivers):
        for key in ("routing_key_env", "url_env", "secret_env", "password_env"):
            name = getattr(r, key, None)
            if name is not None:
                yield f"delivery.receivers[{i}].{key}", name
    if config.links.secret_env is not None:
        yield "delivery.links.secret_env", config.links.secret_env
    for i, t in enumerate(config.api.tokens):
        yield f"delivery.api.tokens[{i}].token_env", t.token_env
    if config.api.pagerduty_webhook_secret_env is not None:
        yield "delivery.api.pagerduty_webhook_secret_env", config.api.pagerduty_webhook_secret_env


def check_secrets(config: DeliveryConfig, env: Mapping[str, str]) -> None:
    """Resolve every secret of the delivery section (as the service does at start-up) and
    raise the first :class:`ConfigError`, named by its config path
    (``delivery.receivers[0].routing_key_env``), never showing a value.

    >>> cfg = DeliveryConfig.model_validate({"receivers": [
    ...     {"name": "slack", "type": "slack", "url_env": "CW_SLACK"}]})
    >>> check_secrets(cfg, {"CW_SLACK": "https://hooks.slack.com/services/T/B/x"})
    >>> check_secrets(cfg, {"CW_SLACK": "hooks.slack.com/services/T/B/x"})
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: delivery.receivers[0].url_env: ... CW_SLACK does not hold ...
    """
    for path, name in secret_refs(config):
        secret(env, name, path)
