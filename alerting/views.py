"""What the wall shows of alerting: escalation progress per incident, and who is on call now.

Pure functions over the escalation state and the directory; the composition root publishes
their results on the hub (`incident["escalation"]`, topics `escalation` and `oncall`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerting.escalation import EscalationState
from alerting.schedules import Directory


def escalation_summary(state: EscalationState) -> dict[str, Any]:
    """Level reached, who it paged, when the next level is due, who that one pages.

    >>> from monitor.config.alerting import AlertingConfig
    >>> from alerting.escalation import Plan
    >>> plan = Plan.from_config(AlertingConfig())
    >>> st = EscalationState.new("inc-1", plan)
    >>> s = escalation_summary(st)
    >>> s["status"], s["level"], s["paged"], s["nobody_reachable"]
    ('paging', -1, [], False)
    """
    policy = state.plan.policies.get(state.policy)
    levels = policy.levels if policy else ()

    def named(user: str) -> dict[str, str]:
        u = state.plan.directory.users.get(user)
        return {"user": user, "name": (u.full_name if u and u.full_name else user)}

    paged = [named(user) for user in state.paged]
    # everyone a trigger reached: the level reached last may have paged nobody (quiet hours),
    # and an exhausted escalation then showed no one at all (QA)
    ever = dict.fromkeys(r for _, r in state.notified if r)
    # A muted escalation re-pages the level it was held at when the mute lifts; after the last
    # level of the last loop comes exhaustion, not level 1 again.
    nxt = max(state.level, 0) if state.status == "muted" else state.level + 1
    last_loop = policy is not None and state.loop >= policy.repeat
    next_targets: list[str] = []
    if state.wake_at is not None and levels and not (nxt >= len(levels) and last_loop):
        level = levels[nxt % len(levels)]
        next_targets = list(state.plan.directory.resolve(level.targets, state.wake_at).users)
    # a pass over every level that paged nobody (quiet hours, no receivers) leaves the machine
    # before level 1 with a retry due: without saying so the wall showed it as escalating
    nobody = state.status == "paging" and state.level < 0 and state.wake_at is not None
    return {
        "incident_id": state.incident_id,
        "status": state.status,
        "policy": state.policy,
        "level": state.level,
        "levels": len(levels),
        "loop": state.loop,
        "paged": paged,
        "paged_before": [named(user) for user in ever],
        "next_escalation_at": state.wake_at,
        "next_targets": next_targets,
        "nobody_reachable": nobody,  # the wall shows it instead of a countdown
        "muted": state.mute is not None,
        "mute": state.mute.to_dict() if state.mute is not None else None,  # silenced / inhibited
    }


def oncall_summary(directory: Directory, now: float) -> dict[str, Any]:
    """Per schedule layer ("region"): whose turn it is, on duty or not, and their local time.

    An override in force comes first as region ``override`` (with ``until``): it wins over
    every layer, so the wall must not show only the layers' people then.

    >>> from monitor.config.alerting import AlertingConfig
    >>> d = Directory.from_config(AlertingConfig())
    >>> view = oncall_summary(d, 1_795_000_000.0)
    >>> sorted(view["regions"][0])
    ['local_time', 'name', 'on_duty', 'region', 'schedule', 'timezone', 'user']
    """
    regions: list[dict[str, Any]] = []
    for schedule in directory.schedules.values():
        override = next((o for o in reversed(schedule.overrides) if o.start <= now < o.end), None)
        if override is not None:  # the one Schedule.who picks
            u = directory.users.get(override.user)
            zone = u.zone if u else schedule.zone
            regions.append(
                {
                    "schedule": schedule.name,
                    "region": "override",
                    "user": override.user,
                    "name": (u.full_name if u and u.full_name else override.user),
                    "timezone": zone.key,
                    "local_time": datetime.fromtimestamp(now, zone).strftime("%H:%M"),
                    "on_duty": True,
                    "until": override.end,
                }
            )
        for layer in reversed(schedule.layers):
            user = layer.rotation_user(now)
            u = directory.users.get(user)
            # the person's own clock (is it 3 a.m. for them?), as `crisiswatch oncall` shows
            # it; the layer's only for a user whose zone the config does not give
            zone = u.zone if u is not None and u.zone_given else layer.zone
            regions.append(
                {
                    "schedule": schedule.name,
                    "region": layer.name,
                    "user": user,
                    "name": (u.full_name if u and u.full_name else user),
                    "timezone": zone.key,
                    "local_time": datetime.fromtimestamp(now, zone).strftime("%H:%M"),
                    "on_duty": layer.covers(now),
                }
            )
    return {"t": now, "regions": regions}
