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
