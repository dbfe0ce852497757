"""The watermark after a restart: a backlog that is slow to start must not arrive late."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app import App
from monitor.clock import FakeClock
from monitor.storage import open_store
from tests.conftest import demo_config, http_only_config


async def test_after_a_restart_nothing_closes_until_every_source_delivered(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_700_000_000.0)
    cfg = demo_config(tmp_path)
    store = await open_store(cfg.storage.url)
    app = await App.open(cfg, clock, store)
    try:
        lateness, hold = cfg.aggregation.watermark_seconds, cfg.aggregation.startup_hold_seconds
        assert app.sources and hold > 0
        now = clock.now()
        assert app.complete_until() == now  # a first start: nothing to wait for
        app.aggregator.closed_until = now - 600.0  # the last run stopped ten minutes ago
        app.started_at = now
        # no source has delivered yet: the watermark stays where the last run left it
        assert app.complete_until() - lateness == now - 600.0
        clock.advance(hold - 1.0)
        assert app.complete_until() - lateness == now - 600.0
        # the backlog starts: from here the catching-up rule follows it in event time
        for s in app.sources:
            s.health.seen(now - 590.0, clock.now())
        assert app.complete_until() == now - 590.0
        # a source that never delivers holds the watermark back no longer than the hold
        for s in app.sources:
            s.health.last_received_at = None
        clock.advance(1.0)
        assert app.complete_until() == clock.now()
    finally:
        await app.close()
        await store.close()


async def test_after_a_restart_the_hold_waits_for_push_endpoints_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client re-sending what it held while the service was down, 10 s after the restart,
    found those minutes closed: counted late, a false dip (QA, tenth session)."""
    monkeypatch.setenv("CW_TEST_HOLD_TOKEN", "s3cret")
    clock = FakeClock(1_700_000_000.0)
    cfg = http_only_config(tmp_path, "CW_TEST_HOLD_TOKEN")
    store = await open_store(cfg.storage.url)
    app = await App.open(cfg, clock, store)
    try:
        lateness = cfg.aggregation.watermark_seconds
        assert not app.sources and app.push_health  # HTTP ingest only
        now = clock.now()
        app.aggregator.closed_until = now - 120.0  # down for two minutes
        app.started_at = now
        clock.advance(10.0)
        assert app.complete_until() - lateness == now - 120.0  # held: nobody posted yet
        app.push_health[0].seen(now - 100.0, clock.now())  # the client's backlog arrives
        assert app.complete_until() == clock.now()
    finally:
        await app.close()
        await store.close()
