"""A graceful restart loses no mention: what was queued is counted at shutdown, and the open
buckets travel through the store with the watermark."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from detectors.stage import DetectionStage
from monitor.app import App
from monitor.clock import FakeClock, ScaledClock
from monitor.config import Config
from monitor.decode import encode_mention
from monitor.model import Author, Bucket, Mention
from monitor.storage import Store, open_store
from monitor.storage.base import OutboxRow
from tests.conftest import demo_config, http_only_config

TOKEN = "shutdown-test-token"
NOW = 1_700_000_000.0


def mention(i: int, t: float) -> Mention:
    return Mention(
        id=f"m{i}",
        source="http",
        channel="x",
        text=f"acme support is down again #{i}",
        created_at=t,
        author=Author(id=f"a{i}", handle=f"@a{i}", followers=10 + i),
        lang="en",
    )


def open_count(app: App, topic: str) -> int:
    return sum(b.count for b in app.aggregator.open_buckets() if b.series == topic)


@pytest.fixture
async def quiet(tmp_path: Path) -> AsyncIterator[tuple[Config, Store]]:
    """The demo config without the demo source, and its store."""
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    store = await open_store(cfg.storage.url)
    yield cfg, store
    await store.close()


async def test_queued_and_stranded_mentions_are_counted_and_kept_across_a_restart(
    quiet: tuple[Config, Store],
) -> None:
    cfg, store = quiet
    clock = FakeClock(NOW)
    app = await App.open(cfg, clock, store)
    for i in range(30):
        app.queue.put_nowait(mention(i, NOW - 5))
    app._stranded.append(mention(99, NOW - 5))  # what a cancelled pump held
    assert app.drain() == 31 and app.queue.empty()
    assert open_count(app, "acme") == 31
    await app.checkpoint()
    await app.close()

    again = await App.open(cfg, clock, store)
    assert open_count(again, "acme") == 31
    (bucket,) = [b for b in again.aggregator.open_buckets() if b.series == "acme"]
    assert bucket.negative == 31 and len(bucket.samples) == cfg.aggregation.samples_per_bucket
    assert bucket.samples[0].mention.author.followers == 10 + 99  # highest reach first
    await again.close()


async def test_saved_state_ahead_of_the_clock(quiet: tuple[Config, Store]) -> None:
    cfg, store = quiet
    ahead = await App.open(cfg, FakeClock(NOW + 3600), store)  # a --speed 10 demo, say
    ahead.queue.put_nowait(mention(1, NOW + 3500))
    ahead.drain()
    await ahead.pipeline.advance(NOW + 3550)
    await ahead.checkpoint()
    await ahead.close()
    assert ahead.aggregator.closed_until is not None and ahead.detector.series_count

    # a clock set back: the state is not restored
    app = await App.open(cfg, FakeClock(NOW), store)
    assert app.aggregator.closed_until is None and app.detector.series_count == 0
    await app.close()

    # a sped-up run restarted: its clock resumes at the saved state, which is kept
    scaled = ScaledClock(FakeClock(NOW), speed=10.0)
    app = await App.open(cfg, scaled, store)
    assert app.aggregator.closed_until == ahead.aggregator.closed_until
    assert app.detector.series_count == ahead.detector.series_count
    assert scaled.now() >= ahead.aggregator.closed_until
    await app.close()


@pytest.mark.integration
async def test_mentions_accepted_before_a_graceful_stop_survive_it(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CW_TEST_SHUTDOWN_TOKEN", TOKEN)
    sources = {
        "demo": {"enabled": False},
        "http": {"enabled": True, "token_env": "CW_TEST_SHUTDOWN_TOKEN"},
    }
    now = time.time()
    async with app_factory(speed=1.0, sources=sources) as run, aiohttp.ClientSession() as http:
        lines = "\n".join(json.dumps(encode_mention(mention(i, now - 5))) for i in range(40))
        async with http.post(
            run.url + "/api/v1/mentions",
            data=lines,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
        ) as r:
            assert r.status in (200, 202), await r.text()
        for _ in range(200):
            if run.app.pipeline.processed >= 40:
                break
            await asyncio.sleep(0.05)
        config = run.app.config
        caplog.set_level(logging.INFO, logger="monitor.app")
    # the log says it stops and that it saved (a restart's first question)
    said = [r.getMessage() for r in caplog.records if r.name == "monitor.app"]
    assert said[-2:] == ["stopping: closing the sources, then saving state", "stopped: state saved"]
    # stopped: the open buckets were checkpointed; a new run starts with them
    store = await open_store(config.storage.url)
    try:
        app = await App.open(config, FakeClock(now), store)
        assert open_count(app, "acme") == 40
        await app.close()
    finally:
        await store.close()


async def test_the_last_log_line_counts_the_deliveries_still_owed(
    app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.app")
    async with app_factory(speed=1.0, sources={"demo": {"enabled": False}}) as run:
        now = time.time()
        payload = {"dedup_key": "inc-1", "action": "trigger"}
        row = OutboxRow(
            "inc-1/1", "console", payload, now, now + 3600, now + 7200, 0, "pending", None
        )
        await run.app.store.outbox_enqueue(row)
    said = [r.getMessage() for r in caplog.records if r.name == "monitor.app"]
    assert said[-1] == "stopped: state saved, 1 delivery pending (sent after the next start)"


async def test_a_store_outage_at_a_checkpoint_does_not_stop_detection(
    quiet: tuple[Config, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, store = quiet
    clock = FakeClock(NOW)
    app = await App.open(cfg, clock, store)
    real_put_many = store.put_many
    calls: list[list[str]] = []

    async def down(items: Mapping[str, bytes]) -> None:
        calls.append(sorted(items))
        raise ConnectionError("store down")

    monkeypatch.setattr(store, "put_many", down)
    clock.advance(cfg.storage.checkpoint_seconds + 1)
    await app.on_verdicts([])  # before: the error ended the ticker, and the service
    # one write, all or nothing
    assert calls == [["aggregator", "dedup", "detectors", "pipeline", "sources", "wall"]]
    health = await app.health()  # it said ok while nothing could be saved (QA, tenth session)
    assert not health["ok"] and health["problems"] == [
        "checkpoint failed: ConnectionError: store down"
    ]
    # and Prometheus sees it: /healthz's 503 had no metric, no rule could page (QA)
    sample = app.registry.get_sample_value
    assert sample("crisiswatch_health_problems") == 1
    assert sample("crisiswatch_checkpoint_last_success_timestamp_seconds") == 0
    monkeypatch.setattr(store, "put_many", real_put_many)
    await app.on_verdicts([])  # not due yet: the interval restarted at the failed attempt
    clock.advance(cfg.storage.checkpoint_seconds + 1)
    await app.on_verdicts([])
    assert await store.get("aggregator") is not None
    assert (await app.health())["ok"]
    assert sample("crisiswatch_health_problems") == 0
    assert sample("crisiswatch_checkpoint_last_success_timestamp_seconds") == clock.now()
    await app.close()


async def test_series_of_topics_removed_from_the_config_are_forgotten(
    quiet: tuple[Config, Store],
) -> None:
    cfg, store = quiet
    app = await App.open(cfg, FakeClock(NOW), store)
    app.queue.put_nowait(mention(1, NOW - 300))
    app.drain()
    await app.pipeline.advance(NOW)
    await app.checkpoint()
    await app.close()
    assert app.detector.series_count == len(cfg.topics) == 3

    fewer = cfg.model_copy(update={"topics": cfg.topics[:1]})
    again = await App.open(fewer, FakeClock(NOW), store)
    assert again.detector.series_count == 1  # the checkpoint no longer carries the others
    await again.close()


async def test_a_big_detector_checkpoint_lets_other_tasks_run_between_slices(
    quiet: tuple[Config, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pickling 100,000 series takes seconds; walls, ingest and timers must not stall."""
    cfg, store = quiet
    app = await App.open(cfg, FakeClock(NOW), store)
    app.detector.observe_many([Bucket(f"s{i}", NOW - 600, 60.0, count=i % 7) for i in range(2500)])
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    at_put: dict[str, int] = {}
    real_put_many = store.put_many

    async def put_many(items: Mapping[str, bytes]) -> None:
        for key in items:
            at_put.setdefault(key, turns)
        await real_put_many(items)

    monkeypatch.setattr(store, "put_many", put_many)
    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    start = turns
    await app.checkpoint()
    task.cancel()
    assert at_put["detectors"] - start >= 3  # three slices of 1,000 series, a turn after each
    again = DetectionStage(cfg.detection)
    blob = await store.get("detectors")
    assert blob is not None and again.restore(blob) == 0 and again.series_count == 2500
    await app.close()


async def test_an_ingest_endpoint_without_its_token_makes_the_service_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every POST answered 503 while /healthz said ok: a deployment check passed a service
    whose only source refused everything (QA, tenth session)."""
    monkeypatch.delenv("CW_TEST_UNSET_INGEST_TOKEN", raising=False)
    cfg = http_only_config(tmp_path, "CW_TEST_UNSET_INGEST_TOKEN")
    store = await open_store(cfg.storage.url)
    app = await App.open(cfg, FakeClock(NOW), store)
    try:
        health = await app.health()
        assert not health["ok"]
        assert health["problems"] == ["endpoint http refuses everything (not configured)"]
        monkeypatch.setenv("CW_TEST_UNSET_INGEST_TOKEN", "s3cret")
    finally:
        await app.close()
        await store.close()
    store = await open_store(cfg.storage.url)
    app = await App.open(cfg, FakeClock(NOW), store)
    try:
        assert (await app.health())["ok"]
    finally:
        await app.close()
        await store.close()


async def test_a_store_taken_by_another_instance_stops_the_service_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fenced PostgreSQL store (its lock taken by another instance while this one's lock
    connection was down) refuses every statement: the service stayed up, inert, with only
    /healthz degraded. It stops now, and says why."""
    from monitor import app as app_module
    from monitor.app import serve
    from monitor.errors import CrisiswatchError

    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}})
    opened: list[Store] = []

    async def open_and_keep(url: str, **kw: Any) -> Store:
        opened.append(await open_store(url, **kw))
        return opened[-1]

    monkeypatch.setattr(app_module, "open_store", open_and_keep)
    stop = asyncio.Event()
    service = asyncio.create_task(serve(cfg, FakeClock(NOW), stop))
    while not opened:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # up and serving
    assert not service.done()
    opened[0].taken.set()  # what PostgresStore does when it finds itself fenced
    with pytest.raises(CrisiswatchError, match=r"^storage\.url: another crisiswatch took"):
        await asyncio.wait_for(service, 10)
    assert stop.is_set()


async def test_the_lag_gauge_and_healthz_grow_while_no_bucket_closes(
    quiet: tuple[Config, Store],
) -> None:
    """The gauge was set to now - target before each advance, so an advance that stood still
    for minutes (a burst of incidents) read 60 s throughout and no alert could fire (QA)."""
    cfg, store = quiet
    clock = FakeClock(NOW)
    app = await App.open(cfg, clock, store)
    try:
        await app.pipeline.advance(NOW - 60)
        clock.advance(600)  # the next advance has not finished
        lag = app.registry.get_sample_value("crisiswatch_pipeline_lag_seconds")
        assert lag is not None and lag >= 600
        assert (await app.health())["watermark_lag_seconds"] == lag
    finally:
        await app.close()


async def test_a_start_says_which_store_it_opened_and_what_it_restored(
    quiet: tuple[Config, Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Started from another directory, the relative default path made a new, empty store and
    the log read exactly like a restart that restored everything (QA, thirteenth session)."""
    cfg, store = quiet
    caplog.set_level(logging.INFO, logger="monitor.app")
    clock = FakeClock(NOW)
    app = await App.open(cfg, clock, store)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("store ")]
    assert said == [
        f"store {store.where}: nothing to restore (a new store, or none of its state is in use)"
    ]
    assert store.where.startswith("sqlite:////")  # the absolute path, wherever it was started
    await app.pipeline.advance(NOW - 120)
    app.queue.put_nowait(mention(1, NOW - 5))
    app.drain()
    clock.set(NOW + 600)
    await app.pipeline.advance(NOW + 540)  # every topic's buckets closed: each has a series
    await app.checkpoint()
    await app.close()
    caplog.clear()
    again = await App.open(cfg, clock, store)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("store ")]
    assert len(said) == 1 and f"restored {len(cfg.topics)} series baselines" in said[0], said
    await again.close()


async def test_a_source_silent_since_a_restart_goes_stale_as_it_would_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push endpoint went stale, the service restarted, and it looked healthy for good:
    a source that had not delivered since the start was never stale (QA, fourteenth
    session: a deploy turned a dead feed into a calm day)."""
    monkeypatch.setenv("CW_TEST_STALE_TOKEN", "t")
    http_on = {"enabled": True, "token_env": "CW_TEST_STALE_TOKEN", "stale_after_seconds": 60}
    cfg = demo_config(tmp_path, sources={"demo": {"enabled": False}, "http": http_on})
    store = await open_store(cfg.storage.url)
    try:
        clock = FakeClock(NOW)
        app = await App.open(cfg, clock, store)
        (http,) = app.push_health
        for i in range(10):
            http.seen(NOW + 2 * i, now=NOW + 2 * i)
        clock.set(NOW + 200)
        assert (await app.health())["problems"] == ["source http is stale"]
        await app.checkpoint()
        await app.close()

        clock.set(NOW + 900)  # a deploy later, the endpoint still silent
        again = await App.open(cfg, clock, store)
        assert (await again.health())["ok"]  # silence counts from this start
        clock.advance(61)
        assert (await again.health())["problems"] == ["source http is stale"]
        await again.close()
    finally:
        await store.close()


async def test_a_checkpoint_that_keeps_failing_is_told_once_then_every_ten_minutes(
    quiet: tuple[Config, Store], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An error at every interval: 53 lines in 2.5 minutes at demo speed (QA)."""
    cfg, store = quiet
    clock = FakeClock(NOW)
    app = await App.open(cfg, clock, store)
    real_put_many = store.put_many

    async def down(items: Mapping[str, bytes]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "put_many", down)
    with caplog.at_level(logging.DEBUG, logger="monitor.app"):
        for _ in range(25):  # 12.5 minutes of 30 s intervals
            clock.advance(cfg.storage.checkpoint_seconds)
            await app.on_verdicts([])
        monkeypatch.setattr(store, "put_many", real_put_many)
        clock.advance(cfg.storage.checkpoint_seconds)
        await app.on_verdicts([])
    told = [(r.levelname, r.getMessage()) for r in caplog.records if "checkpoint" in r.getMessage()]
    loud = [t for t in told if t[0] != "DEBUG"]
    assert loud[0] == ("ERROR", "checkpoint failed; detection goes on, retried next interval")
    assert loud[1][1].startswith("checkpoint failed again (21 attempts): OSError")
    assert loud[2:] == [("INFO", "checkpoint saved again after 25 failed attempts")]
    await app.close()


async def test_a_stop_the_store_refuses_says_which_pages_go_with_it(
    quiet: tuple[Config, Store], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk's stop said only that the checkpoint failed, not that the pages owed were
    lost with it (operations QA, fourteenth session)."""
    cfg, store = quiet
    app = await App.open(cfg, FakeClock(NOW), store)

    async def full(items: Mapping[str, bytes]) -> None:
        raise OSError(28, "No space left on device")

    owed = {"events_waiting": 2, "steps_failing": False, "resume_owed": False, "unsaved": True}
    monkeypatch.setattr(store, "put_many", full)
    monkeypatch.setattr(app.incidents, "health", lambda: owed)
    with caplog.at_level(logging.INFO, logger="monitor.app"):
        await app._save_at_stop()
    assert caplog.messages[-1] == (
        "stopping with 2 incident events waiting, incident state not saved: lost, since the"
        " store refused it (page by hand)"
    )
    await app.close()
