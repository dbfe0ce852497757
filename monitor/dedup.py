"""Bounded memory of recently seen (source, id) keys.

It keeps each key's 64-bit hash, not the key: a set of ints and a ring of the same hashes in
arrival order, so the oldest is forgotten first. About 86 B a key instead of ~226 (a tuple,
the id string and an ordered-dict node each), 17 MB for the default 200,000 keys. A new key
is taken for a repeat only if its hash equals one of the window's: probability 200,000 / 2^64,
about 10^-14 a mention. The window lives in memory only, so Python's per-process string
hashing is fine for it.

>>> d = Dedup(capacity=2)
>>> d.first(("s", "1")), d.first(("s", "1")), d.first(("s", "2")), d.first(("s", "3"))
(True, False, True, True)
>>> d.first(("s", "1"))  # evicted: oldest first
True
>>> len(d)
2
"""

from __future__ import annotations

from array import array


class Dedup:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = max(1, capacity)
        self._seen: set[int] = set()
        self._ring = array("q", bytes(8 * self.capacity))  # hashes in arrival order
        self._added = 0

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, key: tuple[str, str]) -> bool:
        """True the first time `key` is seen (within the capacity window)."""
        h = hash(key)
        seen = self._seen
        if h in seen:
            return False
        slot = self._added % self.capacity
        if self._added >= self.capacity:
            seen.discard(self._ring[slot])
        self._ring[slot] = h
        seen.add(h)
        self._added += 1
        return True
