"""The async escalation runner on a FakeClock, wired to a real IncidentBook."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerting.escalation import EscalationState
from alerting.incidents import IncidentBook, IncidentEvent
from alerting.notification import Notification
from alerting.runner import EscalationRunner, OnStep
from alerting.silences import Silence
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig
from monitor.decode import format_time
from tests.alerting.fakes import V

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()


def config(policy: str = "default") -> AlertingConfig:
    return AlertingConfig.model_validate(
        {
            "users": [
                {"name": "ana", "receivers": ["pager"]},
                {"name": "lead", "receivers": ["pager"]},
            ],
            "schedules": [{"name": "primary", "layers": [{"users": ["ana"]}]}],
            "teams": [],
            "policies": [
                {
                    "name": policy,
                    "levels": [
                        {"targets": ["schedule:primary"], "delay_seconds": 300},
                        {"targets": ["user:lead"], "delay_seconds": 300},
                    ],
                    "repeat": 1,
                }
            ],
            "route": {"policy": policy},
        }
    )


class Rig:
    def __init__(
        self,
        state: dict[str, Any] | None = None,
        start: float = T0,
        cfg: AlertingConfig | None = None,
        registry: CollectorRegistry | None = None,
        on_step: OnStep | None = None,
    ) -> None:
        self.clock = FakeClock(start)
        self.book = IncidentBook()
        self.sent: list[Notification] = []
        self.saved: dict[str, Any] = {}

        async def emit(n: Notification) -> None:
            self.sent.append(n)

        async def persist() -> None:
            self.saved = json.loads(json.dumps(self.runner.to_state()))

        def record(iid: str, event: str, detail: dict[str, Any], now: float) -> None:
            self.book.record(iid, event, detail, now)

        self.runner = EscalationRunner(
            cfg or config(),
            self.clock,
            emit,
            persist=persist,
            record=record,
            state=state,
            registry=registry,
            on_step=on_step,
        )

    async def feed(self, events: list[IncidentEvent]) -> None:
        for e in events:
            await self.runner.handle(e)

    async def verdict(self, v: V) -> str:
        events = self.book.on_verdict(v, self.clock.now())
        await self.feed(events)
        return events[0].incident.id if events else ""

    async def at(self, t: float) -> None:
        self.clock.set(T0 + t)
        await self.runner.wake_due()

    def log(self) -> list[str]:
        return [f"t={n.created_at - T0:g} {n.action} {n.recipient}" for n in self.sent]


async def test_book_and_runner_timeline() -> None:
    rig = Rig()
    # at t=0 crisis
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(299)
    await rig.at(300)  # level 2
    await rig.at(400)
    await rig.feed(rig.book.acknowledge(iid, "lead", rig.clock.now()))
    await rig.at(3000)
    assert rig.log() == [
        "t=0 trigger ana",
        "t=300 trigger lead",
        "t=400 acknowledge ana",
        "t=400 acknowledge lead",
    ]
    timeline = [e["event"] for e in rig.book.get(iid).timeline]
    assert timeline == [
        "opened",
        "escalation started",
        "level-1 paged",
        "level-2 paged",
        "acknowledged",
        "escalation stopped",
    ]


async def test_ack_timeout_retriggers_escalation_from_level_one() -> None:
    rig = Rig()
    rig.book = IncidentBook(config().incidents)  # 30 min ack timeout
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.feed(rig.book.acknowledge(iid, "ana", rig.clock.now() + 60))
    rig.clock.set(T0 + 60 + 1800)
    await rig.feed(rig.book.tick(rig.clock.now()))
    assert rig.log()[-1] == "t=1860 trigger ana"


async def test_restart_resumes_at_the_same_level_on_time() -> None:
    rig = Rig()
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)
    saved = rig.saved
    # kill -9 at t=350; a new process comes up at t=500 with the persisted state
    again = Rig(state=saved, start=T0 + 500)
    assert again.runner.next_wake() == T0 + 600
    await again.at(599)
    assert again.sent == []
    await again.at(600)
    assert again.log() == ["t=600 trigger ana"]
    assert again.sent[0].id == rig.sent[-1].id.split("/")[0] + "/3"


async def test_crash_between_emit_and_persist_replays_the_same_ids() -> None:
    rig = Rig()
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    before = rig.saved  # persisted after level 1
    await rig.at(300)  # level 2 emitted ...
    # ... but suppose the process died before that state was saved: replay from `before`
    again = Rig(state=before, start=T0 + 300)
    await again.at(300)
    assert [n.id for n in again.sent] == [rig.sent[-1].id]  # the outbox dedups this id


async def test_sev1_inhibits_lower_severity_of_same_topic_until_resolved() -> None:
    rig = Rig()
    big = await rig.verdict(V("acme", 0, 0.99, 1, onset="open"))
    terms = V("acme/x", 10, 0.75, 3, onset="open", explanation={"fired": ["terms"]})
    rig.clock.set(T0 + 10)
    small = await rig.verdict(terms)
    assert small != big
    assert rig.log() == ["t=0 trigger ana"]  # the SEV3 pages nobody
    esc = rig.runner.escalation(small)
    assert esc is not None and esc.status == "muted" and esc.mute and esc.mute.by == big
    rig.clock.set(T0 + 20)
    await rig.feed(rig.book.resolve(big, "ana", rig.clock.now()))
    assert rig.log()[-1] == "t=20 trigger ana"  # un-muted at once, level 1
    assert rig.sent[-1].dedup_key == small


async def test_a_new_sev1_mutes_a_lower_incident_already_paging() -> None:
    rig = Rig()
    terms = V("acme", 0, 0.75, 3, onset="open", explanation={"fired": ["terms"]})
    small = await rig.verdict(terms)
    rig.clock.set(T0 + 100)
    big = await rig.verdict(V("acme/tw", 100, 0.99, 1, onset="open"))
    esc = rig.runner.escalation(small)
    assert esc is not None and esc.status == "muted"
    await rig.at(300)  # the SEV3's level 2 would be due now; it stays quiet
    assert rig.log() == ["t=0 trigger ana", "t=100 trigger ana"]
    assert [n.dedup_key for n in rig.sent] == [small, big]
    rig.clock.set(T0 + 400)
    await rig.feed(rig.book.resolve(big, "ana", rig.clock.now()))
    # un-muted: the level that was held back (level 1, paged before the mute) goes again
    assert rig.log()[-1] == "t=400 trigger ana" and rig.sent[-1].dedup_key == small


async def test_silence_added_mid_escalation_holds_it() -> None:
    rig = Rig()
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    rig.clock.set(T0 + 100)
    await rig.runner.add_silence(Silence.new("m", ["topic=acme"], T0 + 100, T0 + 700, "a", "c"))
    await rig.at(300)
    assert rig.log() == ["t=0 trigger ana"]
    await rig.at(700)
    assert rig.log()[-1] == "t=700 trigger ana"


async def test_runtime_silence_defers_until_it_ends() -> None:
    rig = Rig()
    await rig.runner.add_silence(
        Silence.new("m1", ["topic=acme"], T0 - 10, T0 + 900, "ana", "planned migration")
    )
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    for t in range(60, 900, 60):
        await rig.at(t)
    assert rig.sent == []
    await rig.at(900)
    assert rig.log() == ["t=900 trigger ana"]
    events = [e["event"] for e in rig.book.get(iid).timeline]
    assert events[:4] == ["opened", "escalation started", "silenced", "unmuted"]


async def test_resume_starts_owed_pages() -> None:
    rig = Rig()
    rig.book.on_verdict(V("acme", 0, 0.8, 3, onset="open"), T0)  # never reached the runner
    await rig.runner.resume(rig.book.open_incidents())
    assert rig.log() == ["t=0 trigger ana"]


async def test_run_loop_sleeps_on_the_clock() -> None:
    rig = Rig()
    task = asyncio.create_task(rig.runner.run())
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    for _ in range(100):  # FakeClock.sleep jumps instantly; let the loop walk the policy
        await asyncio.sleep(0)
        if len(rig.sent) >= 4:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert rig.log() == [
        "t=0 trigger ana",
        "t=300 trigger lead",
        "t=600 trigger ana",
        "t=900 trigger lead",
    ]


async def test_restart_after_the_policy_was_renamed_pages_with_fresh_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)  # ana, then lead paged: ids iid/1, iid/2
    # deployed with the policy renamed; the process comes back at t=400 with the old state
    again = Rig(state=rig.saved, start=T0 + 400, cfg=config("standard"))
    # the log said nothing of why level 1 was paged again (QA, thirteenth session)
    assert f"incident {iid}: policy 'default' is no longer configured" in caplog.text
    again.book = rig.book
    await again.runner.resume(rig.book.open_incidents())
    assert again.log() == ["t=400 trigger ana"]
    # the outbox drops an id it already holds: a restarted escalation must not reuse one
    assert again.sent[0].id not in {n.id for n in rig.sent}
    await again.feed(rig.book.acknowledge(iid, "ana", again.clock.now()))
    # everybody paged before the restart hears the acknowledgement too
    assert sorted(again.log()[1:]) == ["t=400 acknowledge ana", "t=400 acknowledge lead"]


# --- config silences across restarts ---------------------------------------------------------
def _silence(topic: str, start: float, end: float, **over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "matchers": [f"topic={topic}"],
        "start": datetime.fromtimestamp(start, UTC).isoformat(),
        "end": datetime.fromtimestamp(end, UTC).isoformat(),
        "author": "ana",
        "comment": "maintenance",
    }
    d.update(over)
    return d


def with_silences(*silences: dict[str, Any]) -> AlertingConfig:
    return config().model_copy(
        update={"silences": AlertingConfig.model_validate({"silences": list(silences)}).silences}
    )


def silences_of(rig: Rig) -> dict[str, tuple[list[str], float, float]]:
    return {
        s.id: ([str(m) for m in s.matchers], s.start - T0, s.end - T0)
        for s in rig.runner.silences.all()
    }


async def test_a_silence_inserted_in_the_config_is_not_replaced_by_a_saved_one() -> None:
    acme = _silence("acme", T0, T0 + 3600)
    rig = Rig(cfg=with_silences(acme))
    await rig.verdict(V("other", 0, 0.8, 3, onset="open"))  # anything that saves
    # redeployed with a new silence first: the unnamed acme silence is now config-1
    again = Rig(state=rig.saved, cfg=with_silences(_silence("beta", T0, T0 + 600), acme))
    assert silences_of(again) == {
        "config-0": (["topic=beta"], 0, 600),
        "config-1": (["topic=acme"], 0, 3600),
    }


async def test_an_edited_or_removed_config_silence_is_not_undone_by_the_saved_copy() -> None:
    rig = Rig(cfg=with_silences(_silence("acme", T0, T0 + 3600), _silence("beta", T0, T0 + 60)))
    await rig.verdict(V("other", 0, 0.8, 3, onset="open"))
    # shortened to ten minutes, and beta taken out of the config
    again = Rig(state=rig.saved, cfg=with_silences(_silence("acme", T0, T0 + 600)))
    assert silences_of(again) == {"config-0": (["topic=acme"], 0, 600)}


async def test_expiring_a_config_silence_lasts_until_the_config_changes_it() -> None:
    acme = _silence("acme", T0, T0 + 3600)
    rig = Rig(cfg=with_silences(acme))
    await rig.runner.add_silence(Silence.new("mine", ["topic=x"], T0, T0 + 99, "ben", "test"))
    rig.clock.set(T0 + 100)
    await rig.runner.expire_silence("config-0")
    # same config: the expiry stands (and the run-time silence is kept)
    same = Rig(state=rig.saved, start=T0 + 200, cfg=with_silences(acme))
    assert silences_of(same) == {
        "config-0": (["topic=acme"], 0, 100),
        "mine": (["topic=x"], 0, 99),
    }
    # the silence edited in the config (extended): the config's new version applies
    edited = with_silences(_silence("acme", T0, T0 + 7200))
    assert silences_of(Rig(state=rig.saved, start=T0 + 200, cfg=edited))["config-0"] == (
        ["topic=acme"],
        0,
        7200,
    )
    # and the expiry survives a second restart with the same config
    await same.runner.resume([])  # saves
    twice = Rig(state=same.saved, start=T0 + 300, cfg=with_silences(acme))
    await twice.verdict(V("acme", 300, 0.8, 3, onset="open"))
    assert silences_of(twice)["config-0"] == (["topic=acme"], 0, 100)
    assert twice.log() == ["t=300 trigger ana"]  # not silenced


async def test_state_saved_by_an_older_version_keeps_run_time_silences_only() -> None:
    rig = Rig(cfg=with_silences(_silence("acme", T0, T0 + 3600)))
    await rig.runner.add_silence(Silence.new("mine", ["topic=x"], T0, T0 + 99, "ben", "test"))
    old = {k: v for k, v in rig.saved.items() if k != "config_silences"}
    again = Rig(state=old, cfg=with_silences(_silence("beta", T0, T0 + 600)))
    assert silences_of(again) == {
        "config-0": (["topic=beta"], 0, 600),
        "mine": (["topic=x"], 0, 99),
    }


async def test_a_page_that_reaches_nobody_is_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(cfg=AlertingConfig())  # the demo: nobody has a receiver
    with caplog.at_level(logging.WARNING, logger="alerting.runner"):
        iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    assert rig.sent == []
    text = caplog.text
    assert iid in text and "nobody reachable" in text and "no receivers" in text
    assert f"trying again at {format_time(T0 + 900)}" in text  # readable, not epoch seconds
    timeline = [e["event"] for e in rig.book.get(iid).timeline]
    assert timeline[-3:] == ["level-1 skipped", "level-2 skipped", "nobody reachable"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alerting.runner"):
        await rig.at(900)  # tried again: still nobody, still loud
    assert "nobody reachable" in caplog.text


async def test_an_escalation_whose_incident_left_the_book_stops_at_resume() -> None:
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    # back with the runner's state but without the incident (pruned, or the book was lost)
    again = Rig(state=rig.saved, start=T0 + 100)
    await again.runner.resume(again.book.all_incidents())
    assert again.runner.escalation(iid) is None
    assert again.log() == ["t=100 resolve ana"]  # whoever was paged hears it is over
    assert [e["incident_id"] for e in again.saved["escalations"]] == []
    assert again.saved["open"] == []  # nor may it inhibit anything any more
    await again.at(10_000)
    assert again.log() == ["t=100 resolve ana"]


async def test_a_resolve_that_failed_to_emit_is_retried_at_the_wake_not_paged_on() -> None:
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    failing = True
    sent = rig.sent

    async def emit(n: Notification) -> None:
        if failing:
            raise OSError("outbox store down")
        sent.append(n)

    rig.runner._emit = emit
    rig.clock.set(T0 + 100)
    with pytest.raises(OSError):
        await rig.feed(rig.book.resolve(iid, "ana", rig.clock.now()))
    failing = False
    await rig.at(300)  # level 2 was due: a resolved incident must page nobody
    assert rig.log() == ["t=0 trigger ana", "t=300 resolve ana"]
    assert rig.runner.escalation(iid) is None and rig.runner.next_wake() is None
    # the timeline still says who resolved it (it said "by": None; QA, tenth session)
    [stopped] = [e for e in rig.book.get(iid).timeline if e["event"] == "escalation stopped"]
    assert stopped["detail"]["by"] == "ana"


async def test_a_wake_that_cannot_emit_is_retried_later_and_recorded_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    sent = rig.sent
    failing = True

    async def emit(n: Notification) -> None:
        if failing:
            raise OSError("outbox store down")
        sent.append(n)

    rig.runner._emit = emit
    await rig.at(300)  # level 2 due: the step fails, and neither raises nor is lost
    assert "inc-" in caplog.text and "retried" in caplog.text
    assert rig.runner.next_wake() == T0 + 330  # not at once again: no tight retry loop
    failing = False
    await rig.at(330)
    assert rig.log() == ["t=0 trigger ana", "t=330 trigger lead"]
    events = [e["event"] for e in rig.book.get(iid).timeline]
    assert events.count("level-2 paged") == 1
    assert rig.runner.next_wake() == T0 + 630  # and back on the policy's schedule


NOBODY = "crisiswatch_escalation_nobody_reachable_total"


async def test_a_page_that_reaches_nobody_is_counted_per_policy_and_severity() -> None:
    registry = CollectorRegistry()
    rig = Rig(cfg=AlertingConfig(), registry=registry)  # the demo: nobody has a receiver
    # there from the start at 0, so that increase() in a rule sees the very first one
    assert registry.get_sample_value(NOBODY, {"policy": "default", "severity": "SEV1"}) == 0
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    assert registry.get_sample_value(NOBODY, {"policy": "default", "severity": "SEV3"}) == 1
    await rig.at(900)  # tried again: still nobody
    assert registry.get_sample_value(NOBODY, {"policy": "default", "severity": "SEV3"}) == 2
    assert registry.get_sample_value(NOBODY, {"policy": "default", "severity": "SEV1"}) == 0


async def test_a_page_that_reaches_somebody_is_not_counted_as_reaching_nobody() -> None:
    registry = CollectorRegistry()
    rig = Rig(registry=registry)
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)
    await rig.at(600)
    assert rig.log() == ["t=0 trigger ana", "t=300 trigger lead", "t=600 trigger ana"]
    for sev in ("SEV1", "SEV2", "SEV3", "SEV4"):
        assert registry.get_sample_value(NOBODY, {"policy": "default", "severity": sev}) == 0


def _steps() -> tuple[list[tuple[str, str, int]], OnStep]:
    seen: list[tuple[str, str, int]] = []

    def on_step(iid: str, state: EscalationState) -> None:
        seen.append((iid, state.status, state.level))

    return seen, on_step


async def test_every_timer_driven_step_is_reported_for_the_wall() -> None:
    seen, on_step = _steps()
    rig = Rig(on_step=on_step)
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    assert seen == [(iid, "paging", 0)]
    await rig.at(299)  # nothing due: nothing changed, nothing to tell
    await rig.verdict(V("acme", 299, 0.9, 3))  # a score update pages nobody
    assert seen == [(iid, "paging", 0)]
    await rig.at(300)  # level 2 after the delay, with no incident event at all
    await rig.at(600)  # the repeat starts over at level 1
    await rig.at(900)
    await rig.at(1200)  # repeat 1 used up: exhausted
    assert seen[1:] == [
        (iid, "paging", 1),
        (iid, "paging", 0),
        (iid, "paging", 1),
        (iid, "exhausted", 1),
    ]
    assert rig.runner.escalation(iid) is not None
    await rig.feed(rig.book.resolve(iid, "ana", rig.clock.now()))
    assert seen[-1] == (iid, "resolved", 1)


async def test_a_muted_escalation_reports_hold_and_release() -> None:
    seen, on_step = _steps()
    rig = Rig(on_step=on_step)
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    rig.clock.set(T0 + 10)
    await rig.runner.add_silence(
        Silence.new("s1", ["topic=acme"], T0 + 10, T0 + 100, "ana", "deploy")
    )
    assert seen[-1] == (iid, "muted", 0)
    await rig.at(100)  # the silence ended: level 1 is paged again
    assert seen[-1] == (iid, "paging", 0) and len(seen) == 3


async def test_a_failing_step_hook_does_not_stop_the_escalation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_step(iid: str, state: EscalationState) -> None:
        raise RuntimeError("hub gone")

    rig = Rig(on_step=on_step)
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)
    assert rig.log() == ["t=0 trigger ana", "t=300 trigger lead"]
    assert rig.runner.next_wake() == T0 + 600
    assert iid in caplog.text and "hub gone" in caplog.text


async def test_a_failing_timer_step_is_told_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every 30 s (and at every mute recheck) the same traceback filled the log on a full
    disk (QA, twelfth session): once per incident and outage now, then a line when it is back."""
    caplog.set_level(logging.INFO, logger="alerting.runner")
    rig = Rig()
    await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    down = True
    send = rig.runner._emit

    async def flaky(n: Notification) -> None:
        if down:
            raise OSError("database or disk is full")
        await send(n)

    rig.runner._emit = flaky
    for t in (300, 330, 360, 390):  # level 2 due, the store refuses it each time
        await rig.at(t)
    down = False
    await rig.at(420)
    told = [r for r in caplog.records if "escalation step failed" in r.getMessage()]
    assert len(told) == 1 and told[0].exc_info is not None
    assert "go through again" in caplog.text
    assert rig.log()[-1] == "t=420 trigger lead"  # late, not lost


async def test_an_escalation_that_ends_after_failing_steps_says_they_go_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a timer step cleared the "failed" mark: an acknowledgement after the outage left
    it (and the operator without the recovery line) for good (review, twelfth session)."""
    caplog.set_level(logging.INFO, logger="alerting.runner")
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    send, down = rig.runner._emit, [True]

    async def flaky(n: Notification) -> None:
        if down[0]:
            raise OSError("database or disk is full")
        await send(n)

    rig.runner._emit = flaky
    await rig.at(300)  # level 2 fails
    down[0] = False
    await rig.feed(rig.book.acknowledge(iid, "lead", rig.clock.now()))
    await rig.feed(rig.book.resolve(iid, "lead", rig.clock.now()))
    assert rig.runner._failing_told == set()
    assert "go through again" in caplog.text


async def test_an_unmute_that_fails_at_every_recheck_is_told_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A muted escalation is woken by every recheck (a resolve, a silence) besides its timer:
    a store that refuses its page must not add a traceback at each of them."""
    caplog.set_level(logging.INFO, logger="alerting.runner")
    rig = Rig()
    terms = V("acme", 0, 0.75, 3, onset="open", explanation={"fired": ["terms"]})
    small = await rig.verdict(terms)
    rig.clock.set(T0 + 10)
    big = await rig.verdict(V("acme/tw", 10, 0.99, 1, onset="open"))
    send, down = rig.runner._emit, [True]

    async def flaky(n: Notification) -> None:
        if down[0] and n.dedup_key == small:
            raise OSError("database or disk is full")
        await send(n)

    rig.runner._emit = flaky
    rig.clock.set(T0 + 20)
    await rig.feed(rig.book.resolve(big, "ana", rig.clock.now()))  # recheck: un-mute fails
    rig.clock.set(T0 + 30)
    await rig.runner.add_silence(Silence.new("m", ["topic=other"], T0 + 30, T0 + 90, "a", "c"))
    rig.clock.set(T0 + 40)
    await rig.runner.expire_silence("m")  # two more rechecks, the store still refuses
    told = [r for r in caplog.records if "escalation step failed" in r.getMessage()]
    assert len(told) == 1 and small in told[0].getMessage()
    down[0] = False
    await rig.at(70)  # its mute's recheck timer (set at t=10) is the retry
    assert rig.log()[-1] == "t=70 trigger ana" and rig.sent[-1].dedup_key == small
    assert "go through again" in caplog.text


@pytest.mark.parametrize("exhausted", [True, False])
async def test_a_repage_the_saved_escalation_never_saw_pages_from_level_one_after_a_restart(
    exhausted: bool,
) -> None:
    """Another incident's timer step saved the state while a SEV1 re-page waited for the
    runner: the book said "re-paged", the escalation did not know it. After a crash resume()
    left it exhausted (or paging on at its level), and the SEV1 never paged (QA, thirteenth
    session)."""
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)
    if exhausted:
        await rig.at(600)  # repeat 1: both levels twice, then exhausted
        await rig.at(900)
        await rig.at(1200)
    status = rig.runner.escalation(iid).status  # type: ignore[union-attr]
    assert status == ("exhausted" if exhausted else "paging")
    saved_escalation = rig.saved
    rig.clock.set(T0 + 1300)
    events = rig.book.on_verdict(V("acme", 1300, 0.99, 1), rig.clock.now())
    assert [e.kind for e in events] == ["repaged"]  # ... and the process dies before handle()
    again = Rig(state=saved_escalation, start=T0 + 1310)
    again.book = rig.book
    await again.runner.resume(again.book.open_incidents())
    assert again.log() == ["t=1310 trigger ana"]
    await again.runner.resume(again.book.open_incidents())  # a second restart: nothing missed
    assert again.log() == ["t=1310 trigger ana"]


async def test_an_opening_re_decides_only_what_it_may_mute() -> None:
    """Each opening re-decided every open escalation against every other: a burst of n
    openings cost n^3 label matches (2,000 topics: minutes of frozen detection; QA)."""
    rig = Rig()
    decided: list[str] = []
    mute = rig.runner._mute

    def counting(incident: Any, now: float) -> Any:
        decided.append(str(incident["id"]))
        return mute(incident, now)

    rig.runner._mute = counting  # type: ignore[method-assign]
    terms = {"fired": ["terms"]}  # another kind than the SEV1's below: its own incident
    ids = [
        await rig.verdict(V(f"topic{i}", 0, 0.8, 3, onset="open", explanation=terms))
        for i in range(30)
    ]
    assert len(decided) == 30  # each its own, at its trigger
    big = await rig.verdict(V("topic7/tw", 0, 0.99, 1, onset="open"))  # may mute topic7 only
    assert decided[30] == big and decided[31:] == [ids[7]] * 2  # found, then woken muted
    esc = rig.runner.escalation(ids[7])
    assert esc is not None and esc.status == "muted"
