"""Escalation state machine as fake-clock timelines: every step kind, written as "t=300 ...".

Times in the expected lines are seconds after the crisis (t=0).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alerting.escalation import (
    Acknowledge,
    EscalationEvent,
    EscalationState,
    Log,
    Notify,
    Plan,
    Resolve,
    ScheduleWake,
    Trigger,
    Update,
    Wake,
    step,
)
from alerting.inhibition import Mute
from alerting.notification import Notification
from monitor.config.alerting import AlertingConfig

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()  # 11:00 Berlin, 05:00 New York


def config(**over: Any) -> AlertingConfig:
    base: dict[str, Any] = {
        "users": [
            {"name": "ana", "receivers": ["pager"]},
            {"name": "ben", "receivers": ["pager"]},
            {"name": "carla", "receivers": ["pager", "mail"]},
            {"name": "lead", "receivers": ["pager"], "timezone": "Europe/Berlin"},
        ],
        "schedules": [{"name": "primary", "layers": [{"users": ["ana"]}]}],
        "teams": [{"name": "crew", "members": ["ana", "ben", "carla"]}],
        "policies": [
            {
                "name": "default",
                "levels": [
                    {"targets": ["schedule:primary"], "delay_seconds": 300},
                    {"targets": ["user:lead"], "delay_seconds": 300},
                ],
                "repeat": 2,
            }
        ],
        "route": {"policy": "default"},
    }
    base.update(over)
    return AlertingConfig.model_validate(base)


def incident(severity: int = 3, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": "inc-1",
        "key": "acme/volume",
        "topic": "acme",
        "kind": "volume",
        "severity": severity,
        "state": "triggered",
        "labels": {},
    }
    d.update(over)
    return d


class Sim:
    """Drives ``step`` like the runner does: one pending wake, fired when time reaches it."""

    def __init__(self, cfg: AlertingConfig, inc_id: str = "inc-1") -> None:
        self.state = EscalationState.new(inc_id, Plan.from_config(cfg))
        self.lines: list[str] = []
        self.notes: list[Notification] = []
        self.wake: float | None = None

    def do(self, event: EscalationEvent, t: float) -> None:
        self.state, cmds = step(self.state, event, T0 + t)
        for c in cmds:
            if isinstance(c, Notify):
                self.notes.append(c.notification)
                self.lines.append(f"t={t:g} {c}")
            elif isinstance(c, Log):
                self.lines.append(f"t={t:g} {c.event}")
            elif isinstance(c, ScheduleWake):
                self.wake = c.at - T0

    def run_until(self, t: float, mute: Mute | None = None) -> None:
        while self.wake is not None and self.wake <= t:
            at, self.wake = self.wake, None
            self.do(Wake(mute), at)

    def pages(self) -> list[str]:
        return [x for x in self.lines if "escalation started" not in x]


def test_levels_delays_and_repeat_loops_until_exhausted() -> None:
    sim = Sim(config())
    # at t=0 crisis: level 1 (the schedule's on-call) is paged
    sim.do(Trigger(incident()), 0)
    sim.run_until(10_000)
    assert sim.pages() == [
        "t=0 level-1 paged",
        "t=0 notify trigger pager ana",
        "t=300 level-2 paged",
        "t=300 notify trigger pager lead",
        "t=600 level-1 paged",  # loop 2
        "t=600 notify trigger pager ana",
        "t=900 level-2 paged",
        "t=900 notify trigger pager lead",
        "t=1200 level-1 paged",  # loop 3 (repeat: 2)
        "t=1200 notify trigger pager ana",
        "t=1500 level-2 paged",
        "t=1500 notify trigger pager lead",
        "t=1800 escalation exhausted",
    ]
    assert sim.state.status == "exhausted" and not sim.state.active


def test_acknowledge_stops_paging_and_tells_everyone_paged() -> None:
    sim = Sim(config())
    sim.do(Trigger(incident()), 0)
    sim.run_until(300)
    # at t=400 lead acknowledges: ana and lead hear it, level 1 is not paged again at t=600
    sim.do(Acknowledge(incident(state="acknowledged"), "lead"), 400)
    sim.run_until(10_000)
    assert sim.pages()[-3:] == [
        "t=400 escalation stopped",
        "t=400 notify acknowledge pager ana",
        "t=400 notify acknowledge pager lead",
    ]
    assert sim.state.status == "acknowledged" and sim.state.wake_at is None
    # a second acknowledgement is a no-op; resolve tells them again
    sim.do(Acknowledge(incident(), "ana"), 500)
    sim.do(Resolve(incident(state="resolved"), "lead"), 900)
    assert sim.pages()[-2:] == ["t=900 notify resolve pager ana", "t=900 notify resolve pager lead"]
    sim.do(Acknowledge(incident(), "ana"), 950)  # too late: resolved stays resolved
    assert sim.state.to_dict()["status"] == "resolved" and sim.pages()[-1].startswith("t=900")


def test_a_re_page_after_an_ack_reopens_once_per_receiver() -> None:
    """PagerDuty appends a trigger for an acknowledged alert to its log and rings nobody: the
    re-page after an ack timeout went nowhere (QA, tenth session). The first trigger to each
    receiver that heard the acknowledge says ``reopen``; the next level's does not."""
    sim = Sim(config())
    sim.do(Trigger(incident()), 0)
    sim.run_until(300)
    sim.do(Acknowledge(incident(state="acknowledged"), "lead"), 400)
    sim.do(Trigger(incident(), reason="retriggered"), 2200)
    sim.run_until(2500)
    assert [(n.action, n.recipient, n.reopen) for n in sim.notes] == [
        ("trigger", "ana", False),
        ("trigger", "lead", False),
        ("acknowledge", "ana", False),
        ("acknowledge", "lead", False),
        ("trigger", "ana", True),
        ("trigger", "lead", False),
    ]
    restored = EscalationState.from_dict(sim.state.to_dict(), sim.state.plan)
    assert restored.acked == sim.state.acked == ()


def test_resolve_while_paging() -> None:
    sim = Sim(config())
    sim.do(Trigger(incident()), 0)
    sim.do(Resolve(incident(state="resolved"), "detector"), 120)
    sim.run_until(10_000)
    assert sim.pages()[-2:] == ["t=120 escalation stopped", "t=120 notify resolve pager ana"]


def test_notify_all_dedups_users_and_includes_receiver_targets() -> None:
    cfg = config(
        policies=[
            {
                "name": "default",
                "levels": [
                    {"targets": ["schedule:primary", "user:ana", "team:crew", "receiver:slack"]}
                ],
                "repeat": 0,
            }
        ]
    )
    sim = Sim(cfg)
    sim.do(Trigger(incident()), 0)
    assert sim.pages() == [
        "t=0 level-1 paged",
        "t=0 notify trigger pager ana",
        "t=0 notify trigger pager ben",
        "t=0 notify trigger pager carla",
        "t=0 notify trigger mail carla",
        "t=0 notify trigger slack",
    ]


def round_robin_sim(**over: Any) -> Sim:
    """The crew paged one member per visit, three loops, run to the end."""
    level = {"targets": ["team:crew"], "delay_seconds": 60, "mode": "round_robin"}
    cfg = config(policies=[{"name": "default", "levels": [level], "repeat": 3}], **over)
    sim = Sim(cfg)
    sim.do(Trigger(incident()), 0)
    sim.run_until(10_000)
    return sim


def test_round_robin_pages_one_member_per_visit() -> None:
    sim = round_robin_sim()
    who = [x.split()[-1] for x in sim.pages() if "notify trigger pager" in x]
    assert who == ["ana", "ben", "carla", "ana"]
    assert sim.pages()[-1] == "t=240 escalation exhausted"


def test_route_receivers_hear_every_state_change() -> None:
    cfg = config(
        route={
            "policy": "default",
            "routes": [{"matchers": ["topic=acme"], "receivers": ["slack-crisis"]}],
        }
    )
    sim = Sim(cfg)
    sim.do(Trigger(incident()), 0)
    sim.do(Acknowledge(incident(), "ana"), 30)
    sim.do(Resolve(incident(), "ana"), 60)
    assert [x for x in sim.lines if "slack-crisis" in x] == [
        "t=0 notify trigger slack-crisis",
        "t=30 notify acknowledge slack-crisis",
        "t=60 notify resolve slack-crisis",
    ]
    assert sim.lines[0] == "t=0 escalation started"


def test_a_channel_both_route_receiver_and_level_target_hears_a_trigger_once() -> None:
    """The production example at night: level 1 (the lead, quiet) is skipped and level 2 names
    the channel the route already told: it was posted twice at the same instant."""
    cfg = config(
        policies=[
            {
                "name": "default",
                "levels": [
                    {"targets": ["user:lead"], "delay_seconds": 300},
                    {"targets": ["user:ana", "receiver:slack-crisis"], "delay_seconds": 300},
                ],
                "repeat": 0,
            }
        ],
        route={"policy": "default", "receivers": ["slack-crisis"]},
    )
    sim = Sim(cfg)
    sim.do(Trigger(incident()), 0)
    sim.run_until(400)
    assert sim.pages() == [
        "t=0 notify trigger slack-crisis",
        "t=0 level-1 paged",
        "t=0 notify trigger pager lead",
        "t=300 level-2 paged",
        "t=300 notify trigger pager ana",
        "t=300 notify trigger slack-crisis",  # later: the escalation is news to the channel
    ]
    night = config(
        users=[
            {"name": "ana", "receivers": ["pager"], "quiet_hours": "00:00-23:59"},
            {"name": "lead", "receivers": ["pager"], "quiet_hours": "00:00-23:59"},
        ],
        schedules=[],
        teams=[],
        policies=cfg.model_dump()["policies"],
        route={"policy": "default", "receivers": ["slack-crisis"]},
    )
    sim = Sim(night)
    sim.do(Trigger(incident()), 0)
    assert sim.pages() == [
        "t=0 notify trigger slack-crisis",
        "t=0 level-1 skipped",
        "t=0 level-2 paged",  # reached: the channel heard it
    ]
    sim.do(Resolve(incident(), "ana"), 60)
    assert sim.pages()[-1:] == ["t=60 notify resolve slack-crisis"]


def test_routing_picks_the_policy_by_severity() -> None:
    cfg = config(
        policies=[
            {"name": "default", "levels": [{"targets": ["user:ana"]}], "repeat": 0},
            {"name": "major", "levels": [{"targets": ["user:lead", "user:carla"]}], "repeat": 0},
        ],
        route={
            "policy": "default",
            "routes": [{"matchers": ["severity=~SEV1|SEV2"], "policy": "major"}],
        },
    )
    minor, major = Sim(cfg), Sim(cfg)
    minor.do(Trigger(incident(severity=3)), 0)
    major.do(Trigger(incident(severity=1)), 0)
    assert [x for x in minor.lines if "notify" in x] == ["t=0 notify trigger pager ana"]
    assert [x for x in major.lines if "notify" in x] == [
        "t=0 notify trigger pager lead",
        "t=0 notify trigger pager carla",
        "t=0 notify trigger mail carla",
    ]
    assert major.state.policy == "major"


QUIET = [
    {
        "name": "ana",
        "receivers": ["pager"],
        "timezone": "Europe/Berlin",
        "quiet_hours": "09:00-17:00",
    },
    {"name": "ben", "receivers": ["pager"]},
    {"name": "carla", "receivers": ["pager"]},
    {"name": "lead", "receivers": ["pager"]},
]


def test_quiet_hours_skip_a_level_but_sev1_breaks_them() -> None:
    # 11:00 Berlin falls in ana's (test) quiet hours
    sim = Sim(config(users=QUIET))
    sim.do(Trigger(incident(severity=2)), 0)
    assert sim.pages() == [
        "t=0 level-1 skipped",
        "t=0 level-2 paged",
        "t=0 notify trigger pager lead",
    ]
    sev1 = Sim(config(users=QUIET))
    sev1.do(Trigger(incident(severity=1)), 0)
    assert sev1.pages()[:2] == ["t=0 level-1 paged", "t=0 notify trigger pager ana"]


def test_nobody_reachable_defers_without_using_a_loop() -> None:
    cfg = config(
        users=QUIET,
        policies=[{"name": "default", "levels": [{"targets": ["user:ana"]}], "repeat": 0}],
        quiet_defer_seconds=3600,
    )
    sim = Sim(cfg)
    sim.do(Trigger(incident(severity=3)), 0)
    sim.run_until(3 * 3600)
    # 11:00, 12:00, ... Berlin are quiet; at 17:00 Berlin (t=6h) ana may be paged
    sim.run_until(6 * 3600 + 300)
    assert sim.pages()[:2] == ["t=0 level-1 skipped", "t=0 nobody reachable"]
    assert sim.pages()[-4:] == [
        "t=18000 nobody reachable",
        "t=21600 level-1 paged",
        "t=21600 notify trigger pager ana",
        "t=21900 escalation exhausted",  # the one level's delay ran out, repeat: 0
    ]


def test_silence_defers_the_page_until_it_ends() -> None:
    sim = Sim(config())
    silence = Mute("silenced", "maint-1", T0 + 1000)
    sim.do(Trigger(incident(), mute=silence), 0)
    assert sim.pages() == ["t=0 silenced"] and sim.state.status == "muted"
    # the runner re-checks every minute while muted; nothing is sent
    sim.run_until(990, mute=silence)
    assert sim.pages() == ["t=0 silenced"]
    # at t=1000 the silence is over: level 1 is paged then, level 2 five minutes later
    sim.run_until(1300)
    assert sim.pages()[1:] == [
        "t=1000 unmuted",
        "t=1000 level-1 paged",
        "t=1000 notify trigger pager ana",
        "t=1300 level-2 paged",
        "t=1300 notify trigger pager lead",
    ]


def test_inhibition_mid_escalation_holds_and_resumes_the_level() -> None:
    sim = Sim(config())
    sim.do(Trigger(incident(severity=3)), 0)
    inhibited = Mute("inhibited", "inc-sev1", None)
    sim.run_until(300, mute=inhibited)  # a SEV1 on the same topic opened meanwhile
    assert sim.pages()[-1] == "t=300 inhibited"
    sim.run_until(900, mute=inhibited)
    sim.run_until(960)  # the SEV1 was resolved; the next check un-mutes
    assert sim.pages()[-3:] == [
        "t=960 unmuted",
        "t=960 level-1 paged",
        "t=960 notify trigger pager ana",
    ]


def test_repage_restarts_from_level_one() -> None:
    sim = Sim(config())
    sim.do(Trigger(incident(severity=3)), 0)
    sim.run_until(300)
    sim.do(Acknowledge(incident(), "lead"), 400)
    sim.do(Trigger(incident(severity=2), reason="repaged"), 500)
    sim.run_until(800)
    tail = [x for x in sim.lines if x.startswith(("t=500", "t=800"))]
    assert tail == [
        "t=500 escalation started",
        "t=500 level-1 paged",
        "t=500 notify trigger pager ana",
        "t=800 level-2 paged",
        "t=800 notify trigger pager lead",
    ]
    assert sim.notes[-1].incident["severity"] == 2


def test_update_changes_payload_only_and_early_wake_is_ignored() -> None:
    sim = Sim(config())
    sim.do(Trigger(incident()), 0)
    n = len(sim.lines)
    sim.do(Update(incident(score=0.91)), 60)
    sim.do(Wake(), 120)  # spurious: the level-2 timer is at 300
    assert len(sim.lines) == n and sim.state.incident["score"] == 0.91
    sim.run_until(300)
    assert sim.notes[-1].incident["score"] == 0.91


def test_notifications_are_deterministic_and_carry_the_escalation() -> None:
    a, b = Sim(config()), Sim(config())
    for sim in (a, b):
        sim.do(Trigger(incident()), 0)
        sim.run_until(300)
    assert [n.id for n in a.notes] == ["inc-1/1", "inc-1/2"] == [n.id for n in b.notes]
    n = a.notes[1]
    assert (n.dedup_key, n.recipient, n.action, n.created_at) == (
        "inc-1",
        "lead",
        "trigger",
        T0 + 300,
    )
    assert n.incident["escalation"] == {
        "policy": "default",
        "level": 2,
        "loop": 1,
        "status": "paging",
    }


def test_persisted_state_resumes_on_time() -> None:
    cfg = config()
    straight = Sim(cfg)
    straight.do(Trigger(incident()), 0)
    straight.run_until(2000)

    first = Sim(cfg)
    first.do(Trigger(incident()), 0)
    first.run_until(350)
    # "restart": the state goes through JSON and comes back with a fresh plan
    saved = json.loads(json.dumps(first.state.to_dict()))
    again = Sim(cfg)
    again.state = EscalationState.from_dict(saved, Plan.from_config(cfg))
    again.lines = list(first.lines)
    again.wake = None if saved["wake_at"] is None else saved["wake_at"] - T0
    assert again.wake == 600
    again.run_until(2000)
    assert again.lines == straight.lines
    assert again.state.to_dict() == straight.state.to_dict()


NO_RECEIVERS = [
    {"name": "ana"},  # no receivers and no alerting.default_receivers: cannot be reached
    {"name": "ben", "receivers": ["pager"]},
    {"name": "carla", "receivers": ["pager"]},
    {"name": "lead", "receivers": ["pager"]},
]


def test_a_user_nobody_can_reach_is_not_paged_and_the_next_level_goes_at_once() -> None:
    sim = Sim(config(users=NO_RECEIVERS))
    sim.do(Trigger(incident()), 0)
    assert sim.pages() == [
        "t=0 level-1 skipped",
        "t=0 level-2 paged",
        "t=0 notify trigger pager lead",
    ]
    _, cmds = step(Sim(config(users=NO_RECEIVERS)).state, Trigger(incident()), T0)
    skipped = next(c for c in cmds if isinstance(c, Log) and c.event == "level-1 skipped")
    assert skipped.detail["users"] == [] and skipped.detail["no_receiver"] == ["ana"]


def test_the_demo_without_receivers_says_nobody_was_reachable() -> None:
    sim = Sim(AlertingConfig())  # the demo: nobody has a receiver
    sim.do(Trigger(incident()), 0)
    assert sim.pages() == ["t=0 level-1 skipped", "t=0 level-2 skipped", "t=0 nobody reachable"]
    assert sim.notes == [] and sim.state.active and sim.wake == 900  # tried again, never lost


def test_round_robin_takes_the_next_member_who_can_be_reached() -> None:
    sim = round_robin_sim(users=NO_RECEIVERS)
    who = [x.split()[-1] for x in sim.pages() if "notify trigger pager" in x]
    assert who == ["ben", "carla", "ben", "carla"]
