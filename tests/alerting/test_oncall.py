"""`crisiswatch oncall [--at TIME]` output."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerting.oncall import parse_at, run_oncall
from monitor import cli
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig
from monitor.errors import ConfigError


def render(cfg: AlertingConfig, at: datetime | None = None, clock: FakeClock | None = None) -> str:
    buf = io.StringIO()
    assert run_oncall(cfg, at, buf, clock=clock) == 0
    return buf.getvalue()


def test_demo_follow_the_sun_through_a_day() -> None:
    cfg = AlertingConfig()
    night = render(cfg, parse_at("2026-01-14T03:00Z"))
    assert "now:  lead (layer backstop, 04:00 Europe/Berlin, quiet hours: SEV1 only)" in night
    assert "next: ana from 2026-01-14 06:00 UTC, in 3h00m (layer emea)" in night
    assert "level 1 at +0m: schedule:follow-the-sun -> lead (quiet: SEV1 only)" in night
    evening = render(cfg, parse_at("2026-01-14T20:00Z"))
    assert "now:  carla (layer amer, 15:00 America/New_York)" in evening
    assert "next: lead from 2026-01-15 00:00 UTC, in 4h00m (layer backstop)" in evening


def test_at_defaults_to_the_clock_and_prints_in_the_configured_zone() -> None:
    cfg = AlertingConfig(timezone="Europe/Berlin")
    clock = FakeClock(datetime(2026, 7, 1, 12, 0, tzinfo=UTC).timestamp())
    text = render(cfg, None, clock)
    assert text.startswith("On call at 2026-07-01 14:00 CEST (Wed)\n")
    assert "carla" in text  # 08:00 in New York, amer is the upper layer


def test_overrides_round_robin_receivers_and_nobody() -> None:
    data: dict[str, Any] = {
        "users": [{"name": "ana"}, {"name": "ben"}],
        "schedules": [
            {
                "name": "day",
                "timezone": "Europe/Berlin",
                "layers": [{"users": ["ana"], "restrictions": ["09:00-17:00"]}],
                "overrides": [
                    {"user": "ben", "start": "2026-01-14T10:00", "end": "2026-01-14T12:00"}
                ],
            }
        ],
        "teams": [{"name": "crew", "members": ["ana", "ben"]}],
        "policies": [
            {
                "name": "p",
                "levels": [
                    {"targets": ["team:crew"], "mode": "round_robin", "delay_seconds": 600},
                    {"targets": ["schedule:day", "receiver:slack"]},
                ],
                "repeat": 0,
            }
        ],
        "route": {"policy": "p"},
    }
    cfg = AlertingConfig.model_validate(data)
    text = render(cfg, parse_at("2026-01-14T10:30", ZoneInfo("Europe/Berlin")))
    assert "now:  ben (override, 09:30 UTC)" in text
    assert "next: ana from 2026-01-14 11:00 UTC, in 1h30m (layer layer)" in text
    assert "level 1 at +0m: team:crew -> ana, ben (round robin)" in text
    assert "level 2 at +10m: schedule:day, receiver:slack -> ben, receiver slack" in text
    assert "repeats" not in text
    # level 2 is reached at 12:05, after the override: the layer's ana, not ben
    before_handoff = render(cfg, parse_at("2026-01-14T11:55", ZoneInfo("Europe/Berlin")))
    assert "now:  ben (override" in before_handoff
    assert "level 2 at +10m: schedule:day, receiver:slack -> ana, receiver slack" in before_handoff
    late = render(cfg, parse_at("2026-01-14T20:00Z"))
    assert "now:  nobody" in late
    assert "schedule:day, receiver:slack -> receiver slack" in late


def test_naive_at_is_local_to_the_configured_zone() -> None:
    cfg = AlertingConfig(timezone="America/New_York")
    text = render(cfg, datetime(2026, 1, 14, 7, 30))  # what `--at 2026-01-14T07:30` gives
    assert text.startswith("On call at 2026-01-14 07:30 EST (Wed)\n")
    assert "now:  carla (layer amer, 07:30 America/New_York)" in text


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "zone", "reason"),
    [
        (  # the spring-forward gap used to be read silently as 03:30 CEST
            "2026-03-29T02:30",
            BERLIN,
            "2026-03-29 02:30 does not exist in Europe/Berlin: clocks go forward from 02:00 "
            "to 03:00",
        ),
        (
            "2026-03-08T02:59",
            ZoneInfo("America/New_York"),
            "2026-03-08 02:59 does not exist in America/New_York: clocks go forward from 02:00 "
            "to 03:00",
        ),
        (  # a half-hour change: the span is looked up, not assumed to be an hour
            "2026-10-04T02:15",
            ZoneInfo("Australia/Lord_Howe"),
            "2026-10-04 02:15 does not exist in Australia/Lord_Howe: clocks go forward from 02:00 "
            "to 02:30",
        ),
        (  # fall back: which of the two 02:30s is meant? the offset says it
            "2026-10-25T02:30",
            BERLIN,
            "2026-10-25 02:30 happens twice in Europe/Berlin: clocks go back from 03:00 to 02:00; "
            "add +02:00 (CEST) or +01:00 (CET)",
        ),
    ],
)
def test_at_a_local_time_a_clock_change_skips_or_repeats_is_an_error(
    text: str, zone: ZoneInfo, reason: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_at(text, zone)
    assert (err.value.path, err.value.reason, err.value.value) == ("--at", reason, text)


def test_at_around_clock_changes_with_an_offset_or_outside_the_gap() -> None:
    assert parse_at("2026-03-29T01:59", BERLIN).isoformat() == "2026-03-29T01:59:00+01:00"
    assert parse_at("2026-03-29T03:00", BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    first = parse_at("2026-10-25T02:30+02:00", BERLIN)
    second = parse_at("2026-10-25T02:30+01:00", BERLIN)
    assert second.timestamp() - first.timestamp() == 3600
    assert parse_at("2026-03-29T02:30Z", BERLIN).isoformat() == "2026-03-29T02:30:00+00:00"
    assert parse_at("2026-03-29T02:30").isoformat() == "2026-03-29T02:30:00+00:00"  # UTC: no DST
    with pytest.raises(ValueError, match="does not exist in Europe/Berlin"):  # a naive `at` too
        render(AlertingConfig(timezone="Europe/Berlin"), datetime(2026, 3, 29, 2, 30))


def test_cli_at_in_a_gap_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("topics: []\nalerting: {timezone: Europe/Berlin}\n", encoding="utf-8")
    assert cli.main(["oncall", "--config", str(cfg), "--at", "2026-03-29T02:30"]) == 2
    assert capsys.readouterr().err == (
        "error: --at: 2026-03-29 02:30 does not exist in Europe/Berlin: clocks go forward from "
        "02:00 to 03:00 (got '2026-03-29T02:30')\n"
    )
    assert cli.main(["oncall", "--config", str(cfg), "--at", "2026-10-25T02:30+01:00"]) == 0
    assert capsys.readouterr().out.startswith("On call at 2026-10-25 02:30 CET (Sun)\n")


def _handover_config() -> AlertingConfig:
    """The QA case: ben's weekday turn ends Friday 17:00, but an override from Friday noon
    to Monday noon keeps him on over the weekend; ana's turn starts Monday."""
    return AlertingConfig.model_validate(
        {
            "timezone": "Europe/Berlin",
            "users": [{"name": "ana"}, {"name": "ben"}],
            "teams": [],
            "schedules": [
                {
                    "name": "gappy",
                    "timezone": "Europe/Berlin",
                    "layers": [
                        {
                            "name": "day",
                            "users": ["ana", "ben"],
                            "rotation": "2w",
                            "start": "2026-01-05T09:00",
                            "restrictions": ["mon-fri 09:00-17:00"],
                        }
                    ],
                    "overrides": [
                        {"user": "ben", "start": "2026-03-27T12:00", "end": "2026-03-30T12:00"}
                    ],
                }
            ],
            "policies": [{"name": "p", "levels": [{"targets": ["schedule:gappy"]}]}],
            "route": {"policy": "p"},
        }
    )


def test_next_names_the_next_person_and_a_mere_change_of_source_says_so() -> None:
    cfg = _handover_config()
    text = render(cfg, parse_at("2026-03-27T11:00", BERLIN))
    lines = text.splitlines()
    now = lines.index("  now:  ben (layer day, 10:00 UTC)")
    assert lines[now + 1 : now + 3] == [
        "  then: ben continues from 2026-03-27 12:00 CET, in 1h00m (override)",
        "  next: ana from 2026-03-30 12:00 CEST, in 3d00h (layer day)",
    ]
    # under the override, the next person is still ana on Monday; no "then" line
    weekend = render(cfg, parse_at("2026-03-28T11:00", BERLIN))
    assert "  next: ana from 2026-03-30 12:00 CEST, in 2d00h (layer day)\n" in weekend
    assert "then:" not in weekend
    # a real handoff with no source-only change before it: unchanged output
    before = render(cfg, parse_at("2026-03-26T18:00", BERLIN))
    assert "  now:  nobody\n  next: ben from 2026-03-27 09:00 CET, in 15h00m (layer day)\n" in (
        before
    )


@pytest.mark.parametrize("at", ["2026-10-25T02:45+02:00", "2026-10-25T02:15+01:00"])
def test_next_after_a_handoff_in_the_repeated_hour_is_a_day_later(
    at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # QA: a daily 02:30 handoff on the fall-back day said "next: ben from 02:00 CET, in 0h15m"
    # (a hand-back); ana's turn began at the first 02:30 and lasts to 02:30 CET the next day
    cfg = tmp_path / "flap.yaml"
    cfg.write_text(
        """\
topics: [{name: acme, query: acme}]
alerting:
  timezone: Europe/Berlin
  users: [{name: ana, timezone: Europe/Berlin}, {name: ben, timezone: Europe/Berlin}]
  teams: []
  schedules:
    - name: nights
      timezone: Europe/Berlin
      layers: [{name: l, users: [ana, ben], rotation: 1d, start: "2026-10-01T02:30"}]
  policies: [{name: p, levels: [{targets: ["schedule:nights"]}]}]
  route: {policy: p}
""",
        encoding="utf-8",
    )
    assert cli.main(["oncall", "--config", str(cfg), "--at", at]) == 0
    out = capsys.readouterr().out
    assert "  now:  ana (layer l, " in out
    assert "  next: ben from 2026-10-26 02:30 CET, in 1d00h (layer l)\n" in out
