"""IncidentService: the book and the runner behind one async face (what the API calls)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from alerting.incidents import IncidentEvent
from alerting.notification import Notification
from alerting.service import IncidentService
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig
from tests.alerting.fakes import V

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()  # ana (EMEA) is on call


def cfg() -> AlertingConfig:
    return AlertingConfig(default_receivers=["pager"])  # the demo, reachable through "pager"


class Rig:
    def __init__(self, state: dict[str, Any] | None = None, start: float = T0) -> None:
        self.clock = FakeClock(start)
        self.sent: list[Notification] = []
        self.published: list[IncidentEvent] = []
        self.saved: dict[str, Any] = {}

        async def emit(n: Notification) -> None:
            self.sent.append(n)

        async def persist(s: dict[str, Any]) -> None:
            self.saved = json.loads(json.dumps(s))

        async def publish(e: IncidentEvent) -> None:
            self.published.append(e)

        self.svc = IncidentService(
            cfg(), self.clock, emit, state=state, persist=persist, publish=publish
        )

    def who(self) -> list[str]:
        return [f"{n.action} {n.recipient}" for n in self.sent]


async def test_demo_config_pages_the_follow_the_sun_on_call_then_the_lead() -> None:
    rig = Rig()
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 2, onset="open"))
    iid = ev.incident.id
    rig.clock.advance(300)
    await rig.svc.runner.wake_due()
    assert rig.who() == ["trigger ana", "trigger lead"]  # even week since the 2024-01-01 anchor
    got = await rig.svc.acknowledge(iid, "ana")
    assert got is not None and got["state"] == "acknowledged" and got["acknowledged_by"] == "ana"
    assert rig.who()[-2:] == ["acknowledge ana", "acknowledge lead"]
    assert [e.kind for e in rig.published] == ["opened", "acknowledged"]
    assert await rig.svc.acknowledge("nope", "ana") is None
    assert (await rig.svc.get(iid) or {})["id"] == iid
    assert [i["id"] for i in await rig.svc.list()] == [iid]
    note = await rig.svc.add_note(iid, "ana", "holding statement out")
    assert note is not None and note["notes"][0]["text"] == "holding statement out"
    done = await rig.svc.resolve(iid, "ana")
    assert done is not None and done["state"] == "resolved"
    assert rig.who()[-2:] == ["resolve ana", "resolve lead"]


async def test_snooze_then_tick_retriggers_and_pages_again() -> None:
    rig = Rig()
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 2, onset="open"))
    await rig.svc.snooze(ev.incident.id, T0 + 3600, "ana")
    rig.clock.set(T0 + 3600)
    assert [e.kind for e in await rig.svc.tick()] == ["retriggered"]
    assert rig.who() == ["trigger ana", "acknowledge ana", "trigger ana"]


async def test_state_survives_a_restart() -> None:
    rig = Rig()
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 2, onset="open"))
    again = Rig(state=rig.saved, start=T0 + 100)
    assert (await again.svc.get(ev.incident.id) or {})["state"] == "triggered"
    again.clock.set(T0 + 300)
    await again.svc.runner.wake_due()
    assert again.who() == ["trigger lead"]
    timeline = [x["event"] for x in again.svc.book.get(ev.incident.id).timeline]
    assert timeline[-1] == "level-2 paged"


async def test_run_resumes_pages_owed_before_a_crash() -> None:
    rig = Rig()
    rig.svc.book.on_verdict(V("acme", T0, 0.9, 2, onset="open"), T0)  # runner never saw it
    task = asyncio.create_task(rig.svc.run())
    for _ in range(50):
        await asyncio.sleep(0)
        if rig.sent:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert rig.who()[0] == "trigger ana"
