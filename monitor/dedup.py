"""Bounded memory of recently seen (source, id) keys.

>>> d = Dedup(capacity=2)
>>> d.first(("s", "1")), d.first(("s", "1")), d.first(("s", "2")), d.first(("s", "3"))
(True, False, True, True)
>>> d.first(("s", "1"))  # evicted: oldest first
True
"""

from __future__ import annotations

from collections import OrderedDict


class Dedup:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def first(self, key: tuple[str, str]) -> bool:
        """True the first time `key` is seen (within the capacity window)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
