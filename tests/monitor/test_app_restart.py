"""A restart between two checkpoints of the same minute: what a source sends again is not
counted again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.app import App
from monitor.clock import FakeClock
from monitor.decode import encode_mention
from monitor.model import Author, Mention
from monitor.storage import open_store
from tests.conftest import demo_config, http_only_config

T0 = 1_700_000_000.0


def mentions(ids: range, t: float) -> list[Mention]:
    return [Mention(str(i), "http", "web", "acme is down", t, Author("a", "@a", 1)) for i in ids]


def open_count(app: App, topic: str = "acme") -> int:
    return sum(b["count"] for b in app.aggregator.snapshot()["open"] if b["series"] == topic)


async def test_mentions_sent_again_after_a_restart_are_not_counted_twice(tmp_path: Path) -> None:
    """The demo re-emits its open minute after a restart, a replay its files, an HTTP client
    retries: the pipeline's dedup window lived in memory only, so each doubled the open bucket
    (QA, tenth session: 20 mentions of a replay counted 40 times after one restart)."""
    clock = FakeClock(T0)
    cfg = demo_config(tmp_path)
    store = await open_store(cfg.storage.url)
    try:
        app = await App.open(cfg, clock, store)
        app.pipeline.ingest(mentions(range(20), T0 - 5))
        assert open_count(app) == 20
        await app.checkpoint()
        await app.close()

        again = await App.open(cfg, clock, store)
        try:
            assert open_count(again) == 20  # the open bucket came back with its count
            again.pipeline.ingest(mentions(range(25), T0 - 5))  # 20 sent again, 5 new
            assert open_count(again) == 25
        finally:
            await again.close()
    finally:
        await store.close()


async def test_the_checkpoint_is_periodic_even_while_no_bucket_closes(tmp_path: Path) -> None:
    """With 5-minute buckets the checkpoint waited for one to close: 50 mentions acknowledged
    with 200 were gone after a kill -9 45 s later (QA, tenth session)."""
    clock = FakeClock(T0)
    cfg = demo_config(
        tmp_path, aggregation={"bucket_seconds": 300}, storage={"checkpoint_seconds": 10}
    )
    store = await open_store(cfg.storage.url)
    try:
        app = await App.open(cfg, clock, store)
        try:
            await app.pipeline.advance(T0 - 60)  # event time begins; nothing saved yet
            app.pipeline.ingest(mentions(range(50), T0 + 10))
            clock.advance(15)
            assert await app.pipeline.advance(T0 + 15 - 60) == []  # no bucket closes...
            assert await store.get("aggregator") is not None  # ...the checkpoint came anyway
        finally:
            await app.close()
        again = await App.open(cfg, clock, store)  # as after a kill -9: no final checkpoint
        try:
            assert open_count(again) == 50
        finally:
            await again.close()
    finally:
        await store.close()


async def test_a_batch_re_sent_after_a_restart_is_answered_as_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline dropped it (its dedup window survives the restart) but the client was
    told "accepted: 60, duplicate: 0" (QA, tenth session)."""
    monkeypatch.setenv("CW_TEST_RESEND_TOKEN", "s3cret")
    clock = FakeClock(T0)
    cfg = http_only_config(tmp_path, "CW_TEST_RESEND_TOKEN")
    body = "\n".join(json.dumps(encode_mention(m)) for m in mentions(range(5), T0 - 5))
    headers = {"Authorization": "Bearer s3cret", "Content-Type": "application/x-ndjson"}
    store = await open_store(cfg.storage.url)
    try:
        for expected in ({"accepted": 5, "duplicate": 0}, {"accepted": 0, "duplicate": 5}):
            app = await App.open(cfg, clock, store)
            try:
                async with TestClient(TestServer(app.web)) as client:
                    r = await client.post("/api/v1/mentions", data=body, headers=headers)
                    got = await r.json()
                assert {k: got[k] for k in expected} == expected, got
                app.drain()
                await app.checkpoint()
            finally:
                await app.close()
    finally:
        await store.close()


async def test_the_wall_tiles_and_counter_keep_their_history_across_a_restart(
    tmp_path: Path,
) -> None:
    """Each tile had 184 points (3 hours) before a restart and 1 after (QA, tenth session)."""
    clock = FakeClock(T0)
    cfg = demo_config(tmp_path)
    store = await open_store(cfg.storage.url)
    try:
        app = await App.open(cfg, clock, store)
        try:
            await app.pipeline.advance(T0 - 600)
            for k in range(5):
                app.pipeline.ingest(mentions(range(10 * k, 10 * k + 3), T0 - 590 + 60 * k))
                await app.pipeline.advance(T0 - 540 + 60 * k)
            before = app.wall.snapshot()["series"]["acme"]
            assert len(before) >= 5
            assert app.pipeline.processed == 15
            await app.checkpoint()
        finally:
            await app.close()
        again = await App.open(cfg, clock, store)
        try:
            assert again.wall.snapshot()["series"]["acme"] == before
            # the header's "mentions processed" went back to 0, which read as data lost (QA)
            assert again.pipeline.processed == 15 and again.live()["processed"] == 15
        finally:
            await again.close()
    finally:
        await store.close()
