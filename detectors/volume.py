"""Count-aware volume-spike detector: seasonal negative-binomial baseline, tail probabilities.

Baseline per series: expected count ``mu = level * daily[slot] * weekly[dow] * width``;
``level`` is a rate per second, the seasonal factors are multiplicative (mean 1) and learn
from values winsorised at ``clip`` standard deviations, so a burst does not become the new
normal at once. Missing buckets are learned as zeros by the stage.

Evidence: for each time scale (seconds, e.g. 1 h / 3 h / 6 h) the detector keeps an
exponentially weighted mean of observed and of expected counts and takes the log ratio
``r = log((x̄ + c) / (μ̄ + c))`` (``c`` a pseudo-count, so 0 → 2 mentions in a sparse series
is no crisis). ``r`` is divided by the series' *own* typical |r| at that scale (a slow,
clipped EWMA), so a bursty dense series (median 47, bursts to 13,000) and a sparse one (most
buckets zero) are both judged against their own tail heaviness. ``z = max w r / spread``
(``w`` a per-scale weight: the bucket itself, scale 0, is noisier evidence than an hour and
counts at a discount) becomes the signal ``z / (z + z_half)`` (0.5 at ``z_half``). A count
model confirms it:
the window's sum must also be improbable under a negative binomial with the series'
estimated overdispersion ``phi`` (var = mu + phi mu^2); that tail probability is what the
explanation reports.

The two loops over the windows (moving and scoring them, then taking them over and moving the
spreads) are C, in ``_scales.c``, working in place on this detector's arrays: they ran for
every series-bucket and were most of its time.

>>> from monitor.model import Bucket
>>> d = VolumeDetector(warmup=0.0)
>>> for i in range(2000):
...     _ = d.score_one(Bucket("s", i * 300.0, 300.0, count=10 + i % 3))
...     d.learn_one(Bucket("s", i * 300.0, 300.0, count=10 + i % 3))
>>> d.score_one(Bucket("s", 2000 * 300.0, 300.0, count=11)) < 0.1
True
>>> d.score_one(Bucket("s", 2000 * 300.0, 300.0, count=200)) > 0.7
True
"""

from __future__ import annotations

import copy
import math
from array import array
from typing import Any, Self

from scipy.special import betainc

from detectors._round import round_to
from detectors._scales import evidence
from detectors._scales import learn as learn_scales
from detectors.base import halflife_alpha
from monitor.model import Bucket

DAY = 86_400.0
_PHI_MIN, _PHI_MAX = 0.01, 20.0
_SPREAD_PRIOR = 0.3  # a scale's typical |log ratio| before it has seen any data
# A level below this fraction of the pseudo-count rate is a series silent for weeks (about ten
# level half-lives): its baseline no longer says anything (see VolumeDetector._wake)
_DORMANT = 1e-3


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
    """Seasonal, count-aware, multi-scale spike detector for one series (clone per series)."""

    name = "volume"
    __slots__ = (
        "_a",
        "_daily",
        "_last",
        "_mu",
        "_mu_t",
        "_pend_t",
        "_pend_x",
        "_pending",
        "_scale",
        "_weekly",
        "clip",
        "disp_den",
        "disp_num",
        "dispersion_halflife",
        "level",
        "level_halflife",
        "min_count",
        "n",
        "pseudo_rate",
        "scales",
        "season_halflife_days",
        "slot_seconds",
        "spread_halflife",
        "t0",
        "t_last",
        "tail_guard",
        "warmup",
        "weekly",
        "weekly_halflife_weeks",
        "weights",
        "z_half",
    )
    # what a restored series takes from the current config (stage.restore) ...
    SETTINGS = (
        "clip",
        "dispersion_halflife",
        "level_halflife",
        "min_count",
        "pseudo_rate",
        "season_halflife_days",
        "spread_halflife",
        "tail_guard",
        "warmup",
        "weekly",
        "weekly_halflife_weeks",
        "weights",
        "z_half",
    )
    # ... and what its learned state is laid out by (per-scale means, daily slots)
    LAYOUT = ("scales", "slot_seconds")

    def __init__(
        self,
        *,
        level_halflife: float = 3 * DAY,
        season_halflife_days: float = 7.0,
        dispersion_halflife: float = 3 * DAY,
        spread_halflife: float = 3 * DAY,
        slot_seconds: float = 3600.0,
        weekly: bool = True,
        weekly_halflife_weeks: float = 4.0,
        scales: tuple[float, ...] = (3600.0, 3 * 3600.0, 6 * 3600.0),
        weights: tuple[float, ...] | None = None,
        pseudo_rate: float = 2.0 / 300.0,
        z_half: float = 4.0,
        tail_guard: float = 1e-2,
        clip: float = 3.0,
        min_count: float = 3.0,
        warmup: float = DAY,
    ) -> None:
        self.level_halflife = level_halflife
        self.season_halflife_days = season_halflife_days
        self.dispersion_halflife = dispersion_halflife
        self.spread_halflife = spread_halflife
        self.slot_seconds = slot_seconds
        self.weekly = weekly
        self.weekly_halflife_weeks = weekly_halflife_weeks
        self.scales = scales
        self.weights = array("d", weights if weights is not None else [1.0] * len(scales))
        self.pseudo_rate = pseudo_rate
        self.z_half = z_half
        self.tail_guard = tail_guard
        self.clip = clip
        self.min_count = min_count
        self.warmup = warmup
        self.n = 0
        self.t0 = math.nan
        self.t_last = math.nan
        self.level = 0.0
        self.disp_num = 0.0
        self.disp_den = 0.0
        self._daily = array("d", [1.0] * max(1, math.ceil(DAY / slot_seconds)))
        self._weekly = array("d", [1.0] * 7)
        # per scale: mean observed, mean expected, typical |log ratio|
        self._scale = array("d", [0.0, 0.0, _SPREAD_PRIOR] * len(scales))
        # width, then per-bucket weights: level, daily, weekly, dispersion, spread, scales...
        self._a = array("d", [0.0] * (6 + len(scales)))
        # per scale, from the last score_one: observed and expected means and their log ratio,
        # for (t, x); learn_one of the same bucket reuses them instead of recomputing
        self._pending = array("d", [0.0] * (3 * len(scales)))
        self._pend_t = math.nan
        self._pend_x = math.nan
        self._mu = 0.0
        self._mu_t = math.nan
        # observed, expected, tail p, z, scale index
        self._last: tuple[float, float, float, float, int] = (0.0, 0.0, 1.0, 0.0, 0)

    def settings_changed(self) -> None:
        """Forget the per-width EWMA weights cached from the previous settings."""
        self._a[0] = 0.0

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

    @property
    def warm_at(self) -> float:
        return self.t0 + self.warmup if self.n else math.inf

    def _weights(self, width: float) -> array[float]:
        a = self._a
        if a[0] != width:
            a[0] = width
            a[1] = halflife_alpha(width, self.level_halflife)
            # each daily slot is visited slot_seconds / width times a day
            a[2] = halflife_alpha(1.0, self.season_halflife_days * self.slot_seconds / width)
            # a weekday's factor is visited DAY / width times a week
            a[3] = halflife_alpha(1.0, self.weekly_halflife_weeks * DAY / width)
            a[4] = halflife_alpha(width, self.dispersion_halflife)
            a[5] = halflife_alpha(width, self.spread_halflife)
            for j, s in enumerate(self.scales):
                a[6 + j] = 1.0 - math.exp(-width / max(s, width))
        return a

    # -- protocol -------------------------------------------------------------------------
    def score_one(self, bucket: Bucket) -> float:
        x = float(bucket.count)
        if self.n == 0:
            self._last = (x, 0.0, 1.0, 0.0, 0)
            return 0.0
        width = bucket.width
        a = self._a if self._a[0] == width else self._weights(width)
        mu = self.expected(bucket)
        c = self.pseudo_rate * width
        pend = self._pending
        # per window: means moved towards x and mu (into pend), z = weight * log ratio / spread
        best_z, best_j = evidence(self._scale, pend, a, 6, self.weights, x, mu, c)
        self._pend_t, self._pend_x = bucket.start, x
        p = 1.0
        if best_z > 1.0:
            # the same evidence under the count model: the window's sum as one NB draw
            aj = a[6 + best_j]
            n_eff = (2.0 - aj) / aj
            ex, em = pend[3 * best_j], pend[3 * best_j + 1]
            if ex * n_eff < self.min_count:
                # a lone mention in a quiet series: improbable under any baseline near zero,
                # but no crisis (and not worth the tail's incomplete beta)
                best_z = 0.0
            else:
                p = nb_tail(ex * n_eff, em * n_eff, self.phi / n_eff)
                if p > self.tail_guard:
                    best_z = 0.0
        self._last = (x, mu, p, best_z, best_j)
        return best_z / (best_z + self.z_half) if best_z > 0.0 else 0.0

    def learn_one(self, bucket: Bucket) -> None:
        # locals instead of attribute lookups: this runs for every series-bucket
        x = float(bucket.count)
        width = bucket.width
        t = bucket.start
        n = self.n
        if n == 0:
            self.t0 = t
            self.level = max(x, 0.5) / width
        elif x > 0.0 and self.level < _DORMANT * self.pseudo_rate:
            n = self._wake()
        a = self._a if self._a[0] == width else self._weights(width)
        mu = self._mu if self._mu_t == t else self.expected(bucket)
        new_day = n > 0 and int(t // DAY) != int(self.t_last // DAY)
        n += 1
        self.n = n
        self.t_last = t
        # multi-scale evidence state and each scale's own typical |log ratio|
        if self._pend_t != t or self._pend_x != x:
            # not scored just before (a direct learn_one): score it for the per-scale means,
            # keeping what details() reports about the last *scored* bucket
            last = self._last
            self.score_one(bucket)
            self._last = last
        self._pend_t = math.nan  # used once
        # 1.25 * mean |log ratio| estimates a standard deviation (clipped: bursts don't count)
        learn_scales(self._scale, self._pending, a[5], n > 1)
        # baseline
        disp_num, disp_den = self.disp_num, self.disp_den
        # self.phi, inlined
        phi = 0.25 if disp_den <= 0.0 else min(_PHI_MAX, max(_PHI_MIN, disp_num / disp_den))
        sd = math.sqrt(mu + phi * mu * mu)
        xw = min(x, mu + self.clip * sd) if n > 12 else x
        # dispersion: ratio of EWMAs, robust for tiny mu where per-bucket ratios explode
        a4 = a[4]
        self.disp_num = disp_num + a4 * (((xw - mu) ** 2 - mu) - disp_num)
        self.disp_den = disp_den + a4 * (mu * mu - disp_den)
        slot = int((t % DAY) // self.slot_seconds)  # == self._slot(t), inlined
        dow = (int(t // DAY) + 3) % 7
        daily_a = self._daily
        daily = daily_a[slot]
        is_weekly = self.weekly
        weekly = self._weekly[dow] if is_weekly else 1.0
        # fast start: plain mean for the first buckets, then exponential forgetting
        al = max(a[1], 1.0 / n)
        level = self.level
        level += al * (xw / (width * daily * weekly) - level)
        if level <= 0.0:
            level = 1e-9
        self.level = level
        lvl = max(level * width, 1e-9)
        daily_a[slot] = daily + a[2] * (xw / (lvl * weekly) - daily)
        if is_weekly:
            self._weekly[dow] = weekly + a[3] * (xw / (lvl * daily) - weekly)
        if new_day:
            self._renormalise()
        self._mu_t = math.nan

    def _wake(self) -> int:
        """A mention after weeks of silence: lift the level to the pseudo rate.

        The silence drove the level to ~0, and from there the winsorised level can only creep
        up while the seasonal factors chase ratios in the thousands: the renormalisation then
        moved that mass into one weekday and hour, and the baseline sat 10^5 times above the
        series for weeks (no crisis could page). From the pseudo rate a winsorised bucket is a
        few times the level, not thousands; the prior dispersion and spreads come back (they
        shrank on zeros against zeros); the daily and weekly shape, the count of buckets seen
        (so the winsorising goes on), the warm-up already done and the evidence windows stay.

        Restarting the level as a new series' plain mean instead (tenth session) made a narrow
        topic's first crisis its baseline within a minute: the incident's score fell mid-crisis
        and the next crisis a day later opened 22 minutes in (QA, eleventh session).
        """
        self.disp_num = self.disp_den = 0.0
        sc = self._scale
        for j3 in range(0, len(sc), 3):
            sc[j3 + 2] = _SPREAD_PRIOR
        self.level = max(self.level, self.pseudo_rate)
        return self.n

    def _renormalise(self) -> None:
        """Keep seasonal factors at mean 1 so ``level`` stays the mean rate (once a day)."""
        for arr in (self._daily, self._weekly):
            m = sum(arr) / len(arr)
            if m > 0.0:
                for i in range(len(arr)):
                    arr[i] = max(arr[i] / m, 1e-3)
                self.level *= m

    def summary(self) -> tuple[float, float, list[float], float]:
        """(observed, expected, band [mu ± 2 sd], tail p) of the last scored bucket.

        The part of :meth:`details` every verdict's explanation carries, without the rest.
        """
        x, mu, p, _z, _j = self._last
        dn, dd = self.disp_num, self.disp_den
        # self.phi, inlined: this runs for every verdict
        phi = 0.25 if dd <= 0.0 else min(_PHI_MAX, max(_PHI_MIN, dn / dd))
        sd = math.sqrt(mu + phi * mu * mu)
        lo = mu - 2.0 * sd
        return (
            x,
            round_to(mu, 3),
            [round_to(lo if lo > 0.0 else 0.0, 3), round_to(mu + 2.0 * sd, 3)],
            p,
        )

    def tail_window(self) -> float:
        """Seconds of event time the last score's evidence (and its tail p) summed over: the
        window that scored highest, which need not be the bucket ``observed`` describes."""
        j = self._last[4]
        return self.scales[j] if self.scales else 0.0

    def details(self) -> dict[str, Any]:
        x, mu, band, p = self.summary()
        z = self._last[3]
        return {
            "observed": x,
            "expected": mu,
            "band": band,
            "tail_p": p,
            "z": round_to(z, 3),
            "scale_seconds": self.tail_window(),
            "dispersion": round_to(self.phi, 4),
        }

    def clone(self) -> Self:
        return copy.deepcopy(self)
