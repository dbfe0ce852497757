from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from alerting import outbox as outbox_mod
from alerting.links import LinkSigner
from alerting.notification import Notification
from alerting.notifiers import RateLimited, build_notifiers
from alerting.outbox import REPEAT_KEY, Outbox
from monitor.clock import FakeClock, SystemClock
from monitor.config.receivers import DeliveryConfig, OutboxConfig
from monitor.errors import DeliveryError
from monitor.storage import OutboxRow, Store, open_store
from tests.alerting.notifiers.receiver import Answer, Receiver


class Fake:
    """A notifier that records what it sent and fails from a script of errors."""

    def __init__(self, *errors: DeliveryError | None, repeat_seconds: float | None = None):
        self.sent: list[Notification] = []
        self.errors = list(errors)
        if repeat_seconds is not None:
            self.repeat_seconds = repeat_seconds

    async def send(self, n: Notification) -> None:
        err = self.errors.pop(0) if self.errors else None
        if err is not None:
            raise err
        self.sent.append(n)


def note(i: str, action: str = "trigger", receiver: str = "r", key: str = "k") -> Notification:
    return Notification(i, receiver, action, key, {"id": "inc-1", "severity": 2}, 0.0)  # type: ignore[arg-type]


def transient() -> DeliveryError:
    return DeliveryError("r", "HTTP 503", recoverable=True, status=503)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path}/o.db")
    yield s
    await s.close()


def outbox(store: Store, clock: FakeClock, **notifiers: Any) -> tuple[Outbox, CollectorRegistry]:
    reg = CollectorRegistry()
    cfg = OutboxConfig(base_delay_seconds=2, max_delay_seconds=60, expire_seconds=600)
    return Outbox(store, notifiers, clock, reg, config=cfg, rng=random.Random(1)), reg


async def test_enqueue_is_durable_and_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    s = await open_store(url)
    ob, _ = outbox(s, FakeClock(100.0), r=Fake())
    await ob.enqueue(note("n1"))
    await ob.enqueue(note("n1"))
    await s.close()
    s = await open_store(url)
    rows = await s.outbox_due(100.0)
    assert [(r.id, r.state, r.created_at, r.expires_at) for r in rows] == [
        ("n1", "pending", 100.0, 700.0)
    ]
    assert rows[0].payload["action"] == "trigger"
    await s.close()


async def test_recoverable_errors_back_off_then_deliver(store: Store) -> None:
    clock, fake = FakeClock(0.0), Fake(transient(), transient())
    ob, reg = outbox(store, clock, r=fake)
    await ob.enqueue(note("n1"))
    assert await ob.tick() == 1 and fake.sent == []
    (row,) = await store.outbox_due(1e9)
    assert row.attempts == 1 and 1.0 <= row.due_at <= 2.0 and row.last_error == "HTTP 503"
    assert await ob.tick() == 0  # backing off
    clock.set(row.due_at)
    assert await ob.tick() == 1
    (row2,) = await store.outbox_due(1e9)
    assert row2.attempts == 2 and 2.0 <= row2.due_at - row.due_at <= 4.0
    clock.set(row2.due_at)
    await ob.tick()
    assert [n.id for n in fake.sent] == ["n1"] and await store.outbox_due(1e9) == []
    assert (
        reg.get_sample_value(
            "crisiswatch_notification_attempts_total", {"receiver": "r", "result": "retry"}
        )
        == 2.0
    )
    h = ob.health()
    assert h["since_start"]["delivered"] == 1 and h["receivers"]["r"]["consecutive_failures"] == 0


async def test_a_delivery_is_logged_with_whom_it_paged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing in the log said who was paged, or when (QA, eleventh session)."""
    clock = FakeClock(0.0)
    ob, _ = outbox(store, clock, r=Fake(transient()))
    await ob.enqueue(replace(note("n1"), recipient="ana"))
    with caplog.at_level(logging.INFO, logger="alerting.outbox"):
        await ob.tick()
        clock.set(10.0)
        await ob.tick()
    assert "delivered trigger of k to r for ana (attempt 2)" in caplog.messages


async def test_a_receiver_outage_is_told_once_then_reminded_and_its_end_too(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead webhook logged a warning per attempt of every pending page: 21 lines for 3
    pages (operations QA, fourteenth session)."""
    clock, fake = FakeClock(0.0), Fake(*[transient() for _ in range(9)])
    ob, _ = outbox(store, clock, r=fake)
    for i in range(3):
        await ob.enqueue(note(f"n{i}", key=f"k{i}"))
    with caplog.at_level(logging.DEBUG, logger="alerting.outbox"):
        for _ in range(4):  # three rounds of three failures, then they go through
            await ob.tick()
            clock.advance(60)
    failed = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failed) == 9 and [r.levelname for r in failed].count("WARNING") == 1
    assert "receiver r delivers again (9 attempts had failed)" in caplog.messages
    assert len(fake.sent) == 3


async def test_permanent_error_is_not_retried(store: Store) -> None:
    clock = FakeClock(0.0)
    fake = Fake(DeliveryError("r", "HTTP 400", recoverable=False, status=400))
    ob, reg = outbox(store, clock, r=fake)
    await ob.enqueue(note("n1"))
    await ob.tick()
    clock.advance(1000)
    assert await ob.tick() == 0
    stats = await store.outbox_stats(clock.now())
    assert stats["pending"] == 0
    assert (
        reg.get_sample_value(
            "crisiswatch_notifications_given_up_total", {"receiver": "r", "reason": "failed"}
        )
        == 1.0
    )


async def test_retry_until_expired(store: Store) -> None:
    clock = FakeClock(0.0)
    ob, _ = outbox(store, clock, r=Fake(*[transient()] * 100))
    await ob.enqueue(note("n1"))
    attempts = 0
    while (rows := await store.outbox_due(1e9)) and attempts < 50:
        clock.set(rows[0].due_at)
        attempts += await ob.tick()
    assert 5 <= attempts <= 20  # exponential: 2,4,...,60 capped, within 600 s
    assert (await store.outbox_stats(clock.now()))["expired"] == 1
    assert ob.health()["since_start"]["expired"] == 1
    assert ob.health()["status"] == "degraded" and ob.health()["failing_receivers"] == ["r"]


async def test_retry_after_is_a_floor(store: Store) -> None:
    clock = FakeClock(0.0)
    ob, _ = outbox(store, clock, r=Fake(RateLimited("r", 45.0)))
    await ob.enqueue(note("n1"))
    await ob.tick()
    (row,) = await store.outbox_due(1e9)
    assert row.due_at == 45.0


async def test_resolve_never_overtakes_its_trigger(store: Store) -> None:
    """A trigger in flight when its resolve is queued goes out first (resolve-before-trigger
    opens a PagerDuty incident that never resolves)."""
    clock, gate = FakeClock(0.0), asyncio.Event()
    sent: list[str] = []

    class Slow:
        async def send(self, n: Notification) -> None:
            if n.action == "trigger":
                await gate.wait()
            sent.append(n.id)

    ob, _ = outbox(store, clock, r=Slow())
    await ob.enqueue(note("t", "trigger"))
    first = asyncio.create_task(ob.tick())
    await asyncio.sleep(0.01)  # t is being sent
    await ob.enqueue(note("z", "resolve"))
    assert await ob.tick() == 0  # z waits behind t
    gate.set()
    await first
    await ob.tick()
    assert sent == ["t", "z"]


async def test_a_trigger_not_yet_sent_when_its_incident_is_acked_or_resolved_is_not_sent(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver was down while someone acked on the wall: when it came back the page
    still went out, then the ack, and the on-call's phone rang for an incident in hand."""
    clock, fake = FakeClock(0.0), Fake(transient())
    ob, reg = outbox(store, clock, r=fake)
    await ob.enqueue(replace(note("t"), recipient="ana"))
    await ob.tick()  # t fails, backs off
    clock.advance(0.5)
    await ob.enqueue(note("x", "trigger", key="other"))
    await ob.enqueue(replace(note("a", "acknowledge"), recipient="ana"))
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger="alerting.outbox"):
        while await ob.tick():
            pass
    assert sorted(n.id for n in fake.sent) == ["a", "x"]
    assert (
        "not sending the trigger of k to r for ana: acknowledged before it could be delivered"
        in caplog.messages
    )
    assert reg.get_sample_value("crisiswatch_notifications_superseded_total", {"receiver": "r"})
    assert (await store.outbox_stats(clock.now()))["pending"] == 0
    assert ob.health()["since_start"]["superseded"] == 1
    # a re-page after the ack is a new trigger, sent
    clock.advance(1)
    await ob.enqueue(note("t2", "trigger"))
    await ob.enqueue(note("z", "resolve", key="other"))  # another incident's: no bearing
    while await ob.tick():
        pass
    assert [n.id for n in fake.sent][-2:] in (["t2", "z"], ["z", "t2"])


@pytest.mark.parametrize("per_recipient", [True, False])
async def test_one_refused_address_holds_back_only_that_persons_messages(
    store: Store, per_recipient: bool
) -> None:
    """E-mail to a greylisted ana (450, retried for hours) held back the next level's page to
    the lead, on the same incident (QA, tenth session). A receiver with one incident object
    (PagerDuty, Alertmanager) still gets every message of an incident in order."""
    clock, fake = FakeClock(0.0), Fake(transient())
    fake.per_recipient = per_recipient  # type: ignore[attr-defined]
    ob, _ = outbox(store, clock, r=fake)
    await ob.enqueue(replace(note("t-ana"), recipient="ana"))
    clock.advance(0.5)
    await ob.enqueue(replace(note("t-lead"), recipient="lead"))
    clock.advance(0.5)
    await ob.enqueue(replace(note("r-ana"), recipient="ana"))  # the next round's page
    await ob.tick()  # ana's trigger fails
    assert [n.id for n in fake.sent] == (["t-lead"] if per_recipient else [])
    clock.advance(10)
    for _ in range(3):
        await ob.tick()
    expected = ["t-lead", "t-ana", "r-ana"] if per_recipient else ["t-ana", "t-lead", "r-ana"]
    assert [n.id for n in fake.sent] == expected


class RefusingStore:
    """The real store, except that outbox updates fail while ``full`` (a full disk)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.full = inner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def outbox_update(self, *args: Any, **kw: Any) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        await self.inner.outbox_update(*args, **kw)


@pytest.mark.parametrize("first_send_fails", [False, True])
async def test_an_outcome_the_store_cannot_record_is_not_sent_again(
    store: Store, first_send_fails: bool
) -> None:
    """The page went out, marking it delivered failed (disk full): the row stayed due and was
    sent again on every pass, 3,200 times in 20 s (QA, tenth session). A failed attempt whose
    retry cannot be recorded waits out its backoff all the same."""
    clock, fake = FakeClock(0.0), Fake(transient() if first_send_fails else None)
    refusing = RefusingStore(store)
    ob, reg = outbox(refusing, clock, r=fake)
    await ob.enqueue(note("t"))
    refusing.full = True
    await ob.tick()
    for _ in range(20):  # passes while the disk stays full: the run loop's retries
        clock.advance(0.5)
        with contextlib.suppress(OSError):
            await ob.tick()
    assert [n.id for n in fake.sent] == ["t"]  # (after a failure: its retry, once)
    assert ob.health()["status"] == "degraded" and ob.health()["unrecorded"] == 1
    refusing.full = False
    await ob.tick()
    clock.advance(60)
    await ob.tick()
    assert [n.id for n in fake.sent] == ["t"]
    assert await store.outbox_pending_count() == 0 and ob.health()["unrecorded"] == 0
    labels = {"receiver": "r", "action": "trigger"}
    assert reg.get_sample_value("crisiswatch_notifications_delivered_total", labels) == 1


async def test_pending_rows_resume_after_restart(store: Store) -> None:
    clock = FakeClock(0.0)
    first, _ = outbox(store, clock, r=Fake(transient()))
    await first.enqueue(note("n1"))
    await first.enqueue(note("n2", key="b"))
    await first.tick()
    fresh = Fake()
    second, _ = outbox(store, clock, r=fresh)  # "restarted" process, same store
    clock.advance(60)
    await second.tick()
    assert [n.id for n in fresh.sent] == ["n1"]  # n2 went out before the "crash"
    assert await store.outbox_due(1e9) == []


async def test_unknown_receiver_fails_visibly(store: Store) -> None:
    ob, _ = outbox(store, FakeClock(0.0))
    await ob.enqueue(note("n1", receiver="nobody"))
    await ob.tick()
    assert ob.health()["receivers"]["nobody"]["last_error"] == "no such receiver"


async def test_trigger_gets_signed_links_at_enqueue(store: Store) -> None:
    clock, fake = FakeClock(1000.0), Fake()
    signer = LinkSigner([b"k"], base_url="http://cw", ttl_seconds=60)
    ob = Outbox(store, {"r": fake}, clock, CollectorRegistry(), links=signer)
    await ob.enqueue(note("n1"))
    await ob.tick()
    await ob.enqueue(note("n2", "resolve"))
    await ob.tick()
    trig, res = fake.sent
    assert sorted(trig.links) == ["ack", "resolve", "snooze"] and res.links == {}
    claim = signer.verify(trig.links["ack"].rsplit("/", 1)[1], now=1059.0)
    assert (claim.action, claim.incident_id, claim.who) == ("acknowledge", "inc-1", "r")


async def test_repeating_receiver_is_refreshed_until_resolved(store: Store) -> None:
    clock, am = FakeClock(0.0), Fake(repeat_seconds=30)
    ob, reg = outbox(store, clock, am=am)
    await ob.enqueue(note("t1", receiver="am"))
    await ob.tick()
    assert [n.id for n in am.sent] == ["t1"]
    clock.advance(29)
    assert await ob.tick() == 0
    clock.advance(1)
    await ob.tick()
    assert [n.id for n in am.sent] == ["t1", "t1#r1"]
    labels = {"receiver": "am", "action": "trigger"}
    # a repeat counts as enqueued too, or delivered ran ahead of enqueued (QA, tenth session)
    assert reg.get_sample_value("crisiswatch_notifications_enqueued_total", labels) == 2
    assert reg.get_sample_value("crisiswatch_notifications_delivered_total", labels) == 2
    # restart: the repeat schedule lives in the store
    ob2, _ = outbox(store, clock, am=am)
    clock.advance(30)
    await ob2.tick()
    assert am.sent[-1].id == "t1#r2"
    await ob2.enqueue(note("res", "resolve", receiver="am"))
    await ob2.tick()
    clock.advance(300)
    await ob2.tick()
    assert [n.id for n in am.sent][-1] == "res" and len(am.sent) == 4
    assert await store.get(REPEAT_KEY) == b"{}"


async def test_repeats_stop_for_a_receiver_that_left_the_config(store: Store) -> None:
    clock, am = FakeClock(0.0), Fake(repeat_seconds=30)
    ob, _ = outbox(store, clock, am=am)
    await ob.enqueue(note("t1", receiver="am"))
    await ob.tick()
    # restart with "am" removed from the receivers: nothing to remind, nothing to fail
    ob2, reg = outbox(store, clock, pd=Fake())
    clock.advance(30)
    assert await ob2.tick() == 0
    assert await store.get(REPEAT_KEY) == b"{}"
    assert await store.outbox_due(clock.now() + 3600) == []
    assert (
        reg.get_sample_value(
            "crisiswatch_notifications_given_up_total", {"receiver": "am", "reason": "failed"}
        )
        is None
    )


async def test_run_delivers_to_a_real_receiver_promptly() -> None:
    import asyncio

    store = await open_store("sqlite://:memory:")
    async with Receiver(202) as rx, aiohttp.ClientSession() as session:
        cfg = DeliveryConfig.model_validate(
            {"receivers": [{"name": "pd", "type": "pagerduty", "url": rx.url(),
                            "routing_key_env": "K"}]}
        )  # fmt: skip
        clock = SystemClock()
        notifiers = build_notifiers(cfg.receivers, session, env={"K": "k"}, clock=clock)
        ob = Outbox(store, notifiers, clock, CollectorRegistry())
        task = asyncio.create_task(ob.run())
        await ob.enqueue(note("n1", receiver="pd"))
        for _ in range(200):
            if rx.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rx.requests[0].json()["dedup_key"] == "k"
    await store.close()


async def test_kill_minus_9_loses_no_notification(tmp_path: Path) -> None:
    """Every notification that was durable before SIGKILL is delivered after a restart."""
    import asyncio
    import os
    import signal
    import sys

    from tests.alerting.notifiers.receiver import Answer

    driver = Path(__file__).with_name("outbox_driver.py")
    root = str(Path(__file__).resolve().parents[2])
    environ = {**os.environ, "PYTHONPATH": root}
    db = str(tmp_path / "kill.db")
    # 503 every third answer keeps retries in flight when the kill lands.
    async with Receiver(Answer(200), Answer(200), Answer(503)) as rx:
        rx.script(*([Answer(200), Answer(200), Answer(503)] * 200), Answer(200))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(driver), "produce", db, rx.url("/hook"), "80",
            stdout=asyncio.subprocess.PIPE, env=environ,
        )  # fmt: skip
        assert proc.stdout is not None
        durable: list[str] = []
        while len(durable) < 40:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "driver exited early"
            durable.append(line.decode().split()[1])
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        before_restart = {r.headers["X-Crisiswatch-Id"] for r in rx.requests if r.status == 200}
        assert len(before_restart) < 80  # the kill really interrupted delivery

        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(driver), "drain", db, rx.url("/hook"),
            stdout=asyncio.subprocess.PIPE, env=environ,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and out.strip().endswith(b"drained")
        ok = {r.headers["X-Crisiswatch-Id"] for r in rx.requests if r.status == 200}
        assert any(r.status == 503 for r in rx.requests)
    assert set(durable) <= ok  # at least once: nothing durable was lost
    store = await open_store(f"sqlite:///{db}")
    stats = await store.outbox_stats(0.0)
    await store.close()
    assert stats["pending"] == 0 and stats["delivered"] >= len(durable)


async def _escalation_restart(
    tmp_path: Path, down_seconds: float
) -> tuple[float, float, list[Any]]:
    """Open a crisis in a driver process, SIGKILL it right after level 1 was paged, keep it
    down `down_seconds`, restart it; return (opened_at, restarted_at, requests)."""
    import asyncio
    import os
    import signal
    import sys

    driver = Path(__file__).with_name("escalation_driver.py")
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    db, clock, delay = str(tmp_path / "esc.db"), SystemClock(), "4"
    async with Receiver(200) as rx:
        args = (str(driver), "open", db, rx.url("/hook"), delay)
        proc = await asyncio.create_subprocess_exec(sys.executable, *args, env=environ)
        for _ in range(400):
            if rx.requests:
                break
            await asyncio.sleep(0.05)
        assert rx.requests and rx.requests[0].json()["recipient"] == "ana"
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(down_seconds)
        restarted = clock.now()
        args = (str(driver), "resume", db, rx.url("/hook"), delay)
        proc = await asyncio.create_subprocess_exec(sys.executable, *args, env=environ)
        try:
            for _ in range(200):
                if any(r.json()["recipient"] == "lead" for r in rx.requests):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # would a duplicate follow?
        finally:
            proc.terminate()
            await proc.wait()
        opened = float(rx.requests[0].json()["incident"]["opened_at"])
        return opened, restarted, list(rx.requests)


def distinct_pages(reqs: list[Any]) -> list[tuple[str, float]]:
    """(recipient, first arrival) per notification id, in arrival order.

    Delivery is at least once: a page accepted just before the kill may arrive again after the
    restart, always under the same notification id (the receiver's idempotency key). What must
    not happen is a second, different level-1 page from the replayed escalation step.
    """
    first: dict[str, tuple[str, float]] = {}
    for r in reqs:
        body = r.json()
        first.setdefault(body["id"], (body["recipient"], r.at))
    return sorted(first.values(), key=lambda p: p[1])


async def test_kill_minus_9_mid_escalation_next_level_on_time(tmp_path: Path) -> None:
    """Killed after level 1 (ana), back before level 2 is due: lead is paged on schedule."""
    opened, _, reqs = await _escalation_restart(tmp_path, down_seconds=0.2)
    pages = distinct_pages(reqs)
    assert [p for p, _ in pages] == ["ana", "lead"]
    lead_at = pages[1][1]
    assert opened + 4 - 0.2 <= lead_at <= opened + 4 + 1.5


async def test_kill_minus_9_past_due_pages_next_level_right_after_restart(
    tmp_path: Path,
) -> None:
    """Down while level 2 fell due: lead is paged as soon as the service is back."""
    opened, restarted, reqs = await _escalation_restart(tmp_path, down_seconds=5.0)
    pages = distinct_pages(reqs)
    assert [p for p, _ in pages] == ["ana", "lead"]
    assert restarted > opened + 4
    assert pages[1][1] <= restarted + 5.0  # interpreter start-up included, on a shared 2-core box


async def test_run_survives_a_failing_store_scan_and_tells_it_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged outbox table logged a traceback at every scan, one per second of service
    time (QA, thirteenth session): once per outage now, and once when it works again."""

    class Flaky:
        def __init__(self, inner: Store) -> None:
            self.inner, self.down, self.failed = inner, True, 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def outbox_oldest(self, per_receiver: int) -> list[Any]:
            if self.down:
                self.failed += 1
                raise OSError("disk hiccup")
            return await self.inner.outbox_oldest(per_receiver)

    caplog.set_level(logging.INFO, logger="alerting.outbox")
    fake = Fake()
    flaky = Flaky(store)
    ob = Outbox(flaky, {"r": fake}, FakeClock(1_000.0), CollectorRegistry())
    task = asyncio.create_task(ob.run())
    while flaky.failed < 5:
        await asyncio.sleep(0.01)
    assert ob.health()["store_error"] == "OSError: disk hiccup"
    assert ob.health()["status"] == "degraded"
    flaky.down = False
    await ob.enqueue(note("n1"))
    for _ in range(100):
        if fake.sent:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [n.id for n in fake.sent] == ["n1"] and ob.health()["store_error"] is None
    told = [r for r in caplog.records if "scan failed" in r.getMessage()]
    assert len(told) == 1 and told[0].exc_info is not None
    assert "outbox scans work again (after OSError: disk hiccup)" in caplog.text


async def test_the_oldest_pending_age_grows_while_the_scans_fail(store: Store) -> None:
    """Set by a scan, the gauge stood still when the scans failed, and the stuck-outbox alert
    watching it never fired (operations QA, fourteenth session)."""

    class Refusing:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def outbox_oldest(self, per_receiver: int) -> list[Any]:
            raise OSError("database disk image is malformed")

    clock, reg = FakeClock(1_000.0), CollectorRegistry()
    ob = Outbox(Refusing(store), {"r": Fake()}, clock, reg)
    age = functools.partial(reg.get_sample_value, "crisiswatch_outbox_oldest_pending_seconds")
    assert age() == 0
    await ob.enqueue(note("n1"))
    clock.advance(300)
    with pytest.raises(OSError):
        await ob.tick()
    assert age() == 300 and ob.health()["oldest_pending_age"] == 300


async def test_an_expired_resolve_stops_the_repeats(store: Store) -> None:
    # The resolve was never sent (receiver down, or the process down past expiry): giving up
    # on it must not leave the alert re-fired as "still firing" forever.
    clock, am = FakeClock(0.0), Fake(repeat_seconds=30)
    ob, _ = outbox(store, clock, am=am)
    await ob.enqueue(note("t1", receiver="am"))
    await ob.tick()
    await ob.enqueue(note("res", "resolve", receiver="am"))
    clock.advance(700)  # past expire_seconds (600) before the resolve's first attempt
    ob2, reg = outbox(store, clock, am=am)
    await ob2.tick()
    for _ in range(3):
        clock.advance(30)
        await ob2.tick()
    assert [n.id for n in am.sent] == ["t1"]
    assert await store.get(REPEAT_KEY) == b"{}"
    assert (
        reg.get_sample_value(
            "crisiswatch_notifications_given_up_total", {"receiver": "am", "reason": "expired"}
        )
        == 1.0
    )


async def test_a_retry_after_beyond_the_expiry_is_capped_not_a_give_up(store: Store) -> None:
    # A receiver asking for a day's pause must not make the page expire at once.
    clock = FakeClock(0.0)
    ob, _ = outbox(store, clock, r=Fake(RateLimited("r", 86400.0)))
    await ob.enqueue(note("n1"))
    await ob.tick()
    (row,) = await store.outbox_due(1e9)
    assert row.state == "pending" and row.due_at == 60.0  # max_delay_seconds


async def test_a_503_with_retry_after_is_honoured(store: Store) -> None:
    answer = Answer(503, "down for maintenance", {"Retry-After": "45"})
    async with Receiver(answer) as rx, aiohttp.ClientSession() as s:
        hook = {"name": "r", "type": "webhook", "url": rx.url(), "secret_env": "S"}
        c = DeliveryConfig.model_validate({"receivers": [hook]})
        clock = FakeClock(0.0)
        notifiers = build_notifiers(c.receivers, s, env={"S": "s"}, clock=clock)
        ob, _ = outbox(store, clock, **notifiers)
        await ob.enqueue(note("n1"))
        await ob.tick()
    (row,) = await store.outbox_due(1e9)
    assert row.due_at == 45.0 and row.last_error == "HTTP 503: down for maintenance"


def filler(i: int, receiver: str, created: float, due: float) -> OutboxRow:
    """A pending row of its own group, written straight to the store (a backlog)."""
    p = {"id": f"f{i}", "receiver": receiver, "action": "trigger", "dedup_key": f"fk{i}",
         "incident": {}, "created_at": created}  # fmt: skip
    return OutboxRow(f"f{i}", receiver, p, created, due, 1e9, 1, "pending", None)


async def test_resolve_never_overtakes_its_trigger_behind_a_backlog(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More rows pending than one scan reads: the trigger backing off must not fall out of the
    # scan while its resolve, newer but due earlier, is sent on its own (resolve-before-trigger
    # opens a PagerDuty incident that never resolves).
    monkeypatch.setattr(outbox_mod, "_SCAN_LIMIT", 5)
    clock, fake = FakeClock(0.0), Fake(transient())
    ob, _ = outbox(store, clock, r=fake)
    await ob.enqueue(note("t", "trigger"))
    await ob.tick()  # t fails, backs off to 1..2 s
    (t,) = await store.outbox_due(1e9)
    for i in range(10):  # the same receiver's backlog, due before t's retry
        await store.outbox_enqueue(filler(i, "r", 0.1, t.due_at - 0.05))
    clock.set(0.5)
    await ob.enqueue(note("z", "resolve"))
    await ob.tick()
    assert [n.id for n in fake.sent] == []
    clock.set(t.due_at)
    while await ob.tick():
        pass
    sent = [n.id for n in fake.sent]
    assert sent.index("t") < sent.index("z") and len(sent) == 12


async def test_a_backlog_of_one_receiver_does_not_hold_up_another(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_mod, "_SCAN_LIMIT", 5)
    clock, slow, pd = FakeClock(10.0), Fake(), Fake()
    ob, _ = outbox(store, clock, slow=slow, pd=pd)
    for i in range(10):  # older, backing off for a minute
        await store.outbox_enqueue(filler(i, "slow", 1.0, 70.0))
    await ob.enqueue(note("page", receiver="pd"))
    assert await ob.tick() == 1 and [n.id for n in pd.sent] == ["page"]


async def test_pending_counts_every_row_not_one_scan(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_mod, "_SCAN_LIMIT", 5)
    clock = FakeClock(100.0)
    ob, reg = outbox(store, clock, r=Fake(), other=Fake())
    for i in range(12):
        await store.outbox_enqueue(filler(i, "r", 1.0 + i, 500.0))
    await store.outbox_enqueue(filler(99, "other", 50.0, 500.0))
    await ob.tick()
    assert ob.health()["pending"] == 13
    assert ob.health()["oldest_pending_age"] == 99.0
    assert reg.get_sample_value("crisiswatch_outbox_pending") == 13.0


async def test_no_repeat_is_queued_behind_a_resolve_beyond_the_scan(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_mod, "_SCAN_LIMIT", 5)
    clock, am = FakeClock(0.0), Fake(repeat_seconds=30)
    ob, _ = outbox(store, clock, am=am)
    await ob.enqueue(note("t1", receiver="am"))
    await ob.tick()
    for i in range(6):  # a backlog for "am" that is not due yet
        await store.outbox_enqueue(filler(i, "am", 1.0, 1000.0))
    clock.set(2.0)
    await ob.enqueue(note("res", "resolve", receiver="am"))  # beyond the scan
    clock.set(30.0)
    await ob.tick()
    # a "still firing" re-send created now would go out after the resolve and re-open the alert
    assert "t1#r1" not in [r.id for r in await store.outbox_due(1e9, limit=100)]


async def test_a_repeat_held_back_by_a_busy_alert_does_not_spin_the_loop(store: Store) -> None:
    # The repeat is due but waits for the acknowledge backing off in its group: the loop must
    # sleep until something changes, not rescan the store without pause until then.
    clock = FakeClock(0.0)
    am = Fake(None, RateLimited("am", 60.0), repeat_seconds=30)
    ob, _ = outbox(store, clock, am=am)
    await ob.enqueue(note("t1", receiver="am"))
    await ob.tick()
    clock.set(10.0)
    await ob.enqueue(note("a1", "acknowledge", receiver="am"))
    await ob.tick()  # 429: back off until 70
    clock.set(30.0)
    assert await ob._dispatch() > 0  # the wait until the next scan
    assert [n.id for n in am.sent] == ["t1"]


async def test_an_attempt_ending_during_a_pass_is_not_started_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass scans pending rows, then awaits store writes; an attempt that is delivered in
    between left its scanned row stale ("pending"), and the pass sent it a second time (QA: 3–4
    of 20 webhook pages went out twice)."""
    import asyncio

    gate = asyncio.Event()

    class Gated(Fake):
        async def send(self, n: Notification) -> None:
            await gate.wait()
            await super().send(n)

    rx = Gated()
    ob, _ = outbox(store, FakeClock(0.0), r=rx)
    await ob.enqueue(note("a"))
    await ob._dispatch()  # the attempt starts and waits at the gate
    ((_, attempt),) = ob._in_flight.values()
    observe = ob._observe

    async def observe_while_the_attempt_ends(*args: Any) -> None:
        await observe(*args)
        gate.set()
        await attempt  # delivered, after this pass's scan saw the row pending

    monkeypatch.setattr(ob, "_observe", observe_while_the_attempt_ends)
    await ob._dispatch()
    await asyncio.gather(*(t for _, t in ob._in_flight.values()))
    assert [n.id for n in rx.sent] == ["a"]
    monkeypatch.undo()
    assert await ob.tick() == 0  # the next pass sees it delivered


class Hanging:
    """A receiver that never answers (until told to)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def send(self, n: Notification) -> None:
        await self.release.wait()


async def test_receivers_that_hang_hold_up_no_other_receiver(store: Store) -> None:
    """Ten black-holed webhooks held all eight delivery slots until their timeouts: every
    page to the pager waited 10 s behind them (resilience QA, twelfth session)."""
    clock, hang, pager = FakeClock(10.0), Hanging(), Fake()
    cfg = OutboxConfig(concurrency=2)
    hooks = {f"h{i}": hang for i in range(3)}
    ob = Outbox(store, {**hooks, "pager": pager}, clock, CollectorRegistry(), config=cfg)
    for name in hooks:
        await ob.enqueue(note(f"{name}/1", receiver=name, key=name))
    await ob.enqueue(note("page", receiver="pager"))
    await ob._dispatch()
    for _ in range(200):
        if pager.sent:
            break
        await asyncio.sleep(0.005)
    assert [n.id for n in pager.sent] == ["page"]
    hang.release.set()
    assert await ob.tick() == 0  # the hung attempts end; nothing else was due
