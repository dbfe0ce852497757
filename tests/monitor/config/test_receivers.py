"""The ``delivery`` section: URLs are checked at load, with the path and the value."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError


@pytest.mark.parametrize(
    ("delivery", "path"),
    [
        ({"links": {"base_url": "cw.example.org"}}, r"delivery\.links\.base_url"),
        (
            {"receivers": [{"name": "am", "type": "alertmanager", "url": "127.0.0.1:9093"}]},
            r"delivery\.receivers\[0\]\.(alertmanager\.)?url",
        ),
        (
            {
                "receivers": [
                    {"name": "h", "type": "webhook", "url": "ftp://h/x", "secret_env": "S"}
                ]
            },
            r"delivery\.receivers\[0\]\.(webhook\.)?url",
        ),
        (
            {
                "receivers": [
                    {"name": "pd", "type": "pagerduty", "routing_key_env": "K", "url": "http:///x"}
                ]
            },
            r"delivery\.receivers\[0\]\.(pagerduty\.)?url",
        ),
    ],
)
def test_urls_must_be_absolute_http(delivery: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"topics": [], "delivery": delivery})
    assert re.fullmatch(path, err.value.path)  # (the union tag in the path is optional)
    assert "http:// or https://" in str(err.value) and "got '" in str(err.value)


def test_good_urls_pass() -> None:
    cfg = parse_config(
        {
            "topics": [],
            "delivery": {
                "links": {"base_url": "https://cw.example.org/"},
                "receivers": [
                    {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"},
                    {
                        "name": "h",
                        "type": "webhook",
                        "url": "https://[::1]:8443/x",
                        "secret_env": "S",
                    },
                ],
            },
        }
    )
    assert cfg.delivery.receiver("am").url == "http://127.0.0.1:9093"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("outbox", "message"),
    [
        (  # every retry would wait max_delay_seconds: no exponential backoff at all
            {"base_delay_seconds": 600},
            r"^delivery\.outbox\.base_delay_seconds: 600 is above max_delay_seconds \(300\)$",
        ),
        (
            {"base_delay_seconds": 10, "max_delay_seconds": 5, "expire_seconds": 60},
            r"^delivery\.outbox\.base_delay_seconds: 10 is above max_delay_seconds \(5\)$",
        ),
        (  # the first retry is due up to base_delay_seconds after the first failure
            {"expire_seconds": 1.5},
            r"^delivery\.outbox\.expire_seconds: 1\.5 is not longer than base_delay_seconds "
            r"\(2\): a notification that fails once could expire before its first retry$",
        ),
        (
            {"base_delay_seconds": 30, "expire_seconds": 30},
            r"^delivery\.outbox\.expire_seconds: 30 is not longer than base_delay_seconds \(30\)",
        ),
    ],
)
def test_outbox_backoff_must_make_sense(outbox: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"topics": [], "delivery": {"outbox": outbox}})


def test_outbox_edges_pass() -> None:
    cfg = parse_config(
        {
            "topics": [],
            "delivery": {
                "outbox": {"base_delay_seconds": 5, "max_delay_seconds": 5, "expire_seconds": 6}
            },
        }
    )
    assert cfg.delivery.outbox.expire_seconds == 6
