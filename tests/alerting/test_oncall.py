"""`crisiswatch oncall [--at TIME]` output."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerting.oncall import parse_at, run_oncall
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig


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
