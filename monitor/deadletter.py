"""The dead-letter sink: bad input is stored with its reason, never raised.

Collectors count rejects per (source, reason) in `crisiswatch_collector_dead_letters_total`;
this sink keeps the evidence.
"""

from __future__ import annotations

import asyncio
import logging

from monitor.clock import Clock
from monitor.storage import Store

log = logging.getLogger(__name__)


class DeadLetters:
    """Implements `monitor.collectors.base.DeadLetterSink` on top of the store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock
        self._pending: set[asyncio.Task[None]] = set()
        self.count = 0

    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None:
        self.count += 1
        log.info("dead letter from %s: %s", source, reason)
        task = asyncio.get_running_loop().create_task(
            self._store.add_dead_letter(
                source, reason, detail[:2000], payload[:65536], self._clock.now()
            )
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
