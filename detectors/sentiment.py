"""Sentiment-turn detector: is the negative share of this bucket above the series' own norm?

The baseline negative share is a count-weighted EWMA (a ratio of EWMAs, so busy buckets
weigh more than quiet ones). A bucket is judged by a binomial tail on its negative count
given how many mentions it holds, with the count shrunk by an intra-bucket correlation
``rho`` (a beta-binomial design effect): replies to one viral post are not independent
opinions, so 2,000 mentions must not give the certainty of 2,000 coin flips. Buckets with
fewer than ``min_count`` mentions score 0: three angry posts are not a sentiment turn.

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

from detectors.base import halflife_alpha
from detectors.volume import surprise_of


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


class SentimentDetector:
    """Negative-share turn detector for one series."""

    name = "sentiment"
    __slots__ = (
        "_last",
        "halflife",
        "min_count",
        "n",
        "neg",
        "rho",
        "surprise_max",
        "t0",
        "t_last",
        "tot",
        "warmup",
    )

    def __init__(
        self,
        *,
        halflife: float = 86_400.0,
        min_count: int = 5,
        rho: float = 0.02,
        surprise_max: float = 12.0,
        warmup: float = 86_400.0,
    ) -> None:
        self.halflife, self.min_count, self.rho = halflife, min_count, rho
        self.surprise_max, self.warmup = surprise_max, warmup
        self.n, self.neg, self.tot = 0, 0.0, 0.0
        self.t0 = self.t_last = math.nan
        self._last: tuple[float, float, float] = (0.0, 0.0, 1.0)

    @property
    def warm(self) -> bool:
        return self.n > 0 and self.t_last - self.t0 >= self.warmup

    @property
    def share(self) -> float:
        """Baseline negative share (with a weak prior of 10% before any data)."""
        return (self.neg + 0.1) / (self.tot + 1.0)

    def score_one(self, bucket: Any) -> float:
        c = bucket.count
        share = self.share
        if c < self.min_count or bucket.negative <= share * c:
            self._last = (bucket.negative / c if c else 0.0, share, 1.0)
            return 0.0
        deff = 1.0 + (c - 1) * self.rho  # design effect of correlated mentions
        n_eff = c / deff
        k_eff = bucket.negative / deff
        p = binom_tail(k_eff, n_eff, min(0.999, share))
        self._last = (bucket.negative / c, share, p)
        return min(1.0, surprise_of(p) / self.surprise_max)

    def learn_one(self, bucket: Any) -> None:
        if self.n == 0:
            self.t0 = bucket.start
        self.n += 1
        self.t_last = bucket.start
        a = halflife_alpha(bucket.width, self.halflife)
        self.neg += a * (bucket.negative - self.neg)
        self.tot += a * (bucket.count - self.tot)

    def details(self) -> dict[str, Any]:
        obs, base, p = self._last
        return {"negative_share": round(obs, 4), "baseline_share": round(base, 4), "tail_p": p}

    def clone(self) -> Self:
        return copy.deepcopy(self)
