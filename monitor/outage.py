"""How loud to be about a trouble that repeats: the first failure of an outage at WARNING, the
repeats at DEBUG with a reminder every `remind_seconds`, and its end once.

A receiver that is down, a broker that refuses, a store that refuses the checkpoint: each
attempt failing logged a line (a dead webhook: 21 lines for 3 pages; an unreachable broker:
~300 lines an hour; QA), and the one line that mattered, when it began, scrolled away.

>>> import logging
>>> o = Outage(remind_seconds=600.0)
>>> [logging.getLevelName(o.failed(t)) for t in (0.0, 30.0, 599.0, 600.0, 700.0)]
['WARNING', 'DEBUG', 'DEBUG', 'WARNING', 'DEBUG']
>>> o.failures, o.since
(5, 0.0)
>>> o.recovered(), o.recovered()
(5, 0)
"""

from __future__ import annotations

import logging

#: How often a trouble that goes on is said again at WARNING.
REMIND_SECONDS = 600.0


class Outage:
    """One trouble's log level, failure by failure (time injected: `now` is any clock)."""

    def __init__(self, remind_seconds: float = REMIND_SECONDS) -> None:
        self.remind_seconds = remind_seconds
        self.since: float | None = None  # when the first failure of this outage was
        self.failures = 0
        self._told_at = 0.0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, now: float) -> int:
        """Count a failure; the level to log it at."""
        self.failures += 1
        if self.since is None:
            self.since = self._told_at = now
            return logging.WARNING
        if now - self._told_at >= self.remind_seconds:
            self._told_at = now
            return logging.WARNING
        return logging.DEBUG

    def recovered(self) -> int:
        """End the outage; how many failures it had (0: there was none, say nothing)."""
        n, self.since, self.failures = self.failures, None, 0
        return n
