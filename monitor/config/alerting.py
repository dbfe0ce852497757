"""Config of incidents and escalation (owned by alerting/): people, schedules, policies, routes.

Everything refers to everything else by name and every name is checked, so a typo fails at
start-up with its path (``policies[0].levels[1].targets[0]: unknown schedule 'follow-the-son'``).
Receivers (how a message leaves the process) belong to the ``delivery`` section; users and
routes name them and :func:`check_receivers` cross-checks once both sections are parsed.
With no ``alerting:`` block at all the embedded demo applies: one team covered by a
follow-the-sun schedule and a two-level policy that repeats twice.

The small parsers for the config's mini-languages live here, not in ``alerting/``, because the
kernel must not import ``alerting`` (dependencies point one way).

>>> cfg = AlertingConfig()
>>> [s.name for s in cfg.schedules], [p.name for p in cfg.policies]
(['follow-the-sun'], ['default'])
>>> AlertingConfig.model_validate({"policies": [{"name": "p", "levels": [
...     {"targets": ["schedule:nope"]}]}]})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for AlertingConfig
  Value error, @policies[0].levels[0].targets[0]: unknown schedule 'nope' ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from monitor.config.base import Section, SeverityCuts, at
from monitor.errors import ConfigError

_NAME = r"^[A-Za-z0-9_.@-]{1,64}$"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK_MINUTES = 7 * 24 * 60
MAX_LEVEL_DELAY = 7 * 86400.0
"""The longest wait of an escalation level: an incident nobody acknowledges for a week needs
a person, not a timer, and a typo (``1e300``) must not park a policy forever."""
TargetKind = Literal["user", "schedule", "team", "receiver"]
MatchOp = Literal["=", "!=", "=~", "!~"]


# --- mini-language parsers (pure) --------------------------------------------------------------
def parse_zone(name: str) -> ZoneInfo:
    """A zoneinfo time zone or ValueError.

    >>> parse_zone("Europe/Berlin").key
    'Europe/Berlin'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_clock(text: str) -> int:
    """``HH:MM`` as minutes after midnight; ``24:00`` is allowed as an end.

    >>> parse_clock("07:30"), parse_clock("24:00")
    (450, 1440)
    """
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m[2]) > 59 or int(m[1]) * 60 + int(m[2]) > 1440:
        raise ValueError(f"expected HH:MM, got {text!r}")
    return int(m[1]) * 60 + int(m[2])


def _day(text: str) -> int:
    d = text.strip().lower()[:3]
    if d not in DAYS:
        raise ValueError(f"unknown day {text!r}")
    return DAYS.index(d)


def parse_window(text: str) -> list[tuple[int, int]]:
    """A recurring local-time window as minute-of-week intervals ``[start, end)``, Monday 0.

    Forms: ``07:00-19:00`` (every day), ``mon-fri 07:00-19:00`` (days the window starts on),
    ``sat 00:00 - mon 00:00`` (one weekly span). A window whose end is not after its start
    runs past midnight; one that starts when it ends is an error (all day is ``00:00-24:00``).
    Intervals may exceed ``WEEK_MINUTES``; callers wrap them.

    >>> parse_window("mon-tue 22:00-06:00")
    [(1320, 1800), (2760, 3240)]
    >>> parse_window("fri 18:00 - mon 08:00")
    [(6840, 10560)]
    >>> len(parse_window("07:00-19:00"))
    7
    >>> parse_window("sun 00:00-24:00")
    [(8640, 10080)]
    >>> parse_window("22:00-22:00")
    Traceback (most recent call last):
    ...
    ValueError: '22:00-22:00' starts when it ends: empty or all day? (all day: 00:00-24:00)
    """
    t = text.strip().lower()
    span = re.fullmatch(r"([a-z]+)\s+(\d{1,2}:\d{2})\s*-\s*([a-z]+)\s+(\d{1,2}:\d{2})", t)
    if span:
        start = _day(span[1]) * 1440 + parse_clock(span[2])
        end = _day(span[3]) * 1440 + parse_clock(span[4])
        if end == start:
            raise ValueError(
                f"{text!r} starts when it ends: empty or always? (always: 00:00-24:00)"
            )
        if end <= start:
            end += WEEK_MINUTES
        return [(start, end)]
    daily = re.fullmatch(
        r"(?:([a-z]+)(?:\s*-\s*([a-z]+))?\s+)?(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})", t
    )
    if not daily:
        raise ValueError(
            "expected 'HH:MM-HH:MM', 'mon-fri HH:MM-HH:MM' or 'day HH:MM - day HH:MM', "
            f"got {text!r}"
        )
    if daily[1] is None:
        days = list(range(7))
    else:
        first = _day(daily[1])
        last = _day(daily[2]) if daily[2] else first
        days = [(first + i) % 7 for i in range((last - first) % 7 + 1)]
    a, b = parse_clock(daily[3]), parse_clock(daily[4])
    if a == b:
        # would read as a whole day: almost always a typo (22:00-22:00 for 22:00-07:00); a
        # whole day is written as one (00:00-24:00, e.g. quiet hours of a SEV1-only user)
        raise ValueError(f"{text!r} starts when it ends: empty or all day? (all day: 00:00-24:00)")
    if b <= a:
        b += 1440
    return [(d * 1440 + a, d * 1440 + b) for d in days]


def parse_matcher(text: str) -> tuple[str, MatchOp, str]:
    """Alertmanager-style ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

    >>> parse_matcher('severity=~"SEV1|SEV2"')
    ('severity', '=~', 'SEV1|SEV2')
    >>> parse_matcher("topic = acme")
    ('topic', '=', 'acme')
    """
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", text)
    if not m:
        raise ValueError(f"expected name=value, name!=value, name=~re or name!~re, got {text!r}")
    value = m[3]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    op: MatchOp = m[2]  # type: ignore[assignment]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from None
    return m[1], op, value


def parse_target(text: str) -> tuple[TargetKind, str]:
    """``user:ana``, ``schedule:follow-the-sun``, ``team:social``, ``receiver:slack-crisis``.

    >>> parse_target("schedule:follow-the-sun")
    ('schedule', 'follow-the-sun')
    """
    kind, sep, name = text.partition(":")
    if not sep or kind not in ("user", "schedule", "team", "receiver") or not name:
        raise ValueError(
            f"expected user:NAME, schedule:NAME, team:NAME or receiver:NAME, got {text!r}"
        )
    return kind, name  # type: ignore[return-value]


def parse_rotation(text: str) -> int:
    """A turn length (``12h``, ``1d``, ``1w``) in wall-clock seconds.

    >>> parse_rotation("1w"), parse_rotation("12h")
    (604800, 43200)
    """
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text)
    if not m or int(m[1]) == 0:
        raise ValueError(f"expected a length like 12h, 1d or 1w, got {text!r}")
    return int(m[1]) * {"h": 3600, "d": 86400, "w": 604800}[m[2]]


def clock_change(lo: int, hi: int, zone: ZoneInfo) -> int:
    """The first second of the UTC offset ``zone`` has at ``hi``, for a change that lies in
    ``(lo, hi]`` (zone transitions fall on whole seconds): found by bisection.

    >>> berlin = ZoneInfo("Europe/Berlin")  # back from CEST to CET at 01:00 UTC, 2026-10-25
    >>> t = clock_change(1_792_885_000, 1_792_890_000, berlin)
    >>> datetime.fromtimestamp(t, UTC).isoformat()
    '2026-10-25T01:00:00+00:00'
    """
    before = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if datetime.fromtimestamp(mid, zone).utcoffset() == before else (lo, mid)
    return hi


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """Naive local ``wall`` in ``zone`` as an aware date-time, or ValueError when a clock
    change skips it (spring forward) or repeats it (fall back): a guess would answer "who is
    on call" for a time nobody asked about, an hour off.

    >>> berlin = ZoneInfo("Europe/Berlin")
    >>> local_instant(datetime(2026, 3, 29, 3, 30), berlin).isoformat()
    '2026-03-29T03:30:00+02:00'
    >>> local_instant(datetime(2026, 3, 29, 2, 30), berlin)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 2026-03-29 02:30 does not exist in ...: clocks go forward from 02:00 to 03:00
    >>> local_instant(datetime(2026, 10, 25, 2, 30), berlin)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 2026-10-25 02:30 happens twice ...; add +02:00 (CEST) or +01:00 (CET)
    """
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    before, after = first.utcoffset(), second.utcoffset()  # either side of a change (PEP 495)
    if before is None or after is None or before == after:
        return first
    # the change lies between the two readings of `wall`
    lo, hi = sorted(int((wall - off).replace(tzinfo=UTC).timestamp()) for off in (before, after))
    change = datetime.fromtimestamp(clock_change(lo, hi, zone), UTC).replace(tzinfo=None)
    span = f"from {change + before:%H:%M} to {change + after:%H:%M}"
    where = f"{wall:%Y-%m-%d %H:%M} "
    if after > before:
        raise ValueError(f"{where}does not exist in {zone.key}: clocks go forward {span}")
    raise ValueError(
        f"{where}happens twice in {zone.key}: clocks go back {span}; add "
        f"{_offset(first)} ({first.tzname()}) or {_offset(second)} ({second.tzname()})"
    )


def _offset(at: datetime) -> str:
    """``+02:00``, as ``--at`` takes it (``%:z`` needs Python 3.12)."""
    z = at.strftime("%z")
    return f"{z[:3]}:{z[3:5]}"


def parse_when(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date-time; without an offset it is local time in ``zone``.

    >>> parse_when("2026-03-29T09:00", parse_zone("Europe/Berlin")).isoformat()
    '2026-03-29T09:00:00+02:00'
    >>> parse_when("2026-03-29T07:00Z", parse_zone("Europe/Berlin")).isoformat()
    '2026-03-29T07:00:00+00:00'
    """
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO date-time like 2026-01-05T09:00, got {text!r}") from None
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt


def parse_exact_when(text: str, zone: ZoneInfo) -> datetime:
    """:func:`parse_when`, but a local time a clock change skips or repeats is a ValueError
    (see :func:`local_instant`): read one way or the other it would silently move an hour.

    >>> berlin = parse_zone("Europe/Berlin")
    >>> parse_exact_when("2026-10-25T02:30+01:00", berlin).isoformat()
    '2026-10-25T02:30:00+01:00'
    >>> parse_exact_when("2026-10-25T02:30", berlin)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 2026-10-25 02:30 happens twice in Europe/Berlin: ...
    """
    when = parse_when(text, zone)
    if when.tzinfo is zone:  # written without an offset: a local wall time
        local_instant(when.replace(tzinfo=None), zone)
    return when


# --- sections ----------------------------------------------------------------------------------
def _checked(parse: Callable[[str], object]) -> AfterValidator:
    """A pydantic validator that accepts a string when `parse` does (its ValueError says why)."""

    def check(v: str) -> str:
        parse(v)
        return v

    return AfterValidator(check)


# Strings checked at load by the parser the runtime uses; in a list the bad item's index is
# part of the error path (``alerting.policies[0].levels[1].targets[1]``).
TimeZone = Annotated[str, _checked(parse_zone)]
Window = Annotated[str, _checked(parse_window)]
Rotation = Annotated[str, _checked(parse_rotation)]
Instant = Annotated[str, _checked(lambda v: parse_when(v, ZoneInfo("UTC")))]
Target = Annotated[str, _checked(parse_target)]
Matcher = Annotated[str, _checked(parse_matcher)]


class IncidentSettings(Section):
    """How incidents open, wait for a human and close."""

    ack_timeout_seconds: float = Field(default=1800.0, ge=0)
    """An acknowledged incident re-triggers when nobody resolves it for this long (0 = never)."""
    auto_resolve_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Resolve when no active verdict arrived for this long (a safety net behind detection)."""
    keep_resolved_seconds: float = Field(default=86_400.0, ge=0)
    """Resolved incidents stay in the book (and on the wall) this long."""
    repage_on_severity_jump: bool = True
    """An incident that becomes worse than it was paged at (SEV3 -> SEV2) pages again from
    level 1, an acknowledged one too."""
    severity_thresholds: SeverityCuts = (0.95, 0.85, 0.7)
    """Used only when a verdict carries no severity; same meaning as in ``detection``."""
    max_timeline: int = Field(default=1000, ge=10)
    """Timeline entries an incident keeps: the opening one and the newest."""


class UserConfig(Section):
    """A person who can be paged."""

    name: str = Field(pattern=_NAME)
    """What schedules, teams, levels (`user:<name>`) and overrides call this user."""
    full_name: str | None = None
    """Shown for the user on the wall (on call, paged); null: `name`."""
    timezone: TimeZone = "UTC"
    """The user's time zone: `quiet_hours` are read in it, and the wall's on-call rows show the
    user's local time in it (a user without one: in the schedule layer's zone)."""
    quiet_hours: Window | None = None
    """Local window (``22:00-07:00``) in which only SEV1 may page this user."""
    receivers: list[str] = []
    """How to reach this user; empty means ``alerting.default_receivers``."""
    contact: dict[str, str] = {}
    """Addresses the receivers use, e.g. ``{"email": "ana@example.org", "slack": "@ana"}``."""


class LayerConfig(Section):
    """One rotation: ``users`` take turns of ``rotation`` starting at local time ``start``."""

    name: str = Field(default="layer", pattern=_NAME)
    """Shown with whose turn it is (`layer emea`) by `crisiswatch oncall` and on the wall."""
    users: list[str] = Field(min_length=1)
    """Users taking turns, in this order (names from `alerting.users`)."""
    timezone: TimeZone | None = None
    """Defaults to the schedule's time zone; handoffs happen at local wall time (DST-correct)."""
    start: Instant = "2024-01-01T09:00"
    """A handoff instant; turns repeat from here in both directions. Without an offset it is
    local to the layer's zone, and a local time a clock change skips or repeats is an error.
    Turns hand off at its local time; where a fall-back repeats that time, at the first one."""
    rotation: Rotation = "1w"
    """Length of one turn: `12h`, `1d`, `1w` (a number and h, d or w), in local wall time."""
    restrictions: list[Window] = []
    """Local windows the layer covers (``07:00-19:00``, ``mon-fri 09:00-17:00``); empty = always."""


class OverrideConfig(Section):
    """``user`` covers the schedule from ``start`` to ``end`` (ISO; local to the schedule)."""

    user: str
    """Who is on call instead (a name from `alerting.users`)."""
    start: str
    """When the override begins: ISO date-time; without an offset, local to the schedule."""
    end: str
    """When it ends (after `start`), in the same form; a local time a clock change skips or
    repeats is an error."""


class ScheduleConfig(Section):
    """Layers stacked bottom to top: a later layer wins where it is on duty; overrides win all."""

    name: str = Field(pattern=_NAME)
    """What teams and levels (`schedule:<name>`) call it."""
    timezone: TimeZone = "UTC"
    """Zone of its overrides' local times, and of every layer that names none."""
    layers: list[LayerConfig] = Field(min_length=1)
    """Rotations, bottom first: the highest layer on duty at an instant wins."""
    overrides: list[OverrideConfig] = []
    """Stand-ins for a span of time; they win over every layer (the latest covering wins)."""

    @model_validator(mode="after")
    def _local_times(self) -> ScheduleConfig:
        zone = parse_zone(self.timezone)
        # a layer's start is checked like an override's (QA): a start the spring-forward skips
        # or the fall-back repeats is a slip nobody should have to discover at the handoff
        for j, layer in enumerate(self.layers):
            try:
                parse_exact_when(layer.start, parse_zone(layer.timezone or self.timezone))
            except ValueError as exc:
                raise at(f"layers[{j}].start", str(exc)) from None
        for i, o in enumerate(self.overrides):
            for f in ("start", "end"):
                try:
                    parse_exact_when(getattr(o, f), zone)
                except ValueError as exc:
                    raise at(f"overrides[{i}].{f}", str(exc)) from None
            if parse_when(o.end, zone) <= parse_when(o.start, zone):
                raise at(f"overrides[{i}].end", f"{o.end!r} is not after start {o.start!r}")
        spans = [(parse_when(o.start, zone), parse_when(o.end, zone)) for o in self.overrides]
        for i, (start, end) in enumerate(spans):
            # the latest covering override wins: one the later ones cover whole is never in
            # force, and the stand-in it names would learn that only when nobody called (QA)
            if (by := _covered(start, end, spans[i + 1 :])) is not None:
                raise at(
                    f"overrides[{i}]",
                    f"never in force: overrides[{i + 1 + by}] (listed later, so it wins) covers"
                    f" all of {self.overrides[i].start!r} to {self.overrides[i].end!r}",
                )
        return self


def _covered(start: datetime, end: datetime, later: list[tuple[datetime, datetime]]) -> int | None:
    """The index in ``later`` of the span that completes covering ``[start, end)``, or None
    when part of it stays uncovered.

    >>> t = [datetime(2026, 1, d, tzinfo=UTC) for d in range(1, 6)]
    >>> _covered(t[1], t[3], [(t[0], t[2]), (t[2], t[4])]), _covered(t[1], t[4], [(t[0], t[3])])
    (1, None)
    """
    reached, last = start, None
    for j, (s, e) in sorted(enumerate(later), key=lambda x: x[1][0]):
        if s > reached:
            break
        if e > reached:
            reached, last = e, j
        if reached >= end:
            return last
    return None


class TeamConfig(Section):
    """A group; as a target it pages the team's schedule if it has one, else every member."""

    name: str = Field(pattern=_NAME)
    """What levels call it (`team:<name>`)."""
    members: list[str] = []
    """Users of the team: the ones a `team:` target pages when the team has no schedule."""
    schedule: str | None = None
    """The schedule whose on-call person is paged for the team; null: every member (a team
    needs members or a schedule)."""


class LevelConfig(Section):
    """One escalation step: page ``targets`` then wait ``delay_seconds`` for an acknowledgement."""

    targets: list[Target] = Field(min_length=1)
    """Who is paged: `user:NAME`, `schedule:NAME` (whoever is on call then), `team:NAME` or
    `receiver:NAME` (a channel, paged without a recipient)."""
    delay_seconds: float = Field(default=300.0, ge=0, le=MAX_LEVEL_DELAY)
    """Seconds to wait for an acknowledgement before the next level; at most 7 days."""
    mode: Literal["all", "round_robin"] = "all"
    """``all``: every target at once; ``round_robin``: one target per visit, the next next time."""


class PolicyConfig(Section):
    """Ordered levels; after the last one the policy starts over ``repeat`` more times."""

    name: str = Field(pattern=_NAME)
    """What routes call it (`policy:`)."""
    levels: list[LevelConfig] = Field(min_length=1)
    """Escalation steps, in order."""
    repeat: int = Field(default=2, ge=0, le=20)
    """Rounds after the first; then the escalation is exhausted and pages nobody more until a
    re-page (a worse severity). Above 0 the last level needs a delay: its time to answer before
    the next round pages the first level again."""

    @model_validator(mode="after")
    def _loops_take_time(self) -> PolicyConfig:
        # The last level's delay is its time to answer before the next round pages level 1:
        # at 0 both went out in the same second, and with every delay 0 all the rounds did,
        # then "exhausted" before anyone could have answered (QA).
        last = len(self.levels) - 1
        if self.repeat and not self.levels[last].delay_seconds:
            given = "" if "repeat" in self.model_fields_set else ", the default"
            raise at(
                f"levels[{last}].delay_seconds",
                f"0 with repeat {self.repeat}{given}: the last level's page and the next"
                " round's first would go out at once; give it time to answer, or set repeat 0",
            )
        return self


class RouteConfig(Section):
    """A node of the routing tree (Alertmanager-like): first matching child wins unless
    ``continue`` is set; ``policy`` and ``receivers`` are inherited when left empty."""

    matchers: list[Matcher] = []
    """Incident labels this node matches (`name=value`, `!=`, `=~`, `!~`; all must hold); empty:
    any. The root always matches."""
    policy: str | None = None
    """Escalation policy of the incidents this node takes (the root must name one); null: the
    parent's."""
    receivers: list[str] = []
    """Told about every state change (trigger/ack/resolve) without escalation, e.g. a channel."""
    continue_: bool = Field(default=False, alias="continue")
    """Go on to the next sibling after this node matched, adding its receivers (the policy is
    the first match's)."""
    routes: list[RouteConfig] = []
    """Child nodes, tried in order; the first that matches refines this one."""


class SilenceConfig(Section):
    """A maintenance window: matching incidents page nobody between ``start`` and ``end``."""

    id: str | None = None
    """Unique id (the API expires a silence by it); null: `config-<index>`, which changes when
    a silence is inserted before it."""
    matchers: list[Matcher] = Field(min_length=1)
    """Incident labels a silenced incident matches (all of them; Alertmanager syntax)."""
    start: str
    """ISO date-time the silence begins; UTC unless it gives an offset."""
    end: str
    """ISO date-time it ends (after `start`); the held escalations page then."""
    author: str = Field(min_length=1)
    """Who set it (not blank)."""
    comment: str = Field(min_length=1)
    """Why (not blank)."""

    @model_validator(mode="after")
    def _span(self) -> SilenceConfig:
        utc = ZoneInfo("UTC")
        try:
            start = parse_when(self.start, utc)
        except ValueError as exc:
            raise at("start", str(exc)) from None
        try:
            end = parse_when(self.end, utc)
        except ValueError as exc:
            raise at("end", str(exc)) from None
        if end <= start:
            raise at("end", f"{self.end!r} is not after start {self.start!r}")
        # The runtime refuses a blank author or comment; refuse it here, where the path is known.
        for f in ("author", "comment"):
            if not getattr(self, f).strip():
                raise at(f, "must not be blank")
        return self


class InhibitRuleConfig(Section):
    """While an open incident matches ``source_matchers``, incidents matching
    ``target_matchers`` with equal values of ``equal`` labels page nobody."""

    source_matchers: list[Matcher] = ["severity=SEV1"]
    """Labels of an open incident that mutes others."""
    target_matchers: list[Matcher] = ["severity=~SEV[234]"]
    """Labels of the incidents it mutes (an incident matching both sides is not muted by one
    that does too)."""
    equal: list[str] = ["topic"]
    """Labels both incidents must have equal values of (e.g. the same topic)."""


_DEMO_USERS = [
    UserConfig(name="ana", full_name="Ana (Berlin)", timezone="Europe/Berlin"),
    UserConfig(name="ben", full_name="Ben (Lisbon)", timezone="Europe/Lisbon"),
    UserConfig(name="carla", full_name="Carla (New York)", timezone="America/New_York"),
    UserConfig(name="dan", full_name="Dan (Chicago)", timezone="America/Chicago"),
    UserConfig(
        name="lead",
        full_name="Team lead (Berlin)",
        timezone="Europe/Berlin",
        quiet_hours="22:00-07:00",
    ),
]
_DEMO_SCHEDULE = ScheduleConfig(
    name="follow-the-sun",
    timezone="UTC",
    layers=[
        # bottom: the lead backs up the hours neither region covers
        LayerConfig(name="backstop", users=["lead"], timezone="Europe/Berlin", rotation="1w"),
        LayerConfig(
            name="emea",
            users=["ana", "ben"],
            timezone="Europe/Berlin",
            start="2024-01-01T07:00",
            rotation="1w",
            restrictions=["07:00-19:00"],
        ),
        LayerConfig(
            name="amer",
            users=["carla", "dan"],
            timezone="America/New_York",
            start="2024-01-01T07:00",
            rotation="1w",
            restrictions=["07:00-19:00"],
        ),
    ],
)


class AlertingConfig(Section):
    """Incidents and who is paged for them: people, schedules, teams, escalation policies,
    routing, silences and inhibition. Every default but `incidents` is the built-in demo."""

    incidents: IncidentSettings = IncidentSettings()
    """How incidents open, wait for a human and close."""
    timezone: TimeZone = "UTC"
    """Time zone ``crisiswatch oncall`` prints in."""
    default_receivers: list[str] = []
    """Receivers for users that name none (e.g. one PagerDuty service for the whole team)."""
    quiet_defer_seconds: float = Field(default=900.0, gt=0)
    """When every target of a whole pass is in quiet hours, try again after this long."""
    users: list[UserConfig] = _DEMO_USERS
    """People who can be paged; default: the demo's five, who have no receivers of their own."""
    teams: list[TeamConfig] = [
        TeamConfig(
            name="social", members=["ana", "ben", "carla", "dan", "lead"], schedule="follow-the-sun"
        )
    ]
    """Groups of users; default: the demo's team `social`."""
    schedules: list[ScheduleConfig] = [_DEMO_SCHEDULE]
    """On-call schedules; default: the demo's `follow-the-sun`."""
    policies: list[PolicyConfig] = [
        PolicyConfig(
            name="default",
            levels=[
                LevelConfig(targets=["schedule:follow-the-sun"], delay_seconds=300),
                LevelConfig(targets=["user:lead"], delay_seconds=300),
            ],
            repeat=2,
        )
    ]
    """Escalation policies; default: the demo's `default` (on call, then the lead; 2 repeats)."""
    route: RouteConfig = RouteConfig(policy="default")
    """The root of the routing tree: which policy and receivers an incident gets."""
    silences: list[SilenceConfig] = []
    """Maintenance windows from the config (more are added over the API)."""
    inhibit_rules: list[InhibitRuleConfig] = [InhibitRuleConfig()]
    """Rules by which one open incident mutes others; default: an open SEV1 mutes SEV2-4 of its
    topic."""

    @model_validator(mode="after")
    def _references(self) -> AlertingConfig:
        users = _unique("users", (u.name for u in self.users))
        schedules = _unique("schedules", (s.name for s in self.schedules))
        teams = _unique("teams", (t.name for t in self.teams))
        policies = _unique("policies", (p.name for p in self.policies))
        # the demo's schedules, teams, policies and route name the demo's people: an operator
        # who set only `users` never wrote the path the error names, so say where it is from
        demo = {
            key: f" (the built-in demo {what}; define alerting.{key} too)"
            for key, what in [
                ("schedules", "schedule"),
                ("teams", "team"),
                ("policies", "policy"),
                ("route", "route"),
            ]
            if key not in self.model_fields_set
        }
        for i, s in enumerate(self.schedules):
            hint = demo.get("schedules", "")
            for j, layer in enumerate(s.layers):
                for k, u in enumerate(layer.users):
                    if u not in users:
                        path = f"schedules[{i}].layers[{j}].users[{k}]"
                        raise at(path, f"unknown user {u!r}{hint}")
            for j, o in enumerate(s.overrides):
                if o.user not in users:
                    raise at(
                        f"schedules[{i}].overrides[{j}].user", f"unknown user {o.user!r}{hint}"
                    )
        for i, t in enumerate(self.teams):
            hint = demo.get("teams", "")
            for k, u in enumerate(t.members):
                if u not in users:
                    raise at(f"teams[{i}].members[{k}]", f"unknown user {u!r}{hint}")
            if t.schedule is not None and t.schedule not in schedules:
                raise at(f"teams[{i}].schedule", f"unknown schedule {t.schedule!r}{hint}")
            if t.schedule is None and not t.members:
                raise at(f"teams[{i}]", "needs members or a schedule")
        known = {"user": users, "schedule": schedules, "team": teams}
        for i, p in enumerate(self.policies):
            for j, level in enumerate(p.levels):
                for k, target in enumerate(level.targets):
                    kind, name = parse_target(target)
                    if kind != "receiver" and name not in known[kind]:
                        path = f"policies[{i}].levels[{j}].targets[{k}]"
                        raise at(path, f"unknown {kind} {name!r}{demo.get('policies', '')}")
        for path, route in _walk(self.route, "route"):
            if route.policy is not None and route.policy not in policies:
                hint = demo.get("route", "")
                raise at(f"{path}.policy", f"unknown policy {route.policy!r}{hint}")
        if self.route.policy is None:
            raise at("route.policy", "the root route needs a policy")
        ids: set[str] = set()
        for i, sil in enumerate(self.silences):
            sid = sil.id if sil.id is not None else f"config-{i}"  # the id SilenceBook gives it
            if sid in ids:
                raise at(f"silences[{i}].id", f"duplicate silence id {sid!r}")
            ids.add(sid)
        return self

    def receiver_references(self) -> list[tuple[str, str]]:
        """Every ``(path, receiver name)`` this section mentions, for :func:`check_receivers`."""
        refs = [(f"default_receivers[{i}]", r) for i, r in enumerate(self.default_receivers)]
        for i, u in enumerate(self.users):
            refs += [(f"users[{i}].receivers[{j}]", r) for j, r in enumerate(u.receivers)]
        for i, p in enumerate(self.policies):
            for j, level in enumerate(p.levels):
                for k, target in enumerate(level.targets):
                    kind, name = parse_target(target)
                    if kind == "receiver":
                        refs.append((f"policies[{i}].levels[{j}].targets[{k}]", name))
        for path, route in _walk(self.route, "route"):
            refs += [(f"{path}.receivers[{j}]", r) for j, r in enumerate(route.receivers)]
        return refs


def check_receivers(alerting: AlertingConfig, receiver_names: Iterable[str]) -> None:
    """Raise :class:`ConfigError` (path under ``alerting``) for a receiver nobody defined.

    The composition root calls this with the names of ``delivery.receivers``.

    >>> cfg = AlertingConfig(default_receivers=["pager"])
    >>> check_receivers(cfg, ["pager"])
    >>> check_receivers(cfg, [])
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: alerting.default_receivers[0]: undefined receiver 'pager'
    """
    names = set(receiver_names)
    for path, name in alerting.receiver_references():
        if name not in names:
            raise ConfigError(f"alerting.{path}", f"undefined receiver {name!r}")


def _unique(what: str, names: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise at(f"{what}[{i}].name", f"duplicate name {n!r}")
        seen.add(n)
    return seen


def _walk(route: RouteConfig, path: str) -> Iterable[tuple[str, RouteConfig]]:
    yield path, route
    for i, child in enumerate(route.routes):
        yield from _walk(child, f"{path}.routes[{i}]")
