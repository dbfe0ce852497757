"""The async escalation runner on a FakeClock, wired to a real IncidentBook."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from alerting.incidents import IncidentBook, IncidentEvent
from alerting.notification import Notification
from alerting.runner import EscalationRunner
from alerting.silences import Silence
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig
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
    ) -> None:
        self.clock = FakeClock(start)
        self.book = IncidentBook()
        self.sent: list[Notification] = []
        self.saved: dict[str, Any] = {}

        async def emit(n: Notification) -> None:
            self.sent.append(n)

        async def persist(s: dict[str, Any]) -> None:
            self.saved = json.loads(json.dumps(s))

        def record(iid: str, event: str, detail: dict[str, Any], now: float) -> None:
            self.book.record(iid, event, detail, now)

        self.runner = EscalationRunner(
            cfg or config(), self.clock, emit, persist=persist, record=record, state=state
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


async def test_restart_after_the_policy_was_renamed_pages_with_fresh_ids() -> None:
    rig = Rig()
    iid = await rig.verdict(V("acme", 0, 0.8, 3, onset="open"))
    await rig.at(300)  # ana, then lead paged: ids iid/1, iid/2
    # deployed with the policy renamed; the process comes back at t=400 with the old state
    again = Rig(state=rig.saved, start=T0 + 400, cfg=config("standard"))
    again.book = rig.book
    await again.runner.resume(rig.book.open_incidents())
    assert again.log() == ["t=400 trigger ana"]
    # the outbox drops an id it already holds: a restarted escalation must not reuse one
    assert again.sent[0].id not in {n.id for n in rig.sent}
    await again.feed(rig.book.acknowledge(iid, "ana", again.clock.now()))
    # everybody paged before the restart hears the acknowledgement too
    assert sorted(again.log()[1:]) == ["t=400 acknowledge ana", "t=400 acknowledge lead"]
