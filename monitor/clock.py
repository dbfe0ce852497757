"""Time as an input: the only module that reads wall time.

Everything else receives a :class:`Clock` and asks it. Tests use :class:`FakeClock`
and move time explicitly.

>>> c = FakeClock(100.0)
>>> c.now()
100.0
>>> c.advance(5)
>>> c.now()
105.0
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the Unix epoch (UTC) and a way to wait for them."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; `sleep` advances it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._t += seconds

    def set(self, t: float) -> None:
        self._t = max(self._t, float(t))

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class ScaledClock:
    """Simulated time running `speed` times faster than `base`, starting at `origin`.

    The demo and replays at ``--speed X`` run the whole service on one of these, so
    buckets, detectors and escalation timers all see the same compressed time.

    >>> base = FakeClock(1000.0)
    >>> c = ScaledClock(base, speed=60.0)
    >>> base.advance(1.0)
    >>> c.now()
    1060.0
    """

    def __init__(self, base: Clock, speed: float, origin: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._base, self.speed = base, speed
        self._origin = base.now() if origin is None else origin
        self._base_origin = base.now()

    def now(self) -> float:
        return self._origin + (self._base.now() - self._base_origin) * self.speed

    def resume_at(self, t: float) -> None:
        """Go on from simulated time ``t``: a sped-up run restarted finds its saved state
        ahead of the base clock, and resumes there instead of going back in time.

        >>> c = ScaledClock(FakeClock(1000.0), speed=10.0)
        >>> c.resume_at(5000.0)
        >>> c.now()
        5000.0
        """
        self._origin, self._base_origin = t, self._base.now()

    def monotonic(self) -> float:
        return self._base.monotonic() * self.speed

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(max(0.0, seconds) / self.speed)
