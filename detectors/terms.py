"""Emerging-term detector: terms whose frequency bursts against their own baseline.

Each series tracks at most ``max_tracked`` terms, each with a per-second rate that decays
lazily (only when the term is touched), so a bucket costs O(terms in the bucket), not
O(tracked terms). A term never seen before is expected at ``floor_per_day`` occurrences a
day. A bucket's signal is the most surprising term (Poisson tail, Bonferroni-corrected for
the number of terms tested); ``top`` lists the terms with the highest observed/expected ratio.

>>> from collections import Counter
>>> from monitor.model import Bucket
>>> d = TermsDetector(warmup=0.0)
>>> for i in range(300):
...     d.learn_one(Bucket("s", i * 60.0, 60.0, count=5, terms=Counter({"price": 1})))
>>> d.score_one(Bucket("s", 300 * 60.0, 60.0, count=5, terms=Counter({"price": 1})))
0.0
>>> d.score_one(Bucket("s", 300 * 60.0, 60.0, count=60, terms=Counter({"recall": 40}))) > 0.5
True
>>> d.top(1)[0][0]
'recall'
"""

from __future__ import annotations

import copy
import math
from typing import Any, Self

from scipy.special import gammainc

from detectors.volume import surprise_of
from monitor.model import Bucket


def poisson_tail(k: float, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu).

    >>> round(poisson_tail(1, 1.0), 4)
    0.6321
    """
    if k <= 0:
        return 1.0
    return float(gammainc(k, mu))


class TermsDetector:
    """Per-series emerging-term detector."""

    name = "terms"
    __slots__ = (
        "_last",
        "floor_per_day",
        "halflife",
        "max_tracked",
        "min_count",
        "n",
        "rates",
        "surprise_max",
        "t0",
        "t_last",
        "warmup",
    )

    def __init__(
        self,
        *,
        max_tracked: int = 48,
        min_count: int = 3,
        halflife: float = 3 * 86_400.0,
        floor_per_day: float = 1.0,
        surprise_max: float = 12.0,
        warmup: float = 86_400.0,
    ) -> None:
        self.max_tracked, self.min_count, self.halflife = max_tracked, min_count, halflife
        self.floor_per_day, self.surprise_max, self.warmup = floor_per_day, surprise_max, warmup
        self.n = 0
        self.t0 = self.t_last = math.nan
        self.rates: dict[str, tuple[float, float]] = {}  # term -> (rate per s, t of rate)
        self._last: list[tuple[str, float, float]] = []  # (term, observed, expected)

    @property
    def warm(self) -> bool:
        return self.n > 0 and self.t_last - self.t0 >= self.warmup

    def _rate(self, term: str, t: float) -> float:
        r = self.rates.get(term)
        floor = self.floor_per_day / 86_400.0
        if r is None:
            return floor
        # The EWMA starts from zero at the series' first bucket; divide by the weight it has
        # accumulated since then, or every term looks like a burst early in a series' life.
        seen = max(t - self.t0, 1.0) if self.n else 1.0
        weight = 1.0 - math.pow(0.5, seen / self.halflife)
        return max(floor, r[0] * math.pow(0.5, (t - r[1]) / self.halflife) / max(weight, 1e-9))

    def score_one(self, bucket: Bucket) -> float:
        terms = bucket.terms
        if not terms:
            self._last = []
            return 0.0
        tested = [(w, c) for w, c in terms.items() if c >= self.min_count]
        if not tested:
            self._last = []
            return 0.0
        best = 1.0
        found = []
        for w, c in tested:
            e = self._rate(w, bucket.start) * bucket.width
            if c > e:
                best = min(best, poisson_tail(c, e))
                found.append((w, float(c), e))
        self._last = found
        return min(1.0, surprise_of(min(1.0, best * len(tested))) / self.surprise_max)

    def top(self, k: int) -> list[tuple[str, float]]:
        """Top ``k`` terms of the last scored bucket by observed/expected ratio."""
        ranked = sorted(self._last, key=lambda f: f[1] / f[2], reverse=True)[:k]
        return [(w, round(c / e, 1)) for w, c, e in ranked]

    def learn_one(self, bucket: Bucket) -> None:
        t, width = bucket.start, bucket.width
        if self.n == 0:
            self.t0 = t
        self.n += 1
        self.t_last = t
        decay = math.log(2.0) / self.halflife
        for w, c in bucket.terms.items():
            r = self.rates.get(w)
            old = 0.0 if r is None else r[0] * math.exp(-decay * (t - r[1]))
            # continuous-time EWMA of the rate: weight of the new bucket = 1 - exp(-decay*width)
            a = 1.0 - math.exp(-decay * width)
            self.rates[w] = (old + a * (c / width - old), t)
        if len(self.rates) > self.max_tracked:
            ranked = sorted(self.rates, key=lambda w: self._rate(w, t))
            for w in ranked[: len(self.rates) - self.max_tracked]:
                del self.rates[w]

    def details(self) -> dict[str, Any]:
        return {"terms_tested": len(self._last)}

    def clone(self) -> Self:
        return copy.deepcopy(self)
