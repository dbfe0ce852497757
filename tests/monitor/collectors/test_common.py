"""Backoff, dedup, secrets, resume-state saving: the shared pieces."""

from __future__ import annotations

import logging
import statistics
from dataclasses import replace

import aiomqtt
import pytest

from monitor.clock import FakeClock
from monitor.collectors.common import (
    STABLE_SECONDS,
    Backoff,
    Checkpoint,
    Intake,
    RecentKeys,
    Secret,
)
from monitor.collectors.ingest import split_body
from monitor.collectors.mqtt import MqttSource
from monitor.config.sources import MqttSourceConfig

from .conftest import DownKV, make_harness


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    b = Backoff(initial=1.0, maximum=10.0, floor=0.05, seed=42)
    caps = [1, 2, 4, 8, 10, 10, 10]
    waits = [b.next() for _ in caps]
    assert all(0.05 <= w <= c for w, c in zip(waits, caps, strict=True))
    b.reset()
    assert b.attempt == 0 and b.next() <= 1.0
    # full jitter: at the cap the waits spread over the whole range, mean about half the cap
    many = [Backoff(1.0, 10.0, seed=s) for s in range(2000)]
    for x in many:
        for _ in range(6):
            x.next()
    last = [x.next() for x in many]
    assert 4.0 < statistics.mean(last) < 6.0
    assert min(last) < 1.0 and max(last) > 9.0
    # seeded: reproducible
    assert [Backoff(seed=7).next() for _ in range(3)] == [Backoff(seed=7).next() for _ in range(3)]


def test_dedup_is_bounded_lru_and_snapshots() -> None:
    d = RecentKeys(3)
    for k in "abc":
        assert not d.seen(k)
    assert d.seen("a")  # refreshes a
    assert not d.seen("d")  # evicts b, the least recently seen
    assert "b" not in d and "a" in d and len(d) == 3
    assert d.recent(2) == ["a", "d"]
    r = RecentKeys.restore(d.snapshot(2), 10)
    assert r.recent(10) == ["a", "d"]
    assert len(RecentKeys.restore(b"not json")) == 0
    assert len(RecentKeys.restore(b'{"a": 1}')) == 0


def test_secret_hides_its_value() -> None:
    s = Secret.from_env({"T": "abc"}, "T")
    assert s is not None and s.reveal() == "abc"
    assert "abc" not in f"{s} {s!r} {[s]} { ({'k': s}) }"
    assert Secret.from_env({}, "T") is None and Secret.from_env({"T": ""}, "T") is None
    assert Secret.from_env({"T": "x"}, None) is None


async def test_checkpoint_is_due_every_interval_and_backs_off_after_a_failed_save() -> None:
    clock = FakeClock(0.0)
    ctx = make_harness(clock).ctx
    cp = Checkpoint("src", ctx, every=10.0, retry_seconds=60.0)
    assert not cp.due()
    clock.advance(10.0)
    assert cp.due() and await cp.save("k", b"1")
    assert not cp.due() and await ctx.state.get("k") == b"1"
    down = Checkpoint("src", replace(ctx, state=DownKV()), every=10.0, retry_seconds=60.0)
    clock.advance(10.0)
    assert down.due() and not await down.save("k", b"2")  # logged, never raised
    clock.advance(59.0)
    assert not down.due()  # a store that is down is not asked again on every message
    clock.advance(1.0)
    assert down.due() and down.failures == 1


@pytest.mark.parametrize("pasted", ["hunter2", "Tr0ub4dor_and_3"])
def test_secret_from_env_does_not_log_a_name_that_may_be_a_secret(
    pasted: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert Secret.from_env({}, pasted) is None
        assert Secret.from_env({}, "MASTODON_TOKEN") is None
    assert pasted not in caplog.text
    assert [r.getMessage() for r in caplog.records] == [
        "a variable that a sources *_env key names (not shown: not a usual name) is not set; "
        "the feature that needs it is off",
        "environment variable MASTODON_TOKEN is not set; the feature that needs it is off",
    ]


def test_a_byte_order_mark_is_read_alike_by_every_single_document_path() -> None:
    # QA: accepted by HTTP ingest and replay, but `malformed_json` over MQTT
    doc = b'{"id": "1", "text": "t", "created_at": 1, "author": {"id": "a"}}'
    h = make_harness()
    m = MqttSource(MqttSourceConfig(enabled=True), h.ctx).decode(b"\xef\xbb\xbf" + doc)
    assert m is not None and m.id == "1" and h.letters.items == []
    lines = b"\xef\xbb\xbf" + doc + b"\n" + doc
    items = list(split_body(lines, "application/x-ndjson", max_item_bytes=1000))
    assert [i.error for i in items] == [None, None]


def test_a_source_that_cannot_connect_is_told_once_then_every_ten_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every reconnect attempt logged a warning: ~300 lines an hour for a broker that stayed
    down (operations QA, fourteenth session)."""
    clock = FakeClock(0.0)
    intake = Intake("mqtt", "mqtt", make_harness(clock).ctx)
    refused = ConnectionRefusedError(111, "Connect call failed")
    with caplog.at_level(logging.DEBUG, logger="monitor.collectors"):
        for _ in range(21):  # one attempt every 30 s for 10 minutes
            intake.link(False, refused)
            clock.advance(30)
        intake.link(True)
        clock.advance(STABLE_SECONDS)  # a connection that held
        intake.link(False, refused)  # a new outage: told again
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    why = "ConnectionRefusedError: [Errno 111] Connect call failed"
    assert loud == [
        f"mqtt: connection lost: {why}",
        f"mqtt: still not connected (21 attempts): {why}",
        f"mqtt: connection lost: {why}",
    ]


def test_a_link_that_flaps_is_one_outage_told_once(caplog: pytest.LogCaptureFixture) -> None:
    """Two MQTT clients with one client id took the session from each other: each short-lived
    connection ended the outage and the next drop was a new one, a warning per flap (QA: 268
    warnings in 70 s)."""
    clock = FakeClock(0.0)
    intake = Intake("mqtt", "mqtt", make_harness(clock).ctx)
    kicked = aiomqtt.MqttError("Disconnected during message iteration")
    with caplog.at_level(logging.DEBUG, logger="monitor.collectors"):
        for _ in range(100):
            intake.link(True)
            clock.advance(0.3)
            intake.link(False, kicked)
            clock.advance(0.2)
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == ["mqtt: connection lost: MqttError: Disconnected during message iteration"]
    quiet = [r.getMessage() for r in caplog.records if r.levelno < logging.WARNING]
    assert quiet[0].startswith("mqtt: connection lost again after 0.3 s (2 in a row lasted less")


def test_backoff_starts_over_only_after_a_stable_connection() -> None:
    b = Backoff(0.5, 30.0, seed=1)
    for _ in range(5):
        b.next()
        b.settle(1.0)  # up for a second, then kicked: keep backing off
    assert b.attempt == 5
    b.settle(None)
    assert b.attempt == 5
    b.settle(STABLE_SECONDS)
    assert b.attempt == 0
