"""The wall hears of escalation steps that no incident event carries (a timer paging level 2)."""

from __future__ import annotations

from pathlib import Path

from monitor.app import App
from monitor.clock import FakeClock
from monitor.model import Bucket
from monitor.storage import open_store
from tests.alerting.fakes import V
from tests.conftest import demo_config


async def test_a_timer_driven_level_2_page_reaches_the_wall(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    clock = FakeClock(1_768_384_800.0)  # a Wednesday, 10:00 UTC
    app = await App.open(cfg, clock, store)
    try:
        await app.incidents.on_verdict(V(cfg.topics[0].name, clock.now(), 0.9, 1, onset="open"))
        (iid,) = app.wall.incidents
        title = app.incidents.book.get(iid).to_dict()["title"]
        assert title == f"SEV1 {cfg.topics[0].title}: volume crisis"  # the topic's, not its id
        first = dict(app.wall.escalations[iid])
        level_1_delay = cfg.alerting.policies[0].levels[0].delay_seconds
        clock.advance(level_1_delay)
        await app.incidents.runner.wake_due()  # no incident event: only the timer moved
        after = app.wall.escalations[iid]
        assert after["level"] == first["level"] + 1, (first, after)
        assert after["paged"] and after["paged"] != first["paged"]
    finally:
        await app.close()
        await store.close()


class Minutes:
    """One-minute buckets of a topic, judged by the app's detector and handed to its incidents
    as the pipeline does (no mentions, no enrichment: counts only)."""

    def __init__(self, topic: str, t: float) -> None:
        self.topic, self.t = topic, t

    async def feed(self, app: App, *counts: int) -> None:
        buckets = []
        for c in counts:
            buckets.append(Bucket(self.topic, self.t, 60.0, count=c))
            self.t += 60.0
        await app.on_verdicts(app.detector.observe_many(buckets))


async def test_a_surge_after_a_person_resolved_the_incident_pages_again(tmp_path: Path) -> None:
    """The detector's episode outlived a manual resolve: a 50x crisis minutes later joined the
    closed incident and paged nobody for the whole calm period (QA, eleventh session)."""
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    clock = FakeClock(1_768_384_800.0)
    app = await App.open(cfg, clock, store)
    topic = cfg.topics[0].name
    minutes = Minutes(topic, clock.now() - 4 * 3600.0)

    async def feed(*counts: int) -> None:
        await minutes.feed(app, *counts)

    def opened() -> list[str]:
        return [i.id for i in app.incidents.book.all_incidents() if i.topic == topic]

    try:
        await feed(*[4 + i % 3 for i in range(180)])  # three calm hours: warm
        await feed(*[250] * 5)
        (first,) = opened()
        await app.incidents.resolve(first, "ana")  # handled; the detector still sees a crisis
        await feed(*[250] * 3)  # the same surge goes on: not paged again at once
        assert opened() == [first]
        await feed(*[5] * 10, *[250] * 5)  # minutes of calm, then a new surge
        assert len(opened()) == 2 and app.incidents.book.get(opened()[1]).is_open
    finally:
        await app.close()
        await store.close()


async def test_after_a_manual_resolve_the_surges_tail_and_a_restart_do_not_undo_it(
    tmp_path: Path,
) -> None:
    """The closed surge's wobbling tail (3-4x, then 5x) reopened it within minutes, and a
    restart before the next checkpoint brought the detector's episode back (QA)."""
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    clock = FakeClock(1_768_384_800.0)
    topic = cfg.topics[0].name
    feed = Minutes(topic, clock.now() - 4 * 3600.0).feed

    def opened(app: App) -> int:
        return sum(1 for i in app.incidents.book.all_incidents() if i.topic == topic)

    app = await App.open(cfg, clock, store)
    try:
        await feed(app, *[4 + i % 3 for i in range(180)])
        await feed(app, *[250] * 5)
        (first,) = [i.id for i in app.incidents.book.all_incidents()]
        await app.incidents.resolve(first, "ana")
        await feed(app, 120, 40, 30, 60, 45, 70)  # the tail: never back to ordinary size
        assert opened(app) == 1
    finally:
        await app.close()
    app = await App.open(cfg, clock, store)  # restarted before checkpoint_seconds passed
    try:
        await feed(app, *[5] * 5, *[250] * 3)
        assert opened(app) == 2
    finally:
        await app.close()
        await store.close()
