"""In-process fan-out of what the service derives (series points, incidents, escalations, sources,
on call, live counts).

Publishing never waits: every subscriber has a bounded queue; when it is full the oldest
message is dropped and counted (per subscriber, and through the hub's `on_drop`, e.g. a
Prometheus counter), and the subscriber is told to resync from a snapshot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Message = tuple[str, dict[str, Any]]


class Subscription:
    """A bounded, drop-oldest queue of hub messages, consumed with ``async for``."""

    def __init__(self, maxsize: int, on_drop: Callable[[], None] | None = None) -> None:
        self._items: deque[Message] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._on_drop = on_drop
        self.dropped = 0
        self.resync = False  # set when messages were dropped; the consumer clears it

    def offer(self, item: Message) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
            self.resync = True
            if self._on_drop is not None:
                self._on_drop()
        self._items.append(item)  # deque(maxlen) drops the oldest for us
        self._ready.set()

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) == self._items.maxlen

    def drain(self) -> list[Message]:
        """Everything queued now, without waiting."""
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        return items

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return item


class Hub:
    def __init__(self, on_drop: Callable[[], None] | None = None) -> None:
        """`on_drop` is called once per message any subscriber's full queue drops: a monotonic
        count (`dropped` only sums the subscribers connected now)."""
        self._on_drop = on_drop
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def add_listener(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        """Call `fn` synchronously on every publish, before any subscriber sees it.

        For state that snapshots are built from: it is never behind the deltas.
        """
        self._listeners.append(fn)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self._subs)

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        for fn in self._listeners:
            fn(topic, message)
        for sub in self._subs:
            sub.offer((topic, message))

    @contextmanager
    def subscribe(self, maxsize: int = 256) -> Iterator[Subscription]:
        sub = Subscription(maxsize, self._on_drop)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
