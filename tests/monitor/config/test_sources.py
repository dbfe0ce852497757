"""The sources section: what must fail at load time rather than in a running collector."""

from __future__ import annotations

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError

TOPICS = [{"name": "acme", "query": "acme"}]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["ok/#", "in/#/x"], r"^sources\.mqtt\.topics\[1\]: '#' must be the whole last level"),
        (["in/a+"], r"^sources\.mqtt\.topics\[0\]: '\+' must be a whole level: 'in/a\+'"),
        ([""], r"^sources\.mqtt\.topics\[0\]: empty topic filter"),
    ],
)
def test_a_bad_mqtt_topic_filter_is_a_config_error(filters: list[str], message: str) -> None:
    # otherwise it surfaces only at subscribe time, as a collector crashing on every restart
    with pytest.raises(ConfigError, match=message):
        parse_config({"topics": TOPICS, "sources": {"mqtt": {"enabled": True, "topics": filters}}})


def test_good_mqtt_topic_filters_pass() -> None:
    filters = ["crisiswatch/in/#", "a/+/b", "#", "+", "a//b"]
    cfg = parse_config({"topics": TOPICS, "sources": {"mqtt": {"topics": filters}}})
    assert cfg.sources.mqtt.topics == filters
