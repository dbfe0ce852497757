"""What the wall is told: who is on call (overrides included) and what the escalation does next."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alerting.escalation import EscalationState, Plan, Trigger, Wake, step
from alerting.inhibition import Mute
from alerting.schedules import Directory, OnCall
from alerting.views import escalation_summary, oncall_summary
from monitor.config.alerting import AlertingConfig

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()  # Wed: ana (EMEA) on call
INC = {"id": "inc-1", "key": "acme/volume", "topic": "acme", "kind": "volume", "severity": 2}


def test_an_override_in_force_is_shown_first() -> None:
    data: dict[str, Any] = AlertingConfig().model_dump(by_alias=True)
    data["schedules"][0]["overrides"] = [
        {"user": "dan", "start": "2026-01-14T09:00Z", "end": "2026-01-14T11:00Z"}
    ]
    d = Directory.from_config(AlertingConfig.model_validate(data))
    assert d.schedules["follow-the-sun"].who(T0) == OnCall("dan", "override")
    regions = oncall_summary(d, T0)["regions"]
    assert regions[0]["region"] == "override" and regions[0]["user"] == "dan"
    assert regions[0]["until"] == T0 + 3600 and regions[0]["timezone"] == "America/Chicago"
    after = oncall_summary(d, T0 + 3600)["regions"]
    assert "override" not in [r["region"] for r in after]


def test_muted_escalation_names_the_level_it_will_repage() -> None:
    plan = Plan.from_config(AlertingConfig(default_receivers=["pager"]))
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)  # level 1: ana
    s, _ = step(s, Wake(Mute("silenced", "s1", T0 + 120)), T0 + 60)
    assert s.status == "muted" and s.level == 0
    view = escalation_summary(s)
    assert view["next_targets"] == ["ana"]  # level 1 again when the silence ends, not the lead
    s, _ = step(s, Wake(), T0 + 120)
    assert s.level == 0  # what the view promised


def test_no_next_targets_once_the_last_loop_ends() -> None:
    plan = Plan.from_config(AlertingConfig(default_receivers=["pager"]))
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)
    t = T0
    while not (s.loop == 2 and s.level == 1):
        t += 300
        s, _ = step(s, Wake(), t)
    assert escalation_summary(s)["next_targets"] == []
    s, _ = step(s, Wake(), t + 300)
    assert s.status == "exhausted"


def _one_level(mode: str = "all", **user_over: Any) -> AlertingConfig:
    return AlertingConfig.model_validate(
        {
            "users": [
                {"name": "ana", "full_name": "Ana", "receivers": ["pager"], **user_over},
                {"name": "ben", "receivers": ["pager"]},
                {"name": "carla"},  # no receivers, and no default_receivers
            ],
            "schedules": [],
            "teams": [],
            "policies": [
                {
                    "name": "p",
                    "levels": [
                        {
                            "targets": ["user:ana", "user:ben", "user:carla"],
                            "delay_seconds": 300,
                            "mode": mode,
                        }
                    ],
                }
            ],
            "route": {"policy": "p"},
        }
    )


def test_paged_leaves_out_users_in_quiet_hours_or_without_receivers() -> None:
    # T0 is 11:00 in Berlin: ana is in quiet hours, and the incident is SEV2
    plan = Plan.from_config(_one_level(quiet_hours="09:00-17:00"))
    s, cmds = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)
    [entry] = [c for c in cmds if str(c) == "log level-1 paged"]
    assert entry.detail["users"] == ["ben"]  # type: ignore[union-attr]
    view = escalation_summary(s)
    assert view["paged"] == [{"user": "ben", "name": "ben"}]


def test_paged_names_the_one_round_robin_user_paged() -> None:
    plan = Plan.from_config(_one_level("round_robin"))
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)
    assert [u["user"] for u in escalation_summary(s)["paged"]] == ["ana"]
    s, _ = step(s, Wake(), T0 + 300)  # loop 2: the next one
    assert [u["user"] for u in escalation_summary(s)["paged"]] == ["ben"]


def test_paged_before_is_everyone_the_escalation_paged() -> None:
    """An exhausted escalation whose last level paged nobody (quiet hours) showed no one (QA)."""
    plan = Plan.from_config(_one_level("round_robin"))
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)
    s, _ = step(s, Wake(), T0 + 300)
    view = escalation_summary(s)
    assert [u["user"] for u in view["paged"]] == ["ben"]
    assert view["paged_before"] == [{"user": "ana", "name": "Ana"}, {"user": "ben", "name": "ben"}]


def test_paged_is_who_was_on_call_when_the_level_was_paged() -> None:
    plan = Plan.from_config(AlertingConfig(default_receivers=["pager"]))
    t = T0 + 2 * 3600 - 240  # 11:56 UTC: ana (EMEA); at 12:00 carla (AMER) takes over
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), t)
    assert [u["user"] for u in escalation_summary(s)["paged"]] == ["ana"]


def test_paged_survives_a_restart_and_older_saved_states_still_load() -> None:
    plan = Plan.from_config(_one_level(quiet_hours="09:00-17:00"))
    s, _ = step(EscalationState.new("inc-1", plan), Trigger(INC), T0)
    saved = json.loads(json.dumps(s.to_dict()))
    again = EscalationState.from_dict(saved, plan)
    assert escalation_summary(again)["paged"] == [{"user": "ben", "name": "ben"}]
    del saved["paged"]  # a state saved before the paged users were kept
    older = EscalationState.from_dict(saved, plan)
    assert escalation_summary(older)["paged"] == []
    assert older.level == again.level and older.wake_at == again.wake_at


def test_the_person_on_call_shows_their_own_clock_when_the_config_gives_it() -> None:
    """The demo's wall showed "Dan (Chicago)" at New York time (the amer layer's zone) while
    `crisiswatch oncall` said Chicago (QA, tenth session)."""
    d = Directory.from_config(AlertingConfig())
    rows = [
        r
        for week in range(4)
        for r in oncall_summary(d, T0 + week * 7 * 86400)["regions"]
        if r["region"] == "amer"
    ]
    zones = {r["user"]: r["timezone"] for r in rows}
    assert zones == {"carla": "America/New_York", "dan": "America/Chicago"}


def test_a_pass_that_paged_nobody_is_nobody_reachable_until_someone_is_paged() -> None:
    """In quiet hours a SEV3 paged nobody, and the wall got `{"status": "paging", "level":
    null, "paged": []}`: a countdown to the next escalation, nothing of the retry (QA)."""
    plan = Plan.from_config(_one_level(quiet_hours="09:00-17:00"))
    sev3 = {**INC, "severity": 3}
    s, cmds = step(EscalationState.new("inc-1", plan), Trigger(sev3), T0)
    assert "log level-1 paged" in [str(c) for c in cmds]  # ben may be paged
    assert escalation_summary(s)["nobody_reachable"] is False
    s = EscalationState.new("inc-1", Plan.from_config(AlertingConfig()))  # no receivers at all
    s, cmds = step(s, Trigger(sev3), T0)
    assert "log nobody reachable" in [str(c) for c in cmds]
    view = escalation_summary(s)
    assert view["nobody_reachable"] is True and view["paged"] == []
    assert view["next_escalation_at"] == s.wake_at  # the retry
    muted, _ = step(s, Wake(Mute("silenced", "s1", T0 + 3600)), T0 + 60)
    assert escalation_summary(muted)["nobody_reachable"] is False
