from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.clock import FakeClock
from monitor.deadletter import DeadLetters
from monitor.storage import open_store


async def test_a_flood_of_one_reason_is_bounded_and_keeps_the_rare_reason(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/dl.db")
    try:
        dl = DeadLetters(store, FakeClock(1.0), keep=5, prune_every=10)
        dl.reject("webhook", "unknown_source", "rare", b"r")
        for i in range(300):
            dl.reject("mqtt", "malformed_json", f"line {i}", b"{" * 1000)
        await dl.flush()
        counts = await store.count_dead_letters()
        assert counts[("webhook", "unknown_source")] == 1
        assert counts[("mqtt", "malformed_json")] <= 5 + 10
        assert dl.count == 301 and dl.dropped == 0
        # and what earlier runs left is pruned by the first reject of the next one
        for _ in range(50):
            await store.add_dead_letter("mqtt", "malformed_json", "old", b"", 0.5)
        dl = DeadLetters(store, FakeClock(2.0), keep=5, prune_every=10)
        dl.reject("mqtt", "malformed_json", "new", b"")
        await dl.flush()
        assert (await store.count_dead_letters())[("mqtt", "malformed_json")] == 5
    finally:
        await store.close()


async def test_by_default_every_reject_is_kept(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/dl.db")
    try:
        dl = DeadLetters(store, FakeClock(1.0), prune_every=10)
        for i in range(300):
            dl.reject("mqtt", "malformed_json", f"line {i}", b"{")
        await dl.flush()
        assert (await store.count_dead_letters())[("mqtt", "malformed_json")] == 300
    finally:
        await store.close()


class SlowStore:
    """Holds every write until released; counts what arrived."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stored = 0

    async def add_dead_letter(
        self, source: str, reason: str, detail: str, payload: bytes, received_at: float
    ) -> None:
        await self.release.wait()
        self.stored += 1

    async def prune_dead_letters(self, keep: int) -> int:
        return 0


async def test_a_stalled_store_does_not_pile_up_payloads_in_memory() -> None:
    store = SlowStore()
    dl = DeadLetters(store, FakeClock(1.0), max_pending=10)  # type: ignore[arg-type]
    for _ in range(1000):
        dl.reject("mqtt", "too_large", "", b"x" * 65536)
    await asyncio.sleep(0)
    assert dl.count == 1000 and 985 <= dl.dropped < 1000
    store.release.set()
    await dl.flush()
    assert store.stored == dl.count - dl.dropped


class BrokenStore(SlowStore):
    async def add_dead_letter(
        self, source: str, reason: str, detail: str, payload: bytes, received_at: float
    ) -> None:
        raise OSError("disk full")


async def test_a_failed_write_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    dl = DeadLetters(BrokenStore(), FakeClock(1.0))  # type: ignore[arg-type]
    dl.reject("mqtt", "malformed_json", "", b"{")
    await dl.flush()
    await asyncio.sleep(0)
    assert "dead letter not stored: OSError: disk full" in caplog.text
