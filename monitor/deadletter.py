"""The dead-letter sink: bad input is stored with its reason, never raised.

Collectors count rejects per (source, reason) in `crisiswatch_collector_dead_letters_total`;
this sink keeps the evidence: all of it by default (nothing is lost), or, with `keep`
(`storage.dead_letter_keep`), the newest `keep` rejects of every (source, reason), so a flood
of one bad publisher can neither fill the disk nor push out the rare reason. At most
`max_pending` writes wait for a slow store; past that a reject is still counted, its payload
is not kept (`dropped`, logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from monitor.clock import Clock
from monitor.storage import Store

log = logging.getLogger(__name__)


class DeadLetters:
    """Implements `monitor.collectors.base.DeadLetterSink` on top of the store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        keep: int | None = None,
        prune_every: int = 1000,
        max_pending: int = 1000,
    ) -> None:
        self._store, self._clock = store, clock
        self._keep, self._prune_every, self._max_pending = keep, prune_every, max_pending
        self._pending: set[asyncio.Task[Any]] = set()
        self._writes = 0
        self.count = 0
        self.dropped = 0

    def reject(self, source: str, reason: str, detail: str, payload: bytes) -> None:
        self.count += 1
        log.info("dead letter from %s: %s", source, reason)
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "dead-letter store is behind: %d rejects counted but not kept", self.dropped
                )
            return
        self._spawn(
            self._store.add_dead_letter(
                source, reason, detail[:2000], payload[:65536], self._clock.now()
            )
        )
        # the first write of a run prunes what earlier runs left, then every `prune_every`
        if self._keep is not None and self._writes % self._prune_every == 0:
            self._spawn(self._store.prune_dead_letters(self._keep))
        self._writes += 1

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("dead letter not stored: %s: %s", type(exc).__name__, exc)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
