"""Count-aware volume-spike detector: seasonal negative-binomial baseline, tail probabilities.

Model per series: expected count ``mu = level * daily[slot] * weekly[dow] * width`` where
``level`` is a rate per second and the seasonal factors are multiplicative (mean 1). The
observed count is judged against a negative binomial with mean ``mu`` and a dispersion
``phi`` (var = mu + phi * mu^2) the series estimates for itself, so a bursty dense series
(median 47, bursts to 13,000) and a sparse one (most buckets zero) each get their own tail
heaviness. Sums over several windows (``scales``, in seconds) catch slower ramps. The
signal is ``-log10(tail p) / surprise_max`` clipped to [0, 1]. Learning uses values
winsorised at ``clip`` standard deviations so a burst does not become the new normal at once.

>>> from monitor.model import Bucket
>>> d = VolumeDetector(warmup=0.0)
>>> for i in range(2000):
...     _ = d.score_one(Bucket("s", i * 300.0, 300.0, count=10 + i % 3))
...     d.learn_one(Bucket("s", i * 300.0, 300.0, count=10 + i % 3))
>>> d.score_one(Bucket("s", 2000 * 300.0, 300.0, count=11)) < 0.1
True
>>> d.score_one(Bucket("s", 2000 * 300.0, 300.0, count=200)) > 0.9
True
"""

from __future__ import annotations

import copy
import math
from array import array
from collections import deque
from typing import Any, Self

from scipy.special import betainc

from detectors.base import halflife_alpha
from monitor.model import Bucket

DAY = 86_400.0
_PHI_MIN, _PHI_MAX = 0.01, 20.0


def nb_tail(x: float, mu: float, phi: float) -> float:
    """P(X >= x) for a negative binomial with mean ``mu`` and var ``mu + phi * mu**2``.

    Continuous in ``x`` (regularised incomplete beta), so non-integer values work too.

    >>> round(nb_tail(0, 5.0, 0.1), 6)
    1.0
    >>> round(nb_tail(10, 5.0, 0.01), 3)  # close to Poisson(5): P(X >= 10) = 0.032
    0.035
    >>> nb_tail(100, 5.0, 0.1) < 1e-12
    True
    """
    if x <= 0.0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    r = 1.0 / phi
    return float(betainc(x, r, mu / (r + mu)))


def surprise_of(p: float) -> float:
    """``-log10(p)``, finite even when the tail underflows.

    >>> surprise_of(1e-3)
    3.0
    >>> surprise_of(0.0)
    300.0
    """
    if p <= 1e-300:
        return 300.0
    return -math.log10(p) if p < 1.0 else 0.0


class VolumeDetector:
    """Seasonal negative-binomial spike detector for one series (clone per series)."""

    name = "volume"
    __slots__ = (
        "_alpha_cache",
        "_daily",
        "_last",
        "_mu",
        "_mu_t",
        "_ring",
        "_weekly",
        "clip",
        "disp_den",
        "disp_num",
        "dispersion_halflife",
        "level",
        "level_halflife",
        "n",
        "scales",
        "season_halflife_days",
        "slot_seconds",
        "surprise_max",
        "t0",
        "t_last",
        "warmup",
        "weekly",
    )

    def __init__(
        self,
        *,
        level_halflife: float = 6 * 3600.0,
        season_halflife_days: float = 7.0,
        dispersion_halflife: float = 3 * DAY,
        slot_seconds: float = 3600.0,
        weekly: bool = True,
        scales: tuple[float, ...] = (0.0, 900.0, 3600.0),
        surprise_max: float = 16.0,
        clip: float = 3.0,
        warmup: float = DAY,
    ) -> None:
        self.level_halflife = level_halflife
        self.season_halflife_days = season_halflife_days
        self.dispersion_halflife = dispersion_halflife
        self.slot_seconds = slot_seconds
        self.weekly = weekly
        self.scales = scales
        self.surprise_max = surprise_max
        self.clip = clip
        self.warmup = warmup
        self.n = 0
        self.t0 = math.nan
        self.t_last = math.nan
        self.level = 0.0
        self.disp_num = 0.0
        self.disp_den = 0.0
        self._daily = array("d", [1.0] * max(1, math.ceil(DAY / slot_seconds)))
        self._weekly = array("d", [1.0] * 7)
        # (count, mu, mu^2) of the most recent buckets, for the multi-bucket windows
        self._ring: deque[tuple[float, float, float]] = deque(maxlen=1)
        self._alpha_cache: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._mu = 0.0
        self._mu_t = math.nan
        self._last: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 0.0)

    # -- model pieces -------------------------------------------------------------------
    def _slot(self, t: float) -> tuple[int, int]:
        slot = int((t % DAY) // self.slot_seconds)
        dow = (int(t // DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        return slot, dow

    def expected(self, bucket: Bucket) -> float:
        """Expected count of ``bucket`` under the current baseline."""
        if self._mu_t == bucket.start:
            return self._mu
        slot, dow = self._slot(bucket.start)
        mu = self.level * self._daily[slot] * bucket.width
        if self.weekly:
            mu *= self._weekly[dow]
        self._mu, self._mu_t = mu, bucket.start
        return mu

    @property
    def phi(self) -> float:
        """Per-series overdispersion (var = mu + phi mu^2), estimated from winsorised data."""
        if self.disp_den <= 0.0:
            return 0.25
        return min(_PHI_MAX, max(_PHI_MIN, self.disp_num / self.disp_den))

    @property
    def warm(self) -> bool:
        return self.n > 0 and self.t_last - self.t0 >= self.warmup

    def _alphas(self, width: float) -> tuple[float, float, float, float]:
        c = self._alpha_cache
        if c[0] != width:
            visits_day = DAY / width  # buckets per day; each daily slot is visited once a day
            a_level = halflife_alpha(width, self.level_halflife)
            a_daily = halflife_alpha(1.0, self.season_halflife_days * self.slot_seconds / width)
            a_weekly = halflife_alpha(1.0, 3.0 * visits_day)
            a_disp = halflife_alpha(width, self.dispersion_halflife)
            c = self._alpha_cache = (width, a_level, a_daily, a_weekly, a_disp)
            ks = [max(1, round(s / width)) for s in self.scales]
            self._ring = deque(self._ring, maxlen=max(ks))
        return c[1], c[2], c[3], c[4]

    # -- protocol -------------------------------------------------------------------------
    def score_one(self, bucket: Bucket) -> float:
        x = float(bucket.count)
        if self.n == 0:
            self._last = (x, 0.0, 1.0, 0.0)
            return 0.0
        self._alphas(bucket.width)
        mu = self.expected(bucket)
        phi = self.phi
        best_p = 1.0
        ring = self._ring
        sx, sm, sm2 = x, mu, mu * mu
        k_done = 1
        width = bucket.width
        for s in self.scales:
            k = max(1, round(s / width))
            while k_done < k and k_done <= len(ring):
                rx, rm, rm2 = ring[-k_done]
                sx += rx
                sm += rm
                sm2 += rm2
                k_done += 1
            if sx > sm and sm > 0.0:
                # sum of k NB(mu_i, phi) ~ NB with the same mean and variance sm + phi * sm2
                p = nb_tail(sx, sm, phi * sm2 / (sm * sm))
                best_p = min(best_p, p)
        surprise = surprise_of(best_p)
        self._last = (x, mu, best_p, surprise)
        return min(1.0, surprise / self.surprise_max)

    def learn_one(self, bucket: Bucket) -> None:
        x = float(bucket.count)
        width = bucket.width
        t = bucket.start
        if self.n == 0:
            self.t0 = t
            self.level = max(x, 0.5) / width
        a_level, a_daily, a_weekly, a_disp = self._alphas(width)
        mu = self.expected(bucket)
        new_day = self.n > 0 and int(t // DAY) != int(self.t_last // DAY)
        self.n += 1
        self.t_last = t
        phi = self.phi
        sd = math.sqrt(mu + phi * mu * mu)
        xw = min(x, mu + self.clip * sd) if self.n > 12 else x
        # dispersion: ratio of EWMAs, robust for tiny mu where per-bucket ratios explode
        self.disp_num += a_disp * (((xw - mu) ** 2 - mu) - self.disp_num)
        self.disp_den += a_disp * (mu * mu - self.disp_den)
        slot, dow = self._slot(t)
        daily = self._daily[slot]
        weekly = self._weekly[dow] if self.weekly else 1.0
        # fast start: plain mean for the first buckets, then exponential forgetting
        a = max(a_level, 1.0 / self.n)
        base = width * daily * weekly
        self.level += a * (xw / base - self.level)
        if self.level <= 0.0:
            self.level = 1e-9
        lvl = max(self.level * width, 1e-9)
        self._daily[slot] = daily + a_daily * (xw / (lvl * weekly) - daily)
        if self.weekly:
            self._weekly[dow] = weekly + a_weekly * (xw / (lvl * daily) - weekly)
        if new_day:
            self._renormalise()
        self._ring.append((x, mu, mu * mu))
        self._mu_t = math.nan

    def _renormalise(self) -> None:
        """Keep seasonal factors at mean 1 so ``level`` stays the mean rate (once a day)."""
        for arr in (self._daily, self._weekly):
            m = sum(arr) / len(arr)
            if m > 0.0:
                for i in range(len(arr)):
                    arr[i] = max(arr[i] / m, 1e-3)
                self.level *= m

    def details(self) -> dict[str, Any]:
        x, mu, p, surprise = self._last
        sd = math.sqrt(mu + self.phi * mu * mu)
        return {
            "observed": x,
            "expected": round(mu, 3),
            "band": [round(max(0.0, mu - 2.0 * sd), 3), round(mu + 2.0 * sd, 3)],
            "tail_p": p,
            "surprise": round(surprise, 3),
            "dispersion": round(self.phi, 4),
        }

    def clone(self) -> Self:
        return copy.deepcopy(self)
