from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.clock import FakeClock
from monitor.collectors.demo import DemoScenario, DemoSource
from monitor.config.sources import DemoSourceConfig

ORIGIN = 1_767_000_000.0  # a Monday afternoon-ish; any value works


def test_minutes_are_deterministic_and_ids_unique() -> None:
    s = DemoScenario(DemoSourceConfig(seed=3), ORIGIN)
    m = int(ORIGIN // 60)
    first = [x for b in s.config.brands for x in s.minute(b, m)]
    again = [x for b in s.config.brands for x in DemoScenario(s.config, ORIGIN).minute(b, m)]
    assert first == again
    assert len({x.key for x in first}) == len(first)


def test_a_scripted_crisis_raises_volume_and_negativity_for_one_brand_only() -> None:
    cfg = DemoSourceConfig()
    s = DemoScenario(cfg, ORIGIN)
    calm = range(int((ORIGIN - 3600) // 60), int((ORIGIN - 1800) // 60))
    crisis = s.crisis_at(ORIGIN + cfg.first_crisis_after_seconds + 60)
    assert crisis is not None and crisis.brand == "acme"
    peak = int((crisis.start + (crisis.end - crisis.start) / 2) // 60)

    def per_minute(brand: str, minutes: range) -> float:
        return sum(len(s.minute(brand, m)) for m in minutes) / len(minutes)

    assert len(s.minute("acme", peak)) > 3 * per_minute("acme", calm)
    assert len(s.minute("globex", peak)) < 3 * per_minute("globex", calm)
    texts = [x.text for x in s.minute("acme", peak)]
    assert sum(crisis.term_en in t or crisis.term_de in t for t in texts) > len(texts) / 3
    assert {x.lang for x in s.minute("acme", peak)} == {"en", "de"}


def test_crises_repeat_and_rotate_brands() -> None:
    cfg = DemoSourceConfig(first_crisis_after_seconds=60, crisis_every_seconds=600)
    s = DemoScenario(cfg, ORIGIN)
    brands = [s.crisis_at(ORIGIN + 60 + k * 600 + 100) for k in range(3)]
    assert [c.brand for c in brands if c] == ["acme", "globex", "initech"]
    assert s.crisis_at(ORIGIN + 30) is None


async def test_source_backfills_then_streams_in_event_time_order_per_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.collectors.demo")
    clock = FakeClock(ORIGIN + 0.25)
    src = DemoSource(DemoSourceConfig(), clock, backfill_seconds=600, tick=5)
    seen = []

    async def consume() -> None:
        async for m in src.stream():
            seen.append(m)

    task = asyncio.create_task(consume())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    assert seen and min(m.created_at for m in seen) >= ORIGIN - 600
    assert max(m.created_at for m in seen) < clock.now()
    assert len({m.key for m in seen}) == len(seen)
    assert src.health.connected and src.health.events == len(seen)
    # the origin a soak hands to bench/demo_crises.py, to the millisecond
    start = "2025-12-29T09:20:00.250Z"
    assert caplog.messages == [
        f"demo: crises scripted from {start} (bench/demo_crises.py --start {start})"
    ]
