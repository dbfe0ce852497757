"""Config of delivery (owned by alerting/ delivery): receivers, outbox, signed links, API tokens.

Secrets never appear in config: a field ending in ``_env`` names an environment variable that
holds the secret, resolved once at start-up by :func:`secret` (missing ones are config errors
that name the variable, never its value).

>>> cfg = DeliveryConfig.model_validate({"receivers": [
...     {"name": "pager", "type": "pagerduty", "routing_key_env": "PD_KEY"},
...     {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"}]})
>>> [r.type for r in cfg.receivers], cfg.receiver("am").repeat_seconds
(['pagerduty', 'alertmanager'], 60.0)
>>> secret({"PD_KEY": "k"}, "PD_KEY", "receivers.pager.routing_key_env")
'k'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from monitor.config.base import Section, at
from monitor.errors import ConfigError

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"


def secret(env: Mapping[str, str], name: str, path: str) -> str:
    """The value of environment variable `name`; a ConfigError naming `path` when unset."""
    value = env.get(name)
    if not value:
        raise ConfigError(path, f"environment variable {name} is not set")
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
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2."""

    type: Literal["pagerduty"]
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str = Field(pattern=_ENV)
    source: str = "crisiswatch"
    client_url: HttpUrl | None = None


class AlertmanagerReceiver(_Receiver):
    """Alertmanager API v2 (`POST {url}/api/v2/alerts`), re-sent while the incident fires."""

    type: Literal["alertmanager"]
    url: HttpUrl
    repeat_seconds: float = Field(default=60.0, gt=0)
    labels: dict[str, str] = {}


class SlackReceiver(_Receiver):
    """Slack incoming webhook. The webhook URL is itself a secret, so it comes from `url_env`."""

    type: Literal["slack"]
    url_env: str = Field(pattern=_ENV)
    max_samples: int = Field(default=3, ge=0, le=10)


class WebhookReceiver(_Receiver):
    """Generic JSON webhook signed with HMAC-SHA256 in ``X-Crisiswatch-Signature: v1=<hex>``."""

    type: Literal["webhook"]
    url: HttpUrl
    secret_env: str = Field(pattern=_ENV)


class EmailReceiver(_Receiver):
    """SMTP email; `to` may be empty when every notification names its recipient address."""

    type: Literal["email"]
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str
    to: list[str] = []
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV)

    @model_validator(mode="after")
    def _tls(self) -> EmailReceiver:
        if self.ssl and self.starttls:
            raise at("starttls", "choose ssl or starttls, not both")
        return self


class LogReceiver(_Receiver):
    """One line per notification in the service log: the demo's pager, and a way to try
    routes and escalation policies before any real receiver is set up."""

    type: Literal["log"]


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
    max_delay_seconds: float = Field(default=300.0, gt=0)
    expire_seconds: float = Field(default=6 * 3600.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=256)
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
    secret_env: str | None = Field(default=None, pattern=_ENV)
    ttl_seconds: float = Field(default=12 * 3600.0, gt=0)
    snooze_seconds: float = Field(default=3600.0, gt=0)


class ApiToken(Section):
    """A bearer token for the REST API; the token itself is read from `token_env`."""

    name: str = Field(pattern=_NAME)
    token_env: str = Field(pattern=_ENV)
    roles: list[Literal["responder", "viewer"]] = ["responder"]


class ApiConfig(Section):
    tokens: list[ApiToken] = []
    pagerduty_webhook_secret_env: str | None = Field(default=None, pattern=_ENV)
    max_snooze_seconds: float = Field(default=7 * 86400.0, gt=0)


class DeliveryConfig(Section):
    receivers: list[ReceiverConfig] = []
    outbox: OutboxConfig = OutboxConfig()
    links: LinksConfig = LinksConfig()
    api: ApiConfig = ApiConfig()

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
