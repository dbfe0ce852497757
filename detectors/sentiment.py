"""Sentiment-turn detector: is the negative share of this bucket above the series' own norm?

The baseline negative share is a ratio of exponentially decayed sums (negative mentions over
all mentions, so busy buckets weigh more than quiet ones), shrunk towards ``prior_share``
by ``prior_mentions`` pseudo-mentions: a ratio of sums needs no warm-up debiasing, and a
young series' share is not trusted more than its history allows. A bucket is judged by a
binomial tail on its negative count, with the count shrunk by a design effect: an
intra-bucket correlation ``rho`` (replies to one viral post are not independent opinions,
so 2,000 mentions must not give the certainty of 2,000 coin flips) times ``1 + n / N``, the
beta-binomial widening for a baseline learned from only ``N`` mentions. Surprises
(-log10 p) up to ``surprise_min`` are noise and give 0. Buckets with fewer than
``min_count`` mentions score 0: three angry posts are not a sentiment turn.

>>> from monitor.model import Bucket
>>> d = SentimentDetector(warmup=0.0, min_count=5)
>>> for i in range(500):
...     d.learn_one(Bucket("s", i * 60.0, 60.0, count=20, negative=2))
>>> d.score_one(Bucket("s", 500 * 60.0, 60.0, count=20, negative=3)) < 0.1
True
>>> d.score_one(Bucket("s", 500 * 60.0, 60.0, count=40, negative=30)) > 0.5
True
>>> d.score_one(Bucket("s", 500 * 60.0, 60.0, count=4, negative=4))
0.0
"""

from __future__ import annotations

import copy
import math
from typing import Any, Self

from scipy.special import betainc

from detectors._round import round_to
from detectors.volume import surprise_of


def ramp(surprise: float, lo: float, hi: float) -> float:
    """Map a surprise (-log10 p) to a signal: 0 up to ``lo``, linear to 1 at ``hi``.

    >>> ramp(2.0, 3.0, 12.0), ramp(7.5, 3.0, 12.0), ramp(40.0, 3.0, 12.0)
    (0.0, 0.5, 1.0)
    """
    if surprise <= lo:
        return 0.0
    return min(1.0, (surprise - lo) / (hi - lo))


def binom_tail(k: float, n: float, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), continuous in k and n.

    >>> round(binom_tail(2, 2, 0.5), 3)
    0.25
    >>> binom_tail(0, 10, 0.3)
    1.0
    """
    if k <= 0.0:
        return 1.0
    if k > n:
        return 0.0
    return float(betainc(k, n - k + 1.0, p))


def tail_floor(d: float, n: float) -> float:
    """A lower bound on ``P(X >= q n)`` for X ~ Binomial(n, p), from the tail's exponent
    ``d = D(q || p)`` (method of types: ``exp(-n d) / (n + 1)``). When it is already above
    the dead zone's p, the exact tail (an incomplete beta) cannot give a score.

    >>> d = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)  # D(0.8 || 0.5)
    >>> tail_floor(d, 10.0) <= binom_tail(8, 10, 0.5)
    True
    """
    return math.exp(-n * d) / (n + 1.0)


class SentimentDetector:
    """Negative-share turn detector for one series."""

    name = "sentiment"
    __slots__ = (
        "_last",
        "halflife",
        "min_count",
        "n",
        "neg",
        "prior_mentions",
        "prior_share",
        "rho",
        "surprise_max",
        "surprise_min",
        "t0",
        "t_last",
        "tot",
        "warmup",
    )
    SETTINGS = (
        "halflife",
        "min_count",
        "prior_mentions",
        "prior_share",
        "rho",
        "surprise_max",
        "surprise_min",
        "warmup",
    )

    def __init__(
        self,
        *,
        halflife: float = 86_400.0,
        min_count: int = 5,
        rho: float = 0.02,
        prior_share: float = 0.1,
        prior_mentions: float = 5.0,
        surprise_min: float = 2.0,
        surprise_max: float = 8.0,
        warmup: float = 86_400.0,
    ) -> None:
        self.halflife, self.min_count, self.rho = halflife, min_count, rho
        self.prior_share, self.prior_mentions = prior_share, prior_mentions
        self.surprise_min, self.surprise_max, self.warmup = surprise_min, surprise_max, warmup
        self.n, self.neg, self.tot = 0, 0.0, 0.0
        self.t0 = self.t_last = math.nan
        # observed share, baseline share, tail p (or the tail's arguments, until asked for)
        self._last: tuple[float, float, float | tuple[float, float, float]] = (0.0, 0.0, 1.0)

    @property
    def warm(self) -> bool:
        return self.n > 0 and self.t_last - self.t0 >= self.warmup

    @property
    def warm_at(self) -> float:
        return self.t0 + self.warmup if self.n else math.inf

    @property
    def share(self) -> float:
        """Baseline negative share, shrunk towards ``prior_share`` while history is short."""
        k = self.prior_mentions
        return (self.neg + k * self.prior_share) / (self.tot + k)

    def score_one(self, bucket: Any) -> float:
        c = bucket.count
        share = self.share
        if c < self.min_count or bucket.negative <= share * c:
            self._last = (bucket.negative / c if c else 0.0, share, 1.0)
            return 0.0
        # correlated mentions, and a baseline known from only tot + prior mentions
        deff = (1.0 + (c - 1) * self.rho) * (1.0 + c / (self.tot + self.prior_mentions))
        q, n, s = bucket.negative / c, c / deff, min(0.999, share)
        if q < 1.0:
            # The method-of-types bound (tail_floor) puts most buckets over the baseline in
            # the dead zone (score 0) without the incomplete beta; their
            # exact tail is worked out only if an explanation asks for it (details).
            d = q * math.log(q / s) + (1.0 - q) * math.log((1.0 - q) / (1.0 - s))
            if tail_floor(d, n) >= 10.0**-self.surprise_min:
                self._last = (q, share, (bucket.negative / deff, n, s))
                return 0.0
        p = binom_tail(bucket.negative / deff, n, s)
        self._last = (q, share, p)
        return ramp(surprise_of(p), self.surprise_min, self.surprise_max)

    def learn_one(self, bucket: Any) -> None:
        if self.n == 0:
            self.t0 = bucket.start
        self.n += 1
        if self.n > 1:
            k = math.pow(0.5, max(bucket.start - self.t_last, 0.0) / self.halflife)
            self.neg *= k
            self.tot *= k
        self.t_last = bucket.start
        self.neg += bucket.negative
        self.tot += bucket.count

    def details(self) -> dict[str, Any]:
        obs, base, p = self._last
        if isinstance(p, tuple):
            p = binom_tail(*p)
        return {
            "negative_share": round_to(obs, 4),
            "baseline_share": round_to(base, 4),
            "tail_p": p,
        }

    def clone(self) -> Self:
        return copy.deepcopy(self)
