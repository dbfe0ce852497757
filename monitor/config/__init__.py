"""The one typed config tree.

Each section lives in its own module (``monitor/config/<section>.py``) and is owned by the
package that uses it; this module composes them, loads YAML and turns every validation
failure into a :class:`~monitor.errors.ConfigError` that names the path and the value.

>>> cfg = parse_config({"topics": [{"name": "acme", "query": "acme"}]})
>>> cfg.topics[0].name, cfg.server.port
('acme', 8080)
>>> parse_config({"topics": [], "sever": {}})
Traceback (most recent call last):
...
monitor.errors.ConfigError: sever: unknown key
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from monitor.config.alerting import AlertingConfig, check_receivers
from monitor.config.base import BOOL_HINT, Section, at
from monitor.config.detection import DetectionConfig
from monitor.config.enrichment import EnrichmentConfig
from monitor.config.receivers import DeliveryConfig
from monitor.config.sources import SourcesConfig
from monitor.config.system import AggregationConfig, ServerConfig, StorageConfig, TopicConfig
from monitor.errors import ConfigError

__all__ = ["Config", "load_config", "parse_config"]


class Config(Section):
    """The whole service: what to watch, from where, how to judge it, whom to page."""

    topics: list[TopicConfig]
    """The brands and themes watched, each a boolean query (`[]` is allowed: nothing matched)."""
    sources: SourcesConfig = SourcesConfig()
    """Where mentions come from."""
    enrichment: EnrichmentConfig = EnrichmentConfig()
    """Language, sentiment and content words of each mention."""
    aggregation: AggregationConfig = AggregationConfig()
    """Per-topic buckets in event time, and when they close."""
    detection: DetectionConfig = DetectionConfig()
    """The detector stack and its decisions (the frozen default serves every series)."""
    alerting: AlertingConfig = AlertingConfig()
    """Incidents, people, schedules, escalation policies, routes, silences."""
    delivery: DeliveryConfig = DeliveryConfig()
    """Receivers (PagerDuty, Slack, …), the outbox, one-click links, API tokens."""
    storage: StorageConfig = StorageConfig()
    """Where state lives (SQLite or PostgreSQL)."""
    server: ServerConfig = ServerConfig()
    """The HTTP server: wall, websocket, metrics, health, REST API."""

    @model_validator(mode="after")
    def _unique_topics(self) -> Config:
        seen: set[str] = set()
        for i, t in enumerate(self.topics):
            if t.name in seen:
                raise at(f"topics[{i}].name", f"duplicate topic {t.name!r}")
            seen.add(t.name)
        try:
            check_receivers(self.alerting, [r.name for r in self.delivery.receivers])
        except ConfigError as exc:  # re-raised through pydantic with its precise path
            raise at(exc.path, exc.reason) from None
        return self

    @model_validator(mode="after")
    def _storage_url(self) -> Config:
        # imported here: the URL forms are storage's; `check-config` should refuse what
        # `run` would, not pass a config the service then cannot open
        from monitor.storage import check_url

        try:
            check_url(self.storage.url)
        except ConfigError as exc:
            raise at(exc.path, str(exc).removeprefix(f"{exc.path}: ")) from None
        return self


def _path(loc: tuple[int | str, ...], data: Any = None) -> str:
    """The config path of a pydantic error location, as the file spells it: the tag pydantic
    adds for a tagged union (``receivers[0].pagerduty.url``) is not a key the operator wrote.

    >>> _path(("delivery", "receivers", 0, "pagerduty", "url"),
    ...       {"delivery": {"receivers": [{"type": "pagerduty", "url": "x"}]}})
    'delivery.receivers[0].url'
    """
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        elif not part.startswith(("function-", "[")):
            if isinstance(node, dict) and part not in node and node.get("type") == part:
                continue  # the union's tag, not a key
            out += ("." if out else "") + part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "<root>"


def _as_text_hint(value: object) -> str | None:
    """Why a scalar YAML did not read as text, for a field that wants text."""
    if isinstance(value, bool):
        return f"{BOOL_HINT}: quote it"
    if isinstance(value, int | float):
        return "YAML reads it as a number: quote it"
    return None


def parse_config(data: Any) -> Config:
    """Validate a plain mapping into a :class:`Config` or raise one :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("<root>", "expected a mapping", type(data).__name__)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = _path(tuple(err["loc"]), data)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            raise ConfigError(path, "unknown key") from None
        if msg.startswith("@"):  # raised by at(): the validator knows a more precise path
            inner, _, reason = msg[1:].partition(": ")
            full = inner if path == "<root>" else f"{path}.{inner}".replace(".[", "[")
            raise ConfigError(full, reason) from None
        # a missing key's "input" is the mapping it is missing from: not the bad value
        value = None if err["type"] == "missing" else err.get("input")
        if isinstance(value, str) and repr(value) in msg:
            value = None  # the reason already names the value
        if value is None and err["type"] != "missing" and err.get("input", 0) is None:
            msg += " (got null)"  # an empty YAML value: say so, it is easy to miss
        quoted_choice = isinstance(value, bool) or f"'{value}'" in msg  # protocol: 5 for "5"
        text_wanted = err["type"] == "string_type" or (
            err["type"] == "literal_error" and quoted_choice
        )
        if text_wanted and (hint := _as_text_hint(value)):
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            raise ConfigError(path, f"{msg} (got {shown}; {hint})") from None
        raise ConfigError(path, msg, value) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        self.key, self.line = key, line
        super().__init__(f"duplicate key {key!r} at line {line}")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a key given twice in one mapping is an error: PyYAML
    keeps the last one silently, and a second ``topics:`` would drop the first list unseen."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        # only the mapping's own keys: a merge (`<<: *base`) may be overridden on purpose
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> Config:
    """Read a YAML file and validate it."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read config: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(str(p), f"not UTF-8 text at line {line}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except _DuplicateKey as exc:
        raise ConfigError(str(p), str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "?"
        raise ConfigError(str(p), f"invalid YAML at {where}") from None
    return parse_config(data)
