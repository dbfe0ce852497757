"""The `alerting:` config section: defaults, the documented example, error paths."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import parse_config
from monitor.config.alerting import AlertingConfig, check_receivers
from monitor.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"


def test_no_alerting_block_gives_the_demo() -> None:
    cfg = parse_config({"topics": []}).alerting
    assert [u.name for u in cfg.users] == ["ana", "ben", "carla", "dan", "lead"]
    [policy] = cfg.policies
    assert [lv.delay_seconds for lv in policy.levels] == [300, 300] and policy.repeat == 2
    assert cfg.route.policy == "default"


def test_documented_example_parses() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/alerting.md lost its example"
    data = yaml.safe_load(blocks[0])
    receivers = [
        {"name": "pager", "type": "pagerduty", "routing_key_env": "PD_KEY"},
        {"name": "mail", "type": "email", "sender": "crisiswatch@example.org"},
        {"name": "slack-crisis", "type": "slack", "url_env": "SLACK_URL"},
    ]
    full = parse_config({"topics": [], **data, "delivery": {"receivers": receivers}})
    cfg = full.alerting
    assert {p.name for p in cfg.policies} == {"default", "major"}
    check_receivers(cfg, ["pager", "mail", "slack-crisis"])
    with pytest.raises(ConfigError) as err:  # the whole tree cross-checks receivers too
        parse_config({"topics": [], **data, "delivery": {"receivers": receivers[:2]}})
    assert err.value.path == "alerting.policies[0].levels[1].targets[1]"


@pytest.mark.parametrize(
    ("alerting", "path"),
    [
        ({"users": [{"name": "a"}, {"name": "a"}]}, "alerting.users[1].name"),
        (
            {"schedules": [{"name": "s", "layers": [{"users": ["zed"]}]}]},
            "alerting.schedules[0].layers[0].users[0]",
        ),
        (
            {"schedules": [{"name": "s", "layers": [{"users": ["ana"], "rotation": "0d"}]}]},
            "alerting.schedules[0].layers[0].rotation",
        ),
        (
            {
                "schedules": [
                    {
                        "name": "s",
                        "layers": [{"users": ["ana"]}],
                        "overrides": [
                            {"user": "ana", "start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}
                        ],
                    }
                ]
            },
            "alerting.schedules[0].overrides[0].end",
        ),
        ({"users": [{"name": "a", "quiet_hours": "late"}]}, "alerting.users[0].quiet_hours"),
        ({"teams": [{"name": "t", "schedule": "nope"}]}, "alerting.teams[0].schedule"),
        (
            {"policies": [{"name": "p", "levels": []}], "route": {"policy": "p"}},
            "alerting.policies[0].levels",
        ),
        (
            {
                "policies": [{"name": "p", "levels": [{"targets": ["team:x"]}]}],
                "route": {"policy": "p"},
            },
            "alerting.policies[0].levels[0].targets[0]",
        ),
        (
            {"policies": [{"name": "p", "levels": [{"targets": ["user:ana"], "mode": "random"}]}]},
            "alerting.policies[0].levels[0].mode",
        ),
        ({"route": {"routes": []}}, "alerting.route.policy"),
        (
            {"inhibit_rules": [{"source_matchers": ["=SEV1"]}]},
            "alerting.inhibit_rules[0].source_matchers[0]",
        ),
        ({"escalation": {}}, "alerting.escalation"),
    ],
)
def test_errors_name_the_path(alerting: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"topics": [], "alerting": alerting})
    assert err.value.path == path


def test_demo_has_no_receiver_references() -> None:
    check_receivers(AlertingConfig(), [])


# teams, policies and route naming only ana: a config that is valid but for what a test checks
_ONLY_ANA: dict[str, Any] = {
    "teams": [],
    "policies": [{"name": "p", "levels": [{"targets": ["user:ana"]}]}],
    "route": {"policy": "p"},
}


def _silence(**fields: Any) -> dict[str, Any]:
    base = {"matchers": ["topic=a"], "start": "2026-01-01T00:00", "end": "2026-01-02T00:00"}
    return {**base, "author": "ana", "comment": "deploy", **fields}


@pytest.mark.parametrize(
    ("alerting", "message"),
    [
        (
            {"silences": [_silence(end="2025-12-31T00:00")]},
            r"^alerting\.silences\[0\]\.end: '2025-12-31T00:00' is not after start "
            r"'2026-01-01T00:00'$",
        ),
        (
            {
                "schedules": [
                    {
                        "name": "s",
                        "layers": [{"users": ["ana"]}],
                        "overrides": [{"user": "ana", "start": "2026-01-02", "end": "2026-01-01"}],
                    }
                ],
                "teams": [],
            },
            r"^alerting\.schedules\[0\]\.overrides\[0\]\.end: '2026-01-01' is not after start",
        ),
        (
            {"silences": [_silence(id="x"), _silence(id="x")]},
            r"^alerting\.silences\[1\]\.id: duplicate silence id 'x'$",
        ),
        (  # an unnamed silence is "config-<index>": a named one must not take that id
            {"silences": [_silence(id="config-1"), _silence()]},
            r"^alerting\.silences\[1\]\.id: duplicate silence id 'config-1'$",
        ),
        ({"silences": [_silence(author="  ")]}, r"^alerting\.silences\[0\]\.author: "),
        (
            {
                "policies": [
                    {"name": "p", "levels": [{"targets": ["user:ana"], "delay_seconds": 0}]}
                ],
                "route": {"policy": "p"},
            },
            r"^alerting\.policies\[0\]\.levels\[0\]\.delay_seconds: 0 with repeat 2, the default:",
        ),
        (  # the lead and the next round's first level were paged in the same second (QA)
            {
                "policies": [
                    {
                        "name": "p",
                        "levels": [
                            {"targets": ["user:ana"], "delay_seconds": 900},
                            {"targets": ["user:ana"], "delay_seconds": 0},
                        ],
                        "repeat": 1,
                    }
                ],
                "route": {"policy": "p"},
            },
            r"^alerting\.policies\[0\]\.levels\[1\]\.delay_seconds: 0 with repeat 1: the last",
        ),
        (  # the latest covering override wins: ben's swap was silently never in force (QA)
            {
                "users": [{"name": "ana"}, {"name": "ben"}],
                "schedules": [
                    {
                        "name": "s",
                        "layers": [{"users": ["ana"]}],
                        "overrides": [
                            {"user": "ben", "start": "2026-12-24T09:00", "end": "2026-12-24T18:00"},
                            {"user": "ana", "start": "2026-12-24T08:00", "end": "2026-12-24T12:00"},
                            {"user": "ana", "start": "2026-12-24T12:00", "end": "2026-12-27T00:00"},
                        ],
                    }
                ],
                **_ONLY_ANA,
            },
            r"^alerting\.schedules\[0\]\.overrides\[0\]: never in force: overrides\[2\] ",
        ),
        (
            {"incidents": {"severity_thresholds": [0.7, 0.85, 0.95]}},
            r"^alerting\.incidents\.severity_thresholds: must be descending .*0\.7",
        ),
        (  # the same cuts as detection's: a percent-style one would never be reached
            {"incidents": {"severity_thresholds": [95, 85, 70]}},
            r"^alerting\.incidents\.severity_thresholds: scores are in \[0, 1\], got \[95",
        ),
        (  # a local time the spring-forward skips moved silently an hour (QA, tenth session)
            {
                "users": [{"name": "ana"}],
                "schedules": [
                    {
                        "name": "s",
                        "timezone": "Europe/Berlin",
                        "layers": [{"users": ["ana"]}],
                        "overrides": [
                            {"user": "ana", "start": "2026-03-29T02:30", "end": "2026-03-29T09:00"}
                        ],
                    }
                ],
            },
            r"^alerting\.schedules\[0\]\.overrides\[0\]\.start: 2026-03-29 02:30 does not exist in "
            r"Europe/Berlin: clocks go forward from 02:00 to 03:00",
        ),
        (  # a layer's start is a local time too: one the spring-forward skips is refused
            {
                "users": [{"name": "ana"}],
                "schedules": [
                    {
                        "name": "s",
                        "timezone": "Europe/Berlin",
                        "layers": [{"users": ["ana"], "start": "2026-03-29T02:30"}],
                    }
                ],
                **_ONLY_ANA,
            },
            r"^alerting\.schedules\[0\]\.layers\[0\]\.start: 2026-03-29 02:30 does not exist in "
            r"Europe/Berlin: clocks go forward from 02:00 to 03:00",
        ),
        (  # ... and one the fall-back repeats, in the layer's own zone when it names one
            {
                "users": [{"name": "ana"}],
                "schedules": [
                    {
                        "name": "s",
                        "timezone": "Europe/Berlin",
                        "layers": [
                            {"users": ["ana"]},
                            {
                                "users": ["ana"],
                                "timezone": "America/New_York",
                                "start": "2026-11-01T01:30",
                            },
                        ],
                    }
                ],
                **_ONLY_ANA,
            },
            r"^alerting\.schedules\[0\]\.layers\[1\]\.start: 2026-11-01 01:30 happens twice in "
            r"America/New_York: clocks go back from 02:00 to 01:00; add -04:00 \(EDT\) or "
            r"-05:00 \(EST\)",
        ),
        (  # read as quiet all day: a typo for 22:00-07:00, not "only SEV1 ever" (00:00-24:00)
            {"users": [{"name": "ana", "quiet_hours": "22:00-22:00"}]},
            r"^alerting\.users\[0\]\.quiet_hours: '22:00-22:00' starts when it ends: empty or "
            r"all day\? \(all day: 00:00-24:00\)$",
        ),
        (
            {"users": [{"name": "ana", "quiet_hours": "sat 08:00 - sat 08:00"}]},
            r"^alerting\.users\[0\]\.quiet_hours: 'sat 08:00 - sat 08:00' starts when it ends",
        ),
        (  # the same windows restrict layers: "always on duty" there is no restriction at all
            {
                "schedules": [
                    {"name": "s", "layers": [{"users": ["ana"], "restrictions": ["9:00-09:00"]}]}
                ]
            },
            r"^alerting\.schedules\[0\]\.layers\[0\]\.restrictions\[0\]: '9:00-09:00' starts when",
        ),
        (
            {
                "policies": [
                    {"name": "p", "levels": [{"targets": ["user:ana"], "delay_seconds": 1e300}]}
                ],
                "route": {"policy": "p"},
            },
            r"^alerting\.policies\[0\]\.levels\[0\]\.delay_seconds: Input should be less than or "
            r"equal to 604800 \(got 1e\+300\)$",
        ),
    ],
)
def test_errors_name_the_path_and_the_value(alerting: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"topics": [], "alerting": alerting})


def test_edge_values_that_mean_what_they_say_pass() -> None:
    week = 7 * 86400
    cfg = parse_config(
        {
            "topics": [],
            "alerting": {
                "users": [{"name": "boss", "quiet_hours": "00:00-24:00"}],  # SEV1 only, ever
                "teams": [],
                "schedules": [],
                "policies": [
                    {"name": "p", "levels": [{"targets": ["user:boss"], "delay_seconds": week}]}
                ],
                "route": {"policy": "p"},
            },
        }
    ).alerting
    assert cfg.users[0].quiet_hours == "00:00-24:00"
    assert cfg.policies[0].levels[0].delay_seconds == week


def test_layer_starts_near_clock_changes_that_name_one_instant_pass() -> None:
    def layers(*starts: str, zone: str = "Europe/Berlin") -> list[str]:
        data = {
            "users": [{"name": "ana"}],
            "schedules": [
                {"name": f"s{i}", "timezone": zone, "layers": [{"users": ["ana"], "start": start}]}
                for i, start in enumerate(starts)
            ],
            **_ONLY_ANA,
        }
        return [s.layers[0].start for s in AlertingConfig.model_validate(data).schedules]

    fine = ("2026-03-29T01:59", "2026-03-29T03:00", "2026-10-25T02:30+01:00", "2026-10-25T00:30Z")
    assert layers(*fine) == list(fine)
    assert layers("2026-03-29T02:30", zone="UTC") == ["2026-03-29T02:30"]  # UTC has no DST
