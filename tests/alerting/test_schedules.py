"""Schedules: rotations, DST, layers with restrictions (follow-the-sun), overrides, quiet hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerting.schedules import Directory, OnCall, Schedule, User
from monitor.config.alerting import AlertingConfig, ScheduleConfig, UserConfig

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def ts(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = UTC) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


def schedule(**kw: Any) -> Schedule:
    return Schedule.from_config(ScheduleConfig.model_validate({"name": "s", **kw}))


def who(s: Schedule, t: float) -> str | None:
    oc = s.who(t)
    return oc.user if oc else None


def test_weekly_handoff_stays_at_local_nine_across_spring_forward() -> None:
    # Europe springs forward on Sunday 2026-03-29; Monday handoff is 09:00 CEST = 07:00 UTC.
    s = schedule(
        timezone="Europe/Berlin",
        layers=[{"users": ["ana", "ben"], "start": "2026-03-23T09:00", "rotation": "1w"}],
    )
    assert who(s, ts(2026, 3, 23, 8, 0)) == "ana"  # 09:00 CET
    assert who(s, ts(2026, 3, 23, 7, 59)) == "ben"  # the turn before
    assert who(s, ts(2026, 3, 30, 6, 59)) == "ana"  # 08:59 CEST
    assert who(s, ts(2026, 3, 30, 7, 0)) == "ben"  # 09:00 CEST, one hour earlier in UTC
    assert who(s, ts(2026, 3, 30, 9, 0, BERLIN)) == "ben"


def test_daily_handoff_across_fall_back() -> None:
    # Europe falls back on Sunday 2026-10-25: 09:00 CET is 08:00 UTC that day, 07:00 UTC before.
    s = schedule(
        timezone="Europe/Berlin",
        layers=[{"users": ["a", "b", "c"], "start": "2026-10-20T09:00", "rotation": "1d"}],
    )
    assert [who(s, ts(2026, 10, d, 9, 0, BERLIN)) for d in range(20, 27)] == [
        "a",
        "b",
        "c",
        "a",
        "b",
        "c",
        "a",
    ]
    assert who(s, ts(2026, 10, 24, 7, 0)) == "b"  # 09:00 CEST
    assert who(s, ts(2026, 10, 25, 7, 59)) == "b"  # 08:59 CET: still yesterday's turn
    assert who(s, ts(2026, 10, 25, 8, 0)) == "c"


def test_twelve_hour_turns_keep_local_handoffs() -> None:
    s = schedule(
        timezone="America/New_York",
        layers=[{"users": ["day", "night"], "start": "2026-03-01T08:00", "rotation": "12h"}],
    )
    # US springs forward on 2026-03-08; after it handoffs are still 08:00 and 20:00 local.
    for d in (7, 8, 9):
        assert who(s, ts(2026, 3, d, 8, 0, NY)) == "day"
        assert who(s, ts(2026, 3, d, 7, 59, NY)) == "night"
        assert who(s, ts(2026, 3, d, 20, 0, NY)) == "night"
        assert who(s, ts(2026, 3, d, 19, 59, NY)) == "day"


def handoffs(s: Schedule, t0: float, t1: float, step: float = 60.0) -> list[tuple[str, str]]:
    """``(UTC time, new person or "nobody")`` at every change of who is on call in ``(t0, t1]``,
    probed every ``step`` seconds."""
    out: list[tuple[str, str]] = []
    before = who(s, t0)
    for k in range(1, int((t1 - t0) // step) + 1):
        now = who(s, t0 + k * step)
        if now != before:
            at = datetime.fromtimestamp(t0 + k * step, UTC).strftime("%m-%d %H:%MZ")
            out.append((at, now or "nobody"))
        before = now
    return out


@pytest.mark.parametrize(
    ("zone", "rotation", "start", "t0", "expected"),
    [
        # Berlin goes back from 03:00 CEST to 02:00 CET at 01:00 UTC on 2026-10-25; QA saw
        # 00:30Z ana, 01:00Z carla again, 01:30Z ana again
        ("Europe/Berlin", "1d", "2026-10-01T02:30", ts(2026, 10, 24, 22), [("10-25 00:30Z", "a")]),
        (  # hourly at :30: the turn from 02:30 CEST lasts two real hours, to 03:30 CET
            "Europe/Berlin",
            "1h",
            "2026-10-01T00:30",
            ts(2026, 10, 24, 22),
            [
                ("10-24 22:30Z", "a"),
                ("10-24 23:30Z", "b"),
                ("10-25 00:30Z", "c"),  # 02:30 CEST; not b again at 02:00 CET, c at 02:30 CET
                ("10-25 02:30Z", "a"),  # 03:30 CET
                ("10-25 03:30Z", "b"),
            ],
        ),
        # New York goes back from 02:00 EDT to 01:00 EST at 06:00 UTC on 2026-11-01
        (
            "America/New_York",
            "12h",
            "2026-10-01T01:30",
            ts(2026, 11, 1, 3),
            [("11-01 05:30Z", "c")],
        ),
    ],
)
def test_a_handoff_at_a_repeated_local_time_happens_once_at_its_first_occurrence(
    zone: str, rotation: str, start: str, t0: float, expected: list[tuple[str, str]]
) -> None:
    s = schedule(
        timezone=zone,
        layers=[{"users": ["a", "b", "c"], "start": start, "rotation": rotation}],
    )
    assert handoffs(s, t0, t0 + 6 * 3600) == expected
    first = datetime.strptime(f"2026-{expected[0][0]}", "%Y-%m-%d %H:%MZ").replace(tzinfo=UTC)
    # the exact instant goes to the new person
    assert who(s, first.timestamp() - 1) != expected[0][1] == who(s, first.timestamp())


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("hours", [1, 2, 5, 7, 12, 13, 25, 36])
def test_turns_count_up_once_per_local_handoff_across_both_clock_changes(
    zone: str, hours: int
) -> None:
    # odd-length turns drift through every local time, the repeated hour included: turns never
    # go back, and each local handoff time the clock reaches starts exactly one turn
    z = ZoneInfo(zone)
    layer = schedule(
        timezone=zone,
        layers=[{"users": ["a", "b"], "start": "2026-01-01T00:40", "rotation": f"{hours}h"}],
    ).layers[0]
    for day in (
        (2026, 3, 7),
        (2026, 3, 28),
        (2026, 4, 4),
        (2026, 10, 3),
        (2026, 10, 24),
        (2026, 10, 31),
    ):
        t0 = datetime(*day, 12, tzinfo=UTC).timestamp()
        turns = [layer.turn_index(t0 + m * 60) for m in range(3 * 1440)]
        assert all(b - a in (0, 1) for a, b in pairwise(turns)), (day, hours)
        # local handoff times reached in the span: both ends are off a DST change
        walls = [
            datetime.fromtimestamp(t0 + m * 60, z).replace(tzinfo=None) for m in (0, -1 + 3 * 1440)
        ]
        turn = timedelta(hours=hours)
        reached = (walls[1] - layer.anchor) // turn - (walls[0] - layer.anchor) // turn
        assert turns[-1] - turns[0] == reached, (day, hours)


def test_layer_restrictions_that_end_or_start_in_the_repeated_hour_do_not_flap() -> None:
    s = schedule(
        timezone="Europe/Berlin",
        layers=[
            {"name": "backstop", "users": ["lead"]},
            {"name": "late", "users": ["ana"], "restrictions": ["22:00-02:30"]},
            {"name": "early", "users": ["ben"], "restrictions": ["02:45-06:00"]},
        ],
    )
    assert handoffs(s, ts(2026, 10, 24, 19), ts(2026, 10, 25, 6)) == [
        ("10-24 20:00Z", "ana"),  # 22:00 CEST
        ("10-25 00:30Z", "lead"),  # 02:30 CEST, and not ana again at 02:00 CET
        ("10-25 00:45Z", "ben"),  # 02:45 CEST, and not lead again at 02:00 CET
        ("10-25 05:00Z", "lead"),  # 06:00 CET
    ]
    # in New York too (back from 02:00 EDT to 01:00 EST at 06:00 UTC on 2026-11-01)
    ny = schedule(
        timezone="America/New_York",
        layers=[{"users": ["lead"]}, {"users": ["ana"], "restrictions": ["sun 01:15-01:45"]}],
    )
    assert handoffs(ny, ts(2026, 11, 1, 4), ts(2026, 11, 1, 9)) == [
        ("11-01 05:15Z", "ana"),
        ("11-01 05:45Z", "lead"),
    ]


def test_next_change_and_next_handoff_in_the_repeated_hour() -> None:
    s = schedule(
        timezone="Europe/Berlin",
        layers=[{"users": ["ana", "ben"], "start": "2026-10-01T02:30", "rotation": "1d"}],
    )
    after = (ts(2026, 10, 26, 1, 30), OnCall("ben", "layer:layer"))  # 02:30 CET, a day later
    for t in (ts(2026, 10, 25, 0, 45), ts(2026, 10, 25, 1, 0), ts(2026, 10, 25, 1, 45)):
        assert who(s, t) == "ana"  # 02:45 CEST, 02:00 CET, 02:45 CET
        assert s.next_change(t, 2 * 86400) == after
        assert s.next_handoff(t, 2 * 86400) == after
    before = ts(2026, 10, 24, 23, 0)  # 01:00 CEST
    assert s.next_handoff(before) == (ts(2026, 10, 25, 0, 30), OnCall("ana", "layer:layer"))


@pytest.mark.parametrize(
    ("zone", "t0", "midnight"),
    [  # both go back from 00:00 to 23:00: the midnight handoff is the only 00:00, an hour late
        ("America/Santiago", ts(2026, 4, 5, 2), ts(2026, 4, 5, 4)),
        ("Asia/Beirut", ts(2026, 10, 24, 20), ts(2026, 10, 24, 22)),
    ],
)
def test_midnight_handoff_where_clocks_go_back_at_midnight(
    zone: str, t0: float, midnight: float
) -> None:
    s = schedule(
        timezone=zone,
        layers=[{"users": ["a", "b", "c"], "start": "2026-01-01T00:00", "rotation": "1d"}],
    )
    [(at, _)] = handoffs(s, t0, t0 + 4 * 3600)
    assert at == datetime.fromtimestamp(midnight, UTC).strftime("%m-%d %H:%MZ")


def test_a_handoff_at_a_skipped_local_time_happens_when_the_clock_jumps_past_it() -> None:
    # Berlin goes forward from 02:00 CET to 03:00 CEST at 01:00 UTC on 2026-03-29
    s = schedule(
        timezone="Europe/Berlin",
        layers=[{"users": ["a", "b"], "start": "2026-03-01T02:30", "rotation": "1d"}],
    )
    assert handoffs(s, ts(2026, 3, 28, 0), ts(2026, 3, 31, 0)) == [
        ("03-28 01:30Z", "b"),  # 02:30 CET
        ("03-29 01:00Z", "a"),  # 03:00 CEST: 02:30 was skipped
        ("03-30 00:30Z", "b"),  # 02:30 CEST
    ]


def test_quiet_hours_that_end_or_start_in_the_repeated_hour_hold_once() -> None:
    def quiet(window: str) -> list[bool]:
        u = User.from_config(
            UserConfig(name="u", timezone="Europe/Berlin", quiet_hours=window), ["pager"]
        )
        # 02:15 CEST, 02:45 CEST, 02:15 CET, 02:45 CET, 03:15 CET
        return [u.is_quiet(ts(2026, 10, 25, 0, 15) + k * 1800) for k in (0, 1, 2, 3, 4)]

    assert quiet("22:00-02:30") == [True, False, False, False, False]
    assert quiet("02:30-07:00") == [False, True, True, True, True]


FOLLOW_THE_SUN: dict[str, Any] = {
    "layers": [
        {
            "name": "emea",
            "users": ["ana"],
            "timezone": "Europe/Berlin",
            "restrictions": ["07:00-19:00"],
        },
        {
            "name": "amer",
            "users": ["carla"],
            "timezone": "America/New_York",
            "restrictions": ["07:00-19:00"],
        },
    ]
}


def test_follow_the_sun_in_winter() -> None:
    s = schedule(**FOLLOW_THE_SUN)
    # EMEA 07-19 Berlin = 06-18 UTC; AMER 07-19 New York = 12-24 UTC; AMER is the upper layer.
    assert who(s, ts(2026, 1, 14, 5, 59)) is None
    assert s.who(ts(2026, 1, 14, 6, 0)) == OnCall("ana", "layer:emea")
    assert who(s, ts(2026, 1, 14, 11, 59)) == "ana"
    assert s.who(ts(2026, 1, 14, 12, 0)) == OnCall("carla", "layer:amer")
    assert who(s, ts(2026, 1, 14, 23, 59)) == "carla"
    assert who(s, ts(2026, 1, 15, 0, 0)) is None


def test_follow_the_sun_between_the_two_dst_switches() -> None:
    # 2026-03-08..29: New York is already on EDT (UTC-4), Berlin still on CET (UTC+1).
    s = schedule(**FOLLOW_THE_SUN)
    assert who(s, ts(2026, 3, 18, 10, 59)) == "ana"
    assert who(s, ts(2026, 3, 18, 11, 0)) == "carla"  # 07:00 EDT
    assert who(s, ts(2026, 3, 18, 22, 59)) == "carla"
    assert who(s, ts(2026, 3, 18, 23, 0)) is None
    # after Europe switches too, EMEA starts at 05:00 UTC
    assert who(s, ts(2026, 3, 30, 4, 59)) is None
    assert who(s, ts(2026, 3, 30, 5, 0)) == "ana"


def test_weekday_restriction_and_weekend_span() -> None:
    s = schedule(
        layers=[
            {"name": "weekend", "users": ["wknd"], "restrictions": ["fri 18:00 - mon 08:00"]},
            {"name": "office", "users": ["office"], "restrictions": ["mon-fri 09:00-17:00"]},
        ]
    )
    assert who(s, ts(2026, 1, 16, 12, 0)) == "office"  # Friday noon
    assert who(s, ts(2026, 1, 16, 17, 30)) is None  # Friday gap
    assert who(s, ts(2026, 1, 17, 12, 0)) == "wknd"  # Saturday
    assert who(s, ts(2026, 1, 19, 7, 59)) == "wknd"  # Monday early
    assert who(s, ts(2026, 1, 19, 8, 0)) is None


def test_overrides_win_and_the_latest_override_wins() -> None:
    s = schedule(
        timezone="Europe/Berlin",
        layers=[{"users": ["ana"]}],
        overrides=[
            {"user": "ben", "start": "2026-02-01T00:00", "end": "2026-02-02T00:00"},
            {"user": "carla", "start": "2026-02-01T12:00", "end": "2026-02-01T14:00Z"},
        ],
    )
    assert who(s, ts(2026, 1, 31, 22, 59)) == "ana"
    assert s.who(ts(2026, 1, 31, 23, 0)) == OnCall("ben", "override")  # 00:00 Berlin
    assert who(s, ts(2026, 2, 1, 12, 0, BERLIN)) == "carla"
    assert who(s, ts(2026, 2, 1, 13, 59)) == "carla"
    assert who(s, ts(2026, 2, 1, 14, 0)) == "ben"
    assert who(s, ts(2026, 2, 1, 23, 0)) == "ana"


def test_next_change() -> None:
    s = schedule(**FOLLOW_THE_SUN)
    change = s.next_change(ts(2026, 1, 14, 7, 30))
    assert change == (ts(2026, 1, 14, 12, 0), OnCall("carla", "layer:amer"))
    # a change off the minute grid is found to the second
    s2 = schedule(
        layers=[{"users": ["ana"]}],
        overrides=[{"user": "ben", "start": "2026-01-01T10:00:30Z", "end": "2026-01-01T11:00Z"}],
    )
    assert s2.next_change(ts(2026, 1, 1, 9, 0)) == (
        ts(2026, 1, 1, 10, 0) + 30,
        OnCall("ben", "override"),
    )
    always = schedule(layers=[{"users": ["solo"]}])
    assert always.next_change(ts(2026, 1, 1, 9, 0)) is None


def test_next_handoff_skips_changes_of_source_only() -> None:
    # ana's day shift, then her own override to 20:00, then ben's override to 22:00, then nobody
    s = schedule(
        layers=[{"users": ["ana"], "restrictions": ["09:00-17:00"]}],
        overrides=[
            {"user": "ana", "start": "2026-01-01T16:00Z", "end": "2026-01-01T20:00Z"},
            {"user": "ben", "start": "2026-01-01T20:00Z", "end": "2026-01-01T22:00Z"},
        ],
    )
    t = ts(2026, 1, 1, 10, 0)
    assert s.next_change(t) == (ts(2026, 1, 1, 16, 0), OnCall("ana", "override"))
    assert s.next_handoff(t) == (ts(2026, 1, 1, 20, 0), OnCall("ben", "override"))
    assert s.next_handoff(ts(2026, 1, 1, 21, 0)) == (ts(2026, 1, 1, 22, 0), None)  # to nobody
    assert s.next_handoff(ts(2026, 1, 1, 23, 0)) == (
        ts(2026, 1, 2, 9, 0),
        OnCall("ana", "layer:layer"),
    )
    # the same person for longer than the horizon, through changes of source: no handoff
    solo = schedule(
        layers=[{"users": ["ana"]}],
        overrides=[{"user": "ana", "start": "2026-01-02T00:00Z", "end": "2026-01-03T00:00Z"}],
    )
    assert solo.next_change(t) is not None
    assert solo.next_handoff(t) is None


def test_quiet_hours_only_sev1_breaks_them() -> None:
    u = User.from_config(
        UserConfig(name="lead", timezone="Europe/Berlin", quiet_hours="22:00-07:00"), ["pager"]
    )
    assert u.receivers == ("pager",)
    night = ts(2026, 1, 14, 23, 30, BERLIN)
    morning = ts(2026, 1, 15, 7, 0, BERLIN)
    assert u.is_quiet(night) and not u.is_quiet(morning)
    assert u.may_page(night, 1)
    assert not any(u.may_page(night, s) for s in (2, 3, 4))
    assert u.may_page(morning, 4)


def test_directory_resolves_targets() -> None:
    cfg = AlertingConfig.model_validate(
        {
            "users": [{"name": n} for n in ("ana", "ben", "carla")],
            "schedules": [{"name": "s", "layers": [{"users": ["ana"]}]}],
            "teams": [
                {"name": "oncall", "schedule": "s"},
                {"name": "everyone", "members": ["ana", "ben", "carla"]},
            ],
            "policies": [{"name": "p", "levels": [{"targets": ["user:ana"]}]}],
            "route": {"policy": "p"},
        }
    )
    d = Directory.from_config(cfg)
    r = d.resolve(["schedule:s", "team:oncall", "user:ben", "receiver:slack"], 0.0)
    assert r.users == ("ana", "ben") and r.receivers == ("slack",) and r.unstaffed == ()
    assert d.resolve(["team:everyone"], 0.0).users == ("ana", "ben", "carla")


def test_unstaffed_schedule_is_reported() -> None:
    cfg = AlertingConfig.model_validate(
        {
            "users": [{"name": "ana"}],
            "schedules": [
                {"name": "day", "layers": [{"users": ["ana"], "restrictions": ["09:00-17:00"]}]}
            ],
            "teams": [],
            "policies": [{"name": "p", "levels": [{"targets": ["schedule:day"]}]}],
            "route": {"policy": "p"},
        }
    )
    d = Directory.from_config(cfg)
    r = d.resolve(["schedule:day"], ts(2026, 1, 1, 3, 0))
    assert r.users == () and r.unstaffed == ("schedule:day",)


@pytest.mark.parametrize(
    ("hour_utc", "expected"),
    [(3, "lead"), (8, "ana"), (14, "carla"), (20, "carla"), (23, "carla")],
)
def test_demo_schedule_covers_the_whole_day(hour_utc: int, expected: str) -> None:
    d = Directory.from_config(AlertingConfig())
    # 2026-01-14 falls in an even week since the 2024-01-01 anchor: ana and carla's turn
    assert who(d.schedules["follow-the-sun"], ts(2026, 1, 14, hour_utc)) == expected
