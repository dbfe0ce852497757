"""Shared fixtures: an in-memory KeyValue, a recording dead-letter sink, a SourceContext."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import Clock, FakeClock
from monitor.collectors.base import Source, SourceContext
from monitor.model import Mention


class MemoryKV:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.data[key] = value


@dataclass
class Letters:
    items: list[tuple[str, str, str, bytes]] = field(default_factory=list)

    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None:
        self.items.append((source, reason, detail, payload))

    @property
    def reasons(self) -> Counter[str]:
        return Counter(r for _, r, _, _ in self.items)


@dataclass
class Harness:
    ctx: SourceContext
    kv: MemoryKV
    letters: Letters
    submitted: list[Mention]
    retracted: list[tuple[str, str]]
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v


def make_harness(clock: Clock | None = None) -> Harness:
    kv, letters, reg = MemoryKV(), Letters(), CollectorRegistry()
    submitted: list[Mention] = []
    retracted: list[tuple[str, str]] = []

    async def submit(m: Mention) -> None:
        submitted.append(m)

    async def retract(key: tuple[str, str]) -> None:
        retracted.append(key)

    ctx = SourceContext(
        clock=clock or FakeClock(1_700_000_000.0),
        dead_letters=letters,
        state=kv,
        registry=reg,
        submit=submit,
        retract=retract,
    )
    return Harness(ctx, kv, letters, submitted, retracted, reg)


@pytest.fixture
def harness() -> Harness:
    return make_harness()


def consuming(src: Source) -> tuple[asyncio.Task[None], list[Mention]]:
    """Consume ``src.stream()`` in a task into a list (cancel the task to stop the source)."""
    got: list[Mention] = []

    async def consume() -> None:
        async with aclosing(src.stream()) as stream:  # type: ignore[type-var]
            async for m in stream:
                got.append(m)

    return asyncio.create_task(consume()), got


async def run_until(
    src: Source, done: Callable[[list[Mention]], bool], timeout: float = 10.0
) -> list[Mention]:
    """Consume ``src.stream()`` until ``done(received)`` holds, stop it, return what came."""
    task, got = consuming(src)
    try:
        async with asyncio.timeout(timeout):
            while not done(got):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got


class DownKV(MemoryKV):
    """A state store that is unreachable for writes (a database outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_puts = 0

    async def put(self, key: str, value: bytes) -> None:
        self.failed_puts += 1
        raise ConnectionRefusedError("state store unreachable")
