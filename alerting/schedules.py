"""On-call schedules: rotations in local time, layers with restrictions, overrides, quiet hours.

Pure: every question takes an instant (Unix seconds). Rotations hand off at *local wall time*
(09:00 in Berlin stays 09:00 across a DST change) because turns are counted on naive local
date-times, not on elapsed seconds. Restrictions and quiet hours are local windows too. All of
them read :func:`wall_clock`, a local clock that never goes back: a handoff or window edge at a
local time the fall-back repeats happens at its first occurrence, once; one at a time the
spring-forward skips happens when the clock jumps past it.

>>> from monitor.config.alerting import AlertingConfig
>>> d = Directory.from_config(AlertingConfig())
>>> ts = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()  # Wed 11:00 Berlin
>>> d.schedules["follow-the-sun"].who(ts)
OnCall(user='ana', source='layer:emea')
>>> d.schedules["follow-the-sun"].who(ts + 6 * 3600).user  # 11:00 New York
'carla'
>>> d.schedules["follow-the-sun"].who(ts + 14 * 3600).user  # 03:00 Berlin, nobody's day
'lead'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config.alerting import (
    WEEK_MINUTES,
    AlertingConfig,
    ScheduleConfig,
    UserConfig,
    clock_change,
    parse_rotation,
    parse_target,
    parse_when,
    parse_window,
    parse_zone,
)

Intervals = tuple[tuple[int, int], ...]


_TICK = timedelta(microseconds=1)  # datetime's resolution


def local(t: float, zone: ZoneInfo) -> datetime:
    """The aware local date-time of instant ``t``."""
    return datetime.fromtimestamp(t, zone)


def wall_clock(t: float, zone: ZoneInfo) -> datetime:
    """The naive local time of instant ``t`` on a clock that never goes back.

    It is the local time, except in the second pass of the hour a fall-back repeats (PEP 495
    ``fold=1``): there it stays at the last reading before the clocks went back. Every local
    time of that hour has already happened once, and reading it again would run turns and
    windows backwards (a handoff at 02:30 handed back at 02:00 CET and over again at 02:30
    CET, QA). So an edge at a repeated time happens at its first occurrence and only then.

    >>> berlin = ZoneInfo("Europe/Berlin")  # back from 03:00 CEST to 02:00 CET on 2026-10-25
    >>> first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC).timestamp()  # 02:15 CEST
    >>> [str(wall_clock(first + h * 3600, berlin)) for h in (0, 1, 2)]
    ['2026-10-25 02:15:00', '2026-10-25 02:59:59.999999', '2026-10-25 03:15:00']
    """
    here = local(t, zone)
    if not here.fold:
        return here.replace(tzinfo=None)
    before, after = here.replace(fold=0).utcoffset(), here.utcoffset()
    assert before is not None and after is not None  # a ZoneInfo always has an offset
    # the clocks went back less than `before - after` ago
    lo, hi = math.floor(t - (before - after).total_seconds()), math.ceil(t)
    went_back = clock_change(lo, hi, zone)
    return (datetime.fromtimestamp(went_back, UTC) + before).replace(tzinfo=None) - _TICK


def in_window(intervals: Intervals, when: datetime) -> bool:
    """Whether naive local ``when`` falls in minute-of-week ``intervals`` (``parse_window``).

    >>> win = tuple(parse_window("fri 18:00 - mon 08:00"))
    >>> in_window(win, datetime(2026, 1, 4, 12, 0)), in_window(win, datetime(2026, 1, 5, 9, 0))
    (True, False)
    """
    mow = when.weekday() * 1440 + when.hour * 60 + when.minute + when.second / 60.0
    return any(a <= mow < b or a <= mow + WEEK_MINUTES < b for a, b in intervals)


@dataclass(frozen=True, slots=True)
class OnCall:
    user: str
    source: str  # "override", "layer:<name>"


@dataclass(frozen=True, slots=True)
class Layer:
    """Users take turns of ``turn_seconds`` of local wall time from ``anchor`` (naive local).

    Turn ``k`` begins the first time the :func:`wall_clock` reads ``anchor + k * turn``: at the
    first of two such readings when the clocks go back, at the jump when they skip it.
    """

    name: str
    users: tuple[str, ...]
    zone: ZoneInfo
    anchor: datetime
    turn_seconds: int
    restrictions: Intervals = ()

    def turn_index(self, t: float) -> int:
        """Turns begun since ``anchor`` (negative before it); never decreases as ``t`` grows."""
        delta = wall_clock(t, self.zone) - self.anchor
        # exact in whole seconds: a turn is whole hours, so the microseconds cannot cross one
        # (and ints, not a timedelta made per call: this runs for every layer of every page)
        return (delta.days * 86_400 + delta.seconds) // self.turn_seconds

    def rotation_user(self, t: float) -> str:
        """Whose turn it is, ignoring restrictions."""
        return self.users[self.turn_index(t) % len(self.users)]

    def covers(self, t: float) -> bool:
        return not self.restrictions or in_window(self.restrictions, wall_clock(t, self.zone))

    def who(self, t: float) -> str | None:
        return self.rotation_user(t) if self.covers(t) else None


@dataclass(frozen=True, slots=True)
class Override:
    user: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    zone: ZoneInfo
    layers: tuple[Layer, ...]  # bottom first; the highest layer on duty wins
    overrides: tuple[Override, ...] = ()

    @classmethod
    def from_config(cls, cfg: ScheduleConfig) -> Schedule:
        zone = parse_zone(cfg.timezone)
        layers = []
        for lc in cfg.layers:
            lz = parse_zone(lc.timezone) if lc.timezone else zone
            anchor = parse_when(lc.start, lz).astimezone(lz).replace(tzinfo=None)
            windows = tuple(iv for w in lc.restrictions for iv in parse_window(w))
            layers.append(
                Layer(lc.name, tuple(lc.users), lz, anchor, parse_rotation(lc.rotation), windows)
            )
        overrides = tuple(
            Override(
                o.user, parse_when(o.start, zone).timestamp(), parse_when(o.end, zone).timestamp()
            )
            for o in cfg.overrides
        )
        return cls(cfg.name, zone, tuple(layers), overrides)

    def who(self, t: float) -> OnCall | None:
        """Who is on call at ``t``: the latest override covering it, else the top layer on duty."""
        for o in reversed(self.overrides):
            if o.start <= t < o.end:
                return OnCall(o.user, "override")
        for layer in reversed(self.layers):
            user = layer.who(t)
            if user is not None:
                return OnCall(user, f"layer:{layer.name}")
        return None

    def next_change(
        self, t: float, horizon: float = 8 * 86400.0
    ) -> tuple[float, OnCall | None] | None:
        """The next instant after ``t`` when ``who`` changes, person or source, and who takes over.

        Scans minute by minute (handoffs and windows sit on minutes), then narrows to the second
        for overrides that do not. Cheap enough for a CLI: a week is ~10k look-ups.
        """
        now = self.who(t)
        step = 60.0
        prev = t
        probe = math.floor(t / step) * step + step
        while probe <= t + horizon:
            nxt = self.who(probe)
            if nxt != now:
                lo, hi = prev, probe  # who(lo) == now, who(hi) != now
                while hi - lo > 1.0:
                    mid = math.floor((lo + hi) / 2)
                    if mid <= lo:
                        break
                    lo, hi = (mid, hi) if self.who(mid) == now else (lo, mid)
                return hi, self.who(hi)
            prev, probe = probe, probe + step
        return None

    def next_handoff(
        self, t: float, horizon: float = 8 * 86400.0
    ) -> tuple[float, OnCall | None] | None:
        """The next instant after ``t`` when the *person* on call changes (to someone else or
        to nobody), and who takes over; a change of source alone (rotation to override) is not
        one, unlike for :meth:`next_change`.

        >>> z = ZoneInfo("UTC")
        >>> s = Schedule("s", z, (Layer("l", ("ana",), z, datetime(2026, 1, 1), 86400),),
        ...              (Override("ana", 3600, 7200), Override("ben", 7200, 9000)))
        >>> s.next_change(0)
        (3600.0, OnCall(user='ana', source='override'))
        >>> s.next_handoff(0)
        (7200.0, OnCall(user='ben', source='override'))
        """
        now = self.who(t)
        user = now.user if now else None
        at = t
        # each step resumes the scan where the last one stopped: one pass over the horizon
        while (change := self.next_change(at, t + horizon - at)) is not None:
            at, nxt = change
            if (nxt.user if nxt else None) != user:
                return change
        return None


@dataclass(frozen=True, slots=True)
class User:
    name: str
    zone: ZoneInfo
    quiet: Intervals
    receivers: tuple[str, ...]
    full_name: str | None = None
    contact: dict[str, str] = field(default_factory=dict)
    zone_given: bool = False  # the config names the user's zone (else it is UTC by default)

    @classmethod
    def from_config(cls, u: UserConfig, default_receivers: Sequence[str]) -> User:
        quiet = tuple(parse_window(u.quiet_hours)) if u.quiet_hours else ()
        receivers = tuple(u.receivers or default_receivers)
        return cls(
            u.name,
            parse_zone(u.timezone),
            quiet,
            receivers,
            u.full_name,
            dict(u.contact),
            zone_given="timezone" in u.model_fields_set,
        )

    def is_quiet(self, t: float) -> bool:
        return bool(self.quiet) and in_window(self.quiet, wall_clock(t, self.zone))

    def may_page(self, t: float, severity: int) -> bool:
        """Quiet hours hold back everything but SEV1."""
        return severity <= 1 or not self.is_quiet(t)


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    members: tuple[str, ...]
    schedule: str | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The people and plain receivers a list of targets means at one instant."""

    users: tuple[str, ...]
    receivers: tuple[str, ...]
    unstaffed: tuple[str, ...] = ()  # targets that named nobody at that instant


@dataclass(frozen=True, slots=True)
class Directory:
    """Everyone and every schedule, resolved from config once; answers "who is target X now"."""

    users: dict[str, User]
    schedules: dict[str, Schedule]
    teams: dict[str, Team]

    @classmethod
    def from_config(cls, cfg: AlertingConfig) -> Directory:
        return cls(
            {u.name: User.from_config(u, cfg.default_receivers) for u in cfg.users},
            {s.name: Schedule.from_config(s) for s in cfg.schedules},
            {t.name: Team(t.name, tuple(t.members), t.schedule) for t in cfg.teams},
        )

    def resolve(self, targets: Iterable[str], t: float) -> Resolved:
        """Expand ``user:``/``schedule:``/``team:``/``receiver:`` targets at ``t``, deduplicated."""
        users: list[str] = []
        receivers: list[str] = []
        unstaffed: list[str] = []
        for target in targets:
            kind, name = parse_target(target)
            found: list[str] = []
            if kind == "receiver":
                receivers.append(name)
                continue
            if kind == "user":
                found = [name]
            elif kind == "schedule":
                found = self._on_call(name, t)
            else:
                team = self.teams[name]
                found = self._on_call(team.schedule, t) if team.schedule else list(team.members)
            if not found:
                unstaffed.append(target)
            users += [u for u in found if u not in users]
        return Resolved(tuple(users), tuple(dict.fromkeys(receivers)), tuple(unstaffed))

    def _on_call(self, schedule: str, t: float) -> list[str]:
        oc = self.schedules[schedule].who(t)
        return [oc.user] if oc else []


def utc(t: float) -> datetime:
    """Instant as an aware UTC date-time (for messages and tests)."""
    return datetime.fromtimestamp(t, UTC)
