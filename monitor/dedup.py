"""Bounded memory of recently seen (source, id) keys.

It keeps each key's 64-bit hash, not the key: a set of ints and a ring of the same hashes in
arrival order, so the oldest is forgotten first. About 86 B a key instead of ~226 (a tuple,
the id string and an ordered-dict node each), 17 MB for the default 200,000 keys. A new key
is taken for a repeat only if its hash equals one of the window's: probability 200,000 / 2^64,
about 10^-14 a mention. The hash is BLAKE2b's (8 bytes), not Python's per-process one, so the
window survives a restart: the checkpoint keeps it beside the open buckets it agrees with
(``snapshot``/``restore``, 1.6 MB full), and a source that re-sends what it sent before the
restart (the demo's open minute, a replay, an HTTP client's retry) is not counted twice.

>>> d = Dedup(capacity=2)
>>> d.first(("s", "1")), d.first(("s", "1")), d.first(("s", "2")), d.first(("s", "3"))
(True, False, True, True)
>>> d.first(("s", "1"))  # evicted: oldest first
True
>>> len(d)
2
>>> e = Dedup.restore(d.snapshot(), capacity=2)
>>> e.first(("s", "3")), e.first(("s", "1")), e.first(("s", "2"))
(False, False, True)
"""

from __future__ import annotations

import hashlib
from array import array


def _hash(key: tuple[str, str]) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{key[0]}\x1f{key[1]}".encode(), digest_size=8).digest(),
        "little",
        signed=True,
    )


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
        h = _hash(key)
        if h in self._seen:
            return False
        self._add(h)
        return True

    def __contains__(self, key: tuple[str, str]) -> bool:
        """Seen already (within the window), without remembering it."""
        return _hash(key) in self._seen

    def snapshot(self) -> bytes:
        """The window's hashes, oldest first (8 bytes each)."""
        n = min(self._added, self.capacity)
        start = self._added % self.capacity if self._added > self.capacity else 0
        ring = self._ring[start:n] + self._ring[:start] if start else self._ring[:n]
        return ring.tobytes()

    @classmethod
    def restore(cls, blob: bytes, capacity: int = 200_000) -> Dedup:
        """A window holding what `snapshot` gave (its newest `capacity` keys, if fewer fit)."""
        d = cls(capacity)
        hashes = array("q")
        hashes.frombytes(blob[: len(blob) - len(blob) % 8])
        for h in hashes[-d.capacity :]:
            if h not in d._seen:
                d._add(h)
        return d

    def _add(self, h: int) -> None:
        seen = self._seen
        slot = self._added % self.capacity
        if self._added >= self.capacity:
            seen.discard(self._ring[slot])
        self._ring[slot] = h
        seen.add(h)
        self._added += 1
