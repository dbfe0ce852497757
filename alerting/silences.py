"""Silences (maintenance windows): matchers plus a time span, with author and comment.

A silenced incident is still recorded and shown; it just pages nobody until the silence ends
(then the escalation starts, so a page is deferred, never dropped). Pure: time is passed in.

>>> book = SilenceBook([Silence.new("s1", ["topic=acme"], 100, 200, "ana", "release")])
>>> [s.id for s in book.matching({"topic": "acme"}, 150)], book.matching({"topic": "acme"}, 200)
(['s1'], [])
>>> book.next_change(50), book.next_change(150), book.next_change(250)
(100.0, 200.0, None)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alerting.routing import Matcher, compile_matchers, matches_all
from monitor.config.alerting import SilenceConfig, parse_when
from monitor.errors import CrisiswatchError

KEEP_ENDED_SECONDS = 7 * 86400.0  # ended silences stay in the book (and saved state) this long


class SilenceError(CrisiswatchError):
    """A silence is malformed or unknown."""

    def __init__(self, silence_id: str, reason: str) -> None:
        self.silence_id, self.reason = silence_id, reason
        super().__init__(f"silence {silence_id}: {reason}")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    start: float
    end: float
    author: str
    comment: str

    @classmethod
    def new(
        cls,
        silence_id: str,
        matchers: Iterable[str],
        start: float,
        end: float,
        author: str,
        comment: str,
        *,
        allow_empty: bool = False,
    ) -> Silence:
        """Validate and build; raises :class:`SilenceError` with the reason. ``allow_empty``
        admits start == end (a silence expired before its start, loaded back from state)."""
        try:
            ms = compile_matchers(matchers)
        except ValueError as exc:
            raise SilenceError(silence_id, str(exc)) from None
        if not ms:
            raise SilenceError(silence_id, "needs at least one matcher")
        if end < start or (end == start and not allow_empty):
            raise SilenceError(silence_id, "end must be after start")
        if not author.strip() or not comment.strip():
            raise SilenceError(silence_id, "author and comment are required")
        return cls(silence_id, ms, float(start), float(end), author, comment)

    @classmethod
    def from_config(cls, cfg: SilenceConfig, index: int) -> Silence:
        utc = ZoneInfo("UTC")
        start = parse_when(cfg.start, utc).timestamp()
        end = parse_when(cfg.end, utc).timestamp()
        return cls.new(
            cfg.id or f"config-{index}", cfg.matchers, start, end, cfg.author, cfg.comment
        )

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def matches(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "start": self.start,
            "end": self.end,
            "author": self.author,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Silence:
        # Expiring a silence before its start leaves start == end; that record must load again.
        return cls.new(
            str(d["id"]),
            d["matchers"],
            d["start"],
            d["end"],
            d["author"],
            d["comment"],
            allow_empty=True,
        )


class SilenceBook:
    """Config silences plus silences added at run time (API), expired ones kept for history."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {}
        for s in silences:
            self.add(s)

    @classmethod
    def from_config(cls, silences: Iterable[SilenceConfig]) -> SilenceBook:
        return cls(Silence.from_config(s, i) for i, s in enumerate(silences))

    def add(self, silence: Silence) -> None:
        """Add or replace (same id) a silence."""
        self._by_id[silence.id] = silence

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence now (Alertmanager "expire"); raises SilenceError when unknown."""
        s = self._by_id.get(silence_id)
        if s is None:
            raise SilenceError(silence_id, "no such silence")
        if s.end > now:
            s = Silence(s.id, s.matchers, min(s.start, now), now, s.author, s.comment)
            self._by_id[silence_id] = s
        return s

    def all(self) -> list[Silence]:
        return sorted(self._by_id.values(), key=lambda s: (s.start, s.id))

    def matching(self, labels: Mapping[str, str], now: float) -> list[Silence]:
        return [s for s in self.all() if s.matches(labels, now)]

    def next_change(self, now: float) -> float | None:
        """The next start or end after ``now`` (when muted incidents must be looked at again)."""
        times = [t for s in self._by_id.values() for t in (s.start, s.end) if t > now]
        return min(times) if times else None

    def prune(self, now: float, keep_seconds: float = KEEP_ENDED_SECONDS) -> int:
        """Forget silences that ended more than ``keep_seconds`` ago; returns how many."""
        before = len(self._by_id)
        self._by_id = {k: s for k, s in self._by_id.items() if s.end + keep_seconds > now}
        return before - len(self._by_id)

    def to_state(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.all()]

    @classmethod
    def from_state(cls, state: Iterable[Mapping[str, Any]]) -> SilenceBook:
        return cls(Silence.from_dict(d) for d in state)
