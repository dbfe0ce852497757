"""``crisiswatch oncall [--at TIME]``: who is on call, who is next, who each policy pages.

>>> import io
>>> from monitor.config.alerting import AlertingConfig
>>> buf = io.StringIO()
>>> run_oncall(AlertingConfig(), parse_at("2026-01-14T10:00Z"), buf)
0
>>> print(buf.getvalue(), end="")
On call at 2026-01-14 10:00 UTC (Wed)
<BLANKLINE>
schedule follow-the-sun
  now:  ana (layer emea, 11:00 Europe/Berlin)
  next: carla from 2026-01-14 12:00 UTC, in 2h00m (layer amer)
  layer amer: carla (off duty)
  layer emea: ana (on duty)
  layer backstop: lead (on duty)
<BLANKLINE>
policy default
  level 1 at +0m: schedule:follow-the-sun -> ana
  level 2 at +5m: user:lead -> lead
  then repeats 2 more times
"""

from __future__ import annotations

from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from alerting.escalation import Policy
from alerting.schedules import Directory, OnCall, Schedule
from monitor.clock import Clock, SystemClock
from monitor.config.alerting import AlertingConfig, local_instant, parse_when, parse_zone
from monitor.errors import ConfigError


def parse_at(text: str, zone: ZoneInfo | None = None) -> datetime:
    """The ``--at`` value: ISO date-time, local to ``zone`` (UTC) when it has no offset.

    Years 1971..9998 only: every schedule computes local times around ``at``, and a day off
    the calendar's ends would overflow there (ValueError here instead). A local time that a
    clock change skips or repeats is a :class:`ConfigError` for ``--at`` (see
    :func:`local_instant`): the CLI reports it as it is, in one line, exit 2.

    >>> parse_at("2026-03-29 09:00", ZoneInfo("Europe/Berlin")).isoformat()
    '2026-03-29T09:00:00+02:00'
    >>> parse_at("2026-10-25T02:30+01:00", ZoneInfo("Europe/Berlin")).isoformat()
    '2026-10-25T02:30:00+01:00'
    >>> parse_at("2026-03-29T02:30", ZoneInfo("Europe/Berlin"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: --at: 2026-03-29 02:30 does not exist ... (got '2026-03-29T02:30')
    >>> parse_at("9999-12-31T23:59")
    Traceback (most recent call last):
    ...
    ValueError: year 9999 is outside 1971..9998
    """
    zone = zone or ZoneInfo("UTC")
    at = parse_when(text, zone)
    if not 1971 <= at.year <= 9998:
        raise ValueError(f"year {at.year} is outside 1971..9998")
    if at.tzinfo is zone:  # no offset: a wall time
        try:
            at = local_instant(at.replace(tzinfo=None), zone)
        except ValueError as exc:
            # not ValueError: the CLI words those as "expected an ISO 8601 time"
            raise ConfigError("--at", str(exc), text) from None
    return at


def _duration(seconds: float) -> str:
    """``2h05m`` / ``3d04h``.

    >>> _duration(7500), _duration(3 * 86400 + 4 * 3600 + 59)
    ('2h05m', '3d04h')
    """
    m = int(seconds // 60)
    d, h, mi = m // 1440, (m // 60) % 24, m % 60
    return f"{d}d{h:02d}h" if d else f"{h}h{mi:02d}m"


def _fmt(t: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M %Z")


def _source(oc: OnCall) -> str:
    """``override`` / ``layer emea``."""
    return oc.source.replace(":", " ")


def _schedule_lines(s: Schedule, d: Directory, t: float, zone: ZoneInfo) -> list[str]:
    lines = [f"schedule {s.name}"]
    who = s.who(t)
    if who is None:
        lines.append("  now:  nobody")
    else:
        user = d.users[who.user]
        here = datetime.fromtimestamp(t, user.zone).strftime("%H:%M")
        quiet = ", quiet hours: SEV1 only" if user.is_quiet(t) else ""
        lines.append(f"  now:  {who.user} ({_source(who)}, {here} {user.zone.key}{quiet})")
    # "next" is the next *person* (who to hand over to); a change of source alone before that
    # (the rotation ends but an override keeps the same person on) gets its own line
    change, handoff = s.next_change(t), s.next_handoff(t)
    if who is not None and change is not None and change != handoff:
        at, same = change
        src = f" ({_source(same)})" if same else ""
        lines.append(
            f"  then: {who.user} continues from {_fmt(at, zone)}, in {_duration(at - t)}{src}"
        )
    if handoff is None:
        lines.append("  next: no change of who is on call within 8 days")
    else:
        at, nxt = handoff
        name = nxt.user if nxt else "nobody"
        src = f" ({_source(nxt)})" if nxt else ""
        lines.append(f"  next: {name} from {_fmt(at, zone)}, in {_duration(at - t)}{src}")
    for layer in reversed(s.layers):
        state = "on duty" if layer.covers(t) else "off duty"
        lines.append(f"  layer {layer.name}: {layer.rotation_user(t)} ({state})")
    return lines


def _policy_lines(p: Policy, d: Directory, t: float) -> list[str]:
    lines = [f"policy {p.name}"]
    offset = 0.0
    for i, level in enumerate(p.levels, start=1):
        at = t + offset  # a later level pages whoever is on call when it is reached
        r = d.resolve(level.targets, at)
        names = [u + (" (quiet: SEV1 only)" if d.users[u].is_quiet(at) else "") for u in r.users]
        names += [f"receiver {x}" for x in r.receivers]
        mode = " (round robin)" if level.mode == "round_robin" else ""
        whom = ", ".join(names) or "nobody"
        targets = ", ".join(level.targets)
        lines.append(f"  level {i} at +{offset / 60:g}m: {targets} -> {whom}{mode}")
        offset += level.delay_seconds
    if p.repeat:
        lines.append(f"  then repeats {p.repeat} more times")
    return lines


def run_oncall(
    config: AlertingConfig, at: datetime | None, out: TextIO, *, clock: Clock | None = None
) -> int:
    """Print who is on call at ``at`` (default: now) for every schedule and policy; exit code.

    A naive ``at`` is local to ``alerting.timezone`` (ValueError if a clock change skips or
    repeats it, see :func:`local_instant`)."""
    zone = parse_zone(config.timezone)
    if at is not None and at.tzinfo is None:  # a bare --at is local to alerting.timezone
        at = local_instant(at, zone)
    t = at.timestamp() if at is not None else (clock or SystemClock()).now()
    d = Directory.from_config(config)
    stamp = datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M %Z (%a)")
    blocks = [[f"On call at {stamp}"]]
    blocks += [_schedule_lines(s, d, t, zone) for s in d.schedules.values()]
    blocks += [_policy_lines(Policy.from_config(p), d, t) for p in config.policies]
    if not d.schedules:
        blocks.append(["no schedules configured"])
    out.write("\n\n".join("\n".join(b) for b in blocks) + "\n")
    return 0
