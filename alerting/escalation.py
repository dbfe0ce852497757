"""Escalation: a pure state machine ``step(state, event, now) -> (state, commands)``.

One :class:`EscalationState` per incident. It walks the routed policy's levels: page a level,
wait its delay, page the next; after the last level start over ``repeat`` more times. An
acknowledgement or resolve stops it and tells everybody who was paged. Silences and
inhibition (decided by the shell, passed in as ``mute``) hold paging back without losing it;
quiet hours hold back a user for anything but SEV1, and a level nobody may receive (quiet, no
receivers, an unstaffed schedule) is skipped at once. The commands say what to do:
:class:`Notify` a :class:`Notification`, :class:`ScheduleWake` at a time, :class:`Log` a
timeline entry.

A timeline (the default demo policy: level 1 on-call now, level 2 after 5 min, repeat twice;
everybody reached through one receiver ``pager``):

>>> from monitor.config.alerting import AlertingConfig
>>> plan = Plan.from_config(AlertingConfig(default_receivers=["pager"]))
>>> inc = {"id": "inc-1", "key": "acme/volume", "topic": "acme", "kind": "volume",
...        "severity": 2, "state": "triggered", "labels": {}}
>>> t0 = 1768384800.0  # Wed 2026-01-14 10:00 UTC: ana is on call for EMEA
>>> s, cmds = step(EscalationState.new("inc-1", plan), Trigger(inc), t0)
>>> [str(c) for c in cmds]
['log escalation started', 'log level-1 paged', 'notify trigger pager ana', 'wake at +300']
>>> s, cmds = step(s, Wake(), t0 + 300)
>>> [str(c) for c in cmds]
['log level-2 paged', 'notify trigger pager lead', 'wake at +300']
>>> s, cmds = step(s, Acknowledge(inc, "lead"), t0 + 400)
>>> s.status, [str(c) for c in cmds]  # doctest: +NORMALIZE_WHITESPACE
('acknowledged',
 ['log escalation stopped', 'notify acknowledge pager ana', 'notify acknowledge pager lead'])

Without any receiver (the bare demo) nobody can be paged: that is said, and tried again later.

>>> bare = Plan.from_config(AlertingConfig())
>>> s, cmds = step(EscalationState.new("inc-1", bare), Trigger(inc), t0)
>>> [str(c) for c in cmds][1:]
['log level-1 skipped', 'log level-2 skipped', 'log nobody reachable', 'wake at +900']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from alerting.incidents import match_labels
from alerting.inhibition import Mute
from alerting.notification import Action, Notification
from alerting.routing import Router
from alerting.schedules import Directory
from monitor.config.alerting import AlertingConfig, PolicyConfig

Status = Literal["paging", "muted", "acknowledged", "resolved", "exhausted"]


# --- plan: the immutable configuration the machine reads ----------------------------------------
@dataclass(frozen=True, slots=True)
class Level:
    targets: tuple[str, ...]
    delay_seconds: float
    mode: Literal["all", "round_robin"]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    levels: tuple[Level, ...]
    repeat: int

    @classmethod
    def from_config(cls, p: PolicyConfig) -> Policy:
        levels = tuple(Level(tuple(lv.targets), lv.delay_seconds, lv.mode) for lv in p.levels)
        return cls(p.name, levels, p.repeat)


@dataclass(frozen=True, slots=True)
class Plan:
    """Policies, people, schedules and routes: everything ``step`` consults besides state."""

    policies: Mapping[str, Policy]
    directory: Directory
    router: Router
    quiet_defer_seconds: float = 900.0
    mute_recheck_seconds: float = 60.0

    @classmethod
    def from_config(cls, cfg: AlertingConfig) -> Plan:
        return cls(
            {p.name: Policy.from_config(p) for p in cfg.policies},
            Directory.from_config(cfg),
            Router.from_config(cfg.route),
            cfg.quiet_defer_seconds,
        )


# --- events ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trigger:
    """Start (or restart) paging from level 1: opened, repaged or retriggered."""

    incident: Mapping[str, Any]
    reason: str = "opened"
    mute: Mute | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """New incident snapshot (score, explanation); pages nobody."""

    incident: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Acknowledge:
    incident: Mapping[str, Any]
    who: str | None = None


@dataclass(frozen=True, slots=True)
class Resolve:
    incident: Mapping[str, Any]
    who: str | None = None


@dataclass(frozen=True, slots=True)
class Wake:
    """A timer fired (or muting may have changed); ``mute`` is the current mute decision."""

    mute: Mute | None = None


EscalationEvent = Trigger | Update | Acknowledge | Resolve | Wake


# --- commands ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Notify:
    notification: Notification

    def __str__(self) -> str:
        n = self.notification
        return f"notify {n.action} {n.receiver}" + (f" {n.recipient}" if n.recipient else "")


@dataclass(frozen=True, slots=True)
class ScheduleWake:
    at: float
    since: float = 0.0  # ``now`` when scheduled, only for a readable ``str``

    def __str__(self) -> str:
        return f"wake at +{self.at - self.since:g}"


@dataclass(frozen=True, slots=True)
class Log:
    """A timeline entry for the incident (``level-2 paged``)."""

    incident_id: str
    event: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"log {self.event}"


Command = Notify | ScheduleWake | Log


# --- state -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EscalationState:
    """Where one incident's escalation stands. ``to_dict``/``from_dict`` persist it (not the
    plan, which comes from config again), so a restart resumes at the same level on time."""

    incident_id: str
    plan: Plan = field(repr=False, compare=False)
    status: Status = "paging"
    policy: str = ""
    receivers: tuple[str, ...] = ()  # route receivers: told of every state change
    level: int = -1  # index of the level paged last
    loop: int = 0
    wake_at: float | None = None
    pass_reached: bool = False  # did this pass over the levels reach anybody?
    rr: tuple[int, ...] = ()  # round-robin cursor per level
    seq: int = 0  # notifications made so far (their ids are incident_id/seq)
    notified: tuple[tuple[str, str | None], ...] = ()  # (receiver, recipient) told of a trigger
    paged: tuple[str, ...] = ()  # users the level reached last was paged to (views show them)
    acked: tuple[str, ...] = ()  # receivers sent an acknowledge and no trigger since
    incident: Mapping[str, Any] = field(default_factory=dict, compare=False)
    mute: Mute | None = None

    @classmethod
    def new(cls, incident_id: str, plan: Plan) -> EscalationState:
        return cls(incident_id, plan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "status": self.status,
            "policy": self.policy,
            "receivers": list(self.receivers),
            "level": self.level,
            "loop": self.loop,
            "wake_at": self.wake_at,
            "pass_reached": self.pass_reached,
            "rr": list(self.rr),
            "seq": self.seq,
            "notified": [list(p) for p in self.notified],
            "paged": list(self.paged),
            "acked": list(self.acked),
            "incident": dict(self.incident),
            "mute": self.mute.to_dict() if self.mute else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], plan: Plan) -> EscalationState:
        m = d.get("mute")
        return cls(
            incident_id=str(d["incident_id"]),
            plan=plan,
            status=d["status"],
            policy=str(d["policy"]),
            receivers=tuple(d.get("receivers", ())),
            level=int(d["level"]),
            loop=int(d["loop"]),
            wake_at=d.get("wake_at"),
            pass_reached=bool(d.get("pass_reached", False)),
            rr=tuple(int(x) for x in d.get("rr", ())),
            seq=int(d.get("seq", 0)),
            notified=tuple((str(r), None if p is None else str(p)) for r, p in d["notified"]),
            # absent in states saved before it was kept: nobody shown until the next level
            paged=tuple(str(u) for u in d.get("paged", ())),
            acked=tuple(str(r) for r in d.get("acked", ())),
            incident=dict(d.get("incident", {})),
            mute=Mute(m["kind"], m["by"], m["until"]) if m else None,
        )

    @property
    def active(self) -> bool:
        """Still paging or waiting to page (a runner keeps its timer)."""
        return self.status in ("paging", "muted")


# --- the machine -------------------------------------------------------------------------------
def step(
    state: EscalationState, event: EscalationEvent, now: float
) -> tuple[EscalationState, list[Command]]:
    """Advance one incident's escalation by one event. Pure; see the module docstring."""
    if isinstance(event, Trigger):
        return _trigger(state, event, now)
    if isinstance(event, Update):
        return replace(state, incident=dict(event.incident)), []
    if isinstance(event, Acknowledge):
        return _stop(state, event.incident, "acknowledge", "acknowledged", event.who, now)
    if isinstance(event, Resolve):
        return _stop(state, event.incident, "resolve", "resolved", event.who, now)
    return _wake(state, event, now)


def _trigger(
    state: EscalationState, ev: Trigger, now: float
) -> tuple[EscalationState, list[Command]]:
    decision = state.plan.router.route(match_labels(ev.incident))
    policy = state.plan.policies[decision.policy]
    s = replace(
        state,
        status="paging",
        policy=policy.name,
        receivers=decision.receivers,
        level=-1,
        loop=0,
        wake_at=None,
        pass_reached=False,
        incident=dict(ev.incident),
        mute=None,
        rr=state.rr if len(state.rr) == len(policy.levels) else (0,) * len(policy.levels),
    )
    detail = {"reason": ev.reason, "policy": policy.name, "routes": list(decision.paths)}
    cmds: list[Command] = [Log(s.incident_id, "escalation started", detail)]
    if ev.mute is not None:
        return _hold(s, ev.mute, now, cmds)
    s, more = _notify_receivers(s, "trigger", now)
    s, page = _advance(s, now, told=frozenset(s.receivers))
    return s, cmds + more + page


def _stop(
    state: EscalationState,
    incident: Mapping[str, Any],
    action: Action,
    status: Status,
    who: str | None,
    now: float,
) -> tuple[EscalationState, list[Command]]:
    if state.status in (status, "resolved"):
        return replace(state, incident=dict(incident)), []
    was_paging = state.active
    s = replace(state, status=status, wake_at=None, incident=dict(incident), mute=None)
    cmds: list[Command] = []
    # Everyone who heard the trigger hears that it is handled, so their pager goes quiet.
    for receiver, recipient in s.notified:
        s, n = _notification(s, receiver, action, recipient, now)
        cmds.append(n)
    if was_paging:
        cmds.insert(0, Log(s.incident_id, "escalation stopped", {"by": who, "reason": status}))
    return s, cmds


def _wake(state: EscalationState, ev: Wake, now: float) -> tuple[EscalationState, list[Command]]:
    if not state.active:
        return state, []
    if ev.mute is not None:
        if state.status == "muted" and state.mute == ev.mute and (state.wake_at or 0) > now:
            return state, []
        return _hold(state, ev.mute, now, [])
    if state.status == "muted":
        # The silence ended or the inhibiting incident closed: page now, from where we were.
        s = replace(state, status="paging", mute=None, wake_at=None)
        cmds: list[Command] = [
            Log(s.incident_id, "unmuted", {"was": state.mute.to_dict() if state.mute else None})
        ]
        told: frozenset[str] = frozenset()
        if not s.notified:
            s, more = _notify_receivers(s, "trigger", now)
            cmds += more
            told = frozenset(s.receivers)
        s = replace(s, level=max(-1, s.level - 1))  # re-page the level that was held back
        s, page = _advance(s, now, told)
        return s, cmds + page
    if state.wake_at is not None and now < state.wake_at:
        return state, []
    return _advance(state, now)


def _hold(
    state: EscalationState, mute: Mute, now: float, cmds: list[Command]
) -> tuple[EscalationState, list[Command]]:
    recheck = now + state.plan.mute_recheck_seconds
    at = min(mute.until, recheck) if mute.until is not None else recheck
    s = replace(state, status="muted", mute=mute, wake_at=at)
    if state.mute != mute:
        cmds = [*cmds, Log(s.incident_id, mute.kind, mute.to_dict())]
    return s, [*cmds, ScheduleWake(at, now)]


def _advance(
    state: EscalationState, now: float, told: frozenset[str] = frozenset()
) -> tuple[EscalationState, list[Command]]:
    """Page the next level that reaches somebody; schedule the wake after it. ``told``: the
    route's receivers, told of this trigger in this same step."""
    policy = state.plan.policies[state.policy]
    s = state
    cmds: list[Command] = []
    for _ in range(len(policy.levels) * (policy.repeat + 1) + 1):
        nxt, loop = s.level + 1, s.loop
        if nxt >= len(policy.levels):
            if not s.pass_reached:
                # Nobody at all could be paged (quiet hours, empty schedules): try again later
                # without using up a repeat, so the page is late rather than lost.
                at = now + s.plan.quiet_defer_seconds
                s = replace(s, level=-1, wake_at=at, pass_reached=False)
                log = Log(s.incident_id, "nobody reachable", {"retry_at": at})
                return s, [*cmds, log, ScheduleWake(at, now)]
            if loop >= policy.repeat:
                s = replace(s, status="exhausted", wake_at=None)
                detail = {"loops": loop + 1, "policy": policy.name}
                return s, [*cmds, Log(s.incident_id, "escalation exhausted", detail)]
            nxt, loop = 0, loop + 1
            s = replace(s, pass_reached=False)
        s = replace(s, level=nxt, loop=loop)
        s, page, reached = _page_level(s, policy.levels[nxt], now, told)
        cmds += page
        if reached:
            at = now + policy.levels[nxt].delay_seconds
            s = replace(s, wake_at=at, pass_reached=True)
            return s, [*cmds, ScheduleWake(at, now)]
    raise AssertionError("unreachable: a full pass always returns")  # pragma: no cover


def _page_level(
    state: EscalationState, level: Level, now: float, told: frozenset[str] = frozenset()
) -> tuple[EscalationState, list[Command], bool]:
    plan = state.plan
    severity = int(state.incident.get("severity", 4))
    resolved = plan.directory.resolve(level.targets, now)
    users = plan.directory.users
    may = [u for u in resolved.users if users[u].may_page(now, severity)]
    quiet = [u for u in resolved.users if u not in may]
    # A user with no receivers (and no default_receivers) cannot be paged: counting them as
    # reached would log "paged", send nothing and wait out the level's delay for nobody.
    no_receiver = [u for u in may if not users[u].receivers]
    may = [u for u in may if users[u].receivers]
    s = state
    if level.mode == "round_robin" and may:
        # Start at the cursor in the level's full user list, take the first one allowed.
        cursor = s.rr[s.level] if s.level < len(s.rr) else 0
        order = [
            resolved.users[(cursor + i) % len(resolved.users)] for i in range(len(resolved.users))
        ]
        chosen = next(u for u in order if u in may)
        may = [chosen]
        rr = list(s.rr) + [0] * max(0, s.level + 1 - len(s.rr))
        rr[s.level] = resolved.users.index(chosen) + 1
        s = replace(s, rr=tuple(rr))
    s = replace(s, paged=tuple(may))
    cmds: list[Command] = []
    for user in may:
        for r in users[user].receivers:
            s, n = _notification(s, r, "trigger", user, now)
            cmds.append(n)
    for r in resolved.receivers:
        if r in told:
            # a channel that is both the route's receiver and a level's target heard this
            # trigger a moment ago: a second post at the same instant is noise (it reached)
            continue
        s, n = _notification(s, r, "trigger", None, now)
        cmds.append(n)
    number = f"level-{s.level + 1}"
    detail: dict[str, Any] = {"users": may, "receivers": list(resolved.receivers)}
    detail.update(level=s.level + 1, loop=s.loop + 1, severity=severity)
    if quiet:
        detail["quiet_hours"] = quiet
    if resolved.unstaffed:
        detail["unstaffed"] = list(resolved.unstaffed)
    if no_receiver:
        detail["no_receiver"] = no_receiver
    reached = bool(may or resolved.receivers)
    event = f"{number} paged" if reached else f"{number} skipped"
    return s, [Log(s.incident_id, event, detail), *cmds], reached


def _notify_receivers(
    state: EscalationState, action: Action, now: float
) -> tuple[EscalationState, list[Command]]:
    s = state
    cmds: list[Command] = []
    for r in s.receivers:
        s, n = _notification(s, r, action, None, now)
        cmds.append(n)
    return s, cmds


def _notification(
    state: EscalationState, receiver: str, action: Action, recipient: str | None, now: float
) -> tuple[EscalationState, Notify]:
    seq = state.seq + 1
    payload = dict(state.incident)
    payload["escalation"] = {
        "policy": state.policy,
        "level": state.level + 1,
        "loop": state.loop + 1,
        "status": state.status,
    }
    note = Notification(
        id=f"{state.incident_id}/{seq}",  # deterministic: a replayed step re-makes the same id
        receiver=receiver,
        action=action,
        dedup_key=state.incident_id,
        incident=payload,
        created_at=now,
        recipient=recipient,
        reopen=action == "trigger" and receiver in state.acked,
    )
    notified, acked = state.notified, state.acked
    if action == "trigger":
        acked = tuple(r for r in acked if r != receiver)
        if (receiver, recipient) not in notified:
            notified = (*notified, (receiver, recipient))
    elif action == "acknowledge" and receiver not in acked:
        acked = (*acked, receiver)
    return replace(state, seq=seq, notified=notified, acked=acked), Notify(note)
