"""Emerging-term detector: terms whose *share of mentions* bursts against the series' own mix.

Volume is the volume detector's business; this one asks whether the bucket's mentions talk
about something else than usual. Each series keeps exponentially decayed counts: ``M``
mentions seen and, for at most ``max_tracked`` terms, ``m[w]`` mentions that contained the
term (terms are deduplicated per mention by enrichment, so ``m[w] <= M``). Decay is lazy
(applied when an entry is touched), so a bucket costs O(terms in the bucket).

A term's baseline share is ``(m[w] + 0.5) / (M + 1)``: a ratio of sums, so it needs no warm-up
debiasing, and the pseudo-counts shrink it for a young series (a term never seen in 300
mentions is not as surprising as one never seen in 300,000). Tracking is Space-Saving
style: a term evicted to make room leaves its count as ``bound``, and an untracked term is
assumed to have had up to ``bound`` mentions — so a regular word that was evicted does not
come back looking brand new.

A bucket's term ``w`` appearing in ``k`` of its ``n`` mentions is judged by a binomial tail with
the same design effect as the sentiment detector (replies to one viral post are not
independent), Bonferroni-corrected over the terms tested; surprises below ``surprise_min``
(-log10 p) are noise and give 0, ``surprise_max`` gives 1.

The term table and its two loops over a bucket's terms (folding them in, finding the
candidates above their baseline) are C, ``_termtable.TermTable``: tens of dict operations and
float objects per series-bucket cost more than the rest of the detector stack in Python.
Everything else stays here.

>>> from collections import Counter
>>> from monitor.model import Bucket
>>> d = TermsDetector(warmup=0.0)
>>> calm = Counter({"price": 2, "store": 3, "order": 2})
>>> for i in range(180):
...     d.learn_one(Bucket("s", i * 60.0, 60.0, count=30, terms=calm))
>>> d.score_one(Bucket("s", 180 * 60.0, 60.0, count=30, terms=Counter({"price": 4})))
0.0
>>> d.score_one(Bucket("s", 180 * 60.0, 60.0, count=90, terms=Counter({"recall": 50}))) > 0.9
True
>>> d.top(1)[0][0]
'recall'
"""

from __future__ import annotations

import copy
import math
from typing import Any, Self

from detectors._round import round_to
from detectors._termtable import TermTable
from detectors.sentiment import binom_tail, ramp, tail_floor
from detectors.volume import surprise_of
from monitor.model import Bucket


class TermsDetector:
    """Per-series emerging-term detector (count-normalised, Space-Saving tracked)."""

    name = "terms"
    __slots__ = (
        "_last",
        "bound",
        "counts",
        "epoch",
        "exact_terms",
        "halflife",
        "max_tracked",
        "mentions",
        "min_count",
        "n",
        "rho",
        "surprise_max",
        "surprise_min",
        "t0",
        "t_last",
        "warmup",
    )
    SETTINGS = (
        "exact_terms",
        "max_tracked",
        "min_count",
        "rho",
        "surprise_max",
        "surprise_min",
        "warmup",
    )
    LAYOUT = ("halflife",)  # counts are stored scaled to the epoch by it

    def __init__(
        self,
        *,
        max_tracked: int = 48,
        min_count: int = 3,
        halflife: float = 3 * 86_400.0,
        rho: float = 0.02,
        surprise_min: float = 2.0,
        surprise_max: float = 8.0,
        warmup: float = 86_400.0,
        exact_terms: int = 3,
    ) -> None:
        self.exact_terms = exact_terms
        self.max_tracked, self.min_count, self.halflife = max_tracked, min_count, halflife
        self.rho, self.surprise_min, self.surprise_max = rho, surprise_min, surprise_max
        self.warmup = warmup
        self.n = 0
        self.t0 = self.t_last = math.nan
        self.mentions = 0.0  # decayed mention count M, as of t_last
        self.bound = 0.0  # decayed count of the largest evicted term, as of t_last
        # term -> count scaled to ``epoch``: count(t) = v * 2 ** -((t - epoch) / halflife); one
        # double per term instead of a (count, t) pair keeps a tracked term small
        self.counts = TermTable()
        self.epoch = 0.0
        # (exponent, observed, share, expected, term) of the last bucket's terms above expectation
        self._last: list[tuple[float, float, float, float, str]] = []

    @property
    def warm(self) -> bool:
        return self.n > 0 and self.t_last - self.t0 >= self.warmup

    @property
    def warm_at(self) -> float:
        return self.t0 + self.warmup if self.n else math.inf

    def _decay(self, dt: float) -> float:
        return math.pow(0.5, dt / self.halflife) if dt > 0.0 else 1.0

    def share(self, term: str, t: float) -> float:
        """Baseline share of mentions containing ``term`` as of time ``t`` (shrunk when young).

        >>> from collections import Counter
        >>> d = TermsDetector()
        >>> d.learn_one(Bucket("s", 0.0, 60.0, count=9, terms=Counter({"app": 3})))
        >>> round(d.share("app", 0.0), 3), round(d.share("never", 0.0), 3)
        (0.35, 0.05)
        """
        k = self._decay(t - self.t_last) if self.n else 1.0
        entry = self.counts.get(term)
        m = self.bound * k if entry is None else entry * self._decay(t - self.epoch)
        return (m + 0.5) / (self.mentions * k + 1.0)

    def score_one(self, bucket: Bucket) -> float:
        terms = bucket.terms
        n = bucket.count
        if not terms or n <= 0:
            self._last = []
            return 0.0
        # design effect: correlated mentions, and a mix known from only M + 1 mentions
        mentions = self.mentions
        deff = (1.0 + (n - 1) * self.rho) * (1.0 + n / (mentions + 1.0))
        # decay factors are the same for every term of the bucket (see :meth:`share`)
        t = bucket.start
        k = self._decay(t - self.t_last) if self.n else 1.0
        scale = self._decay(t - self.epoch)
        untracked = self.bound * k
        denom = mentions * k + 1.0
        tested, found = self.counts.candidates(terms, n, self.min_count, untracked, scale, denom)
        self._last = found
        if not found:
            return 0.0
        n_eff = n / deff
        best = 1.0
        # Below this (Bonferroni) p a term counts; a tail that provably stays above it is
        # noise and needs no exact value: the method-of-types bound
        # P(X >= k) >= exp(-n D) / (n + 1) skips the incomplete beta in most calm buckets.
        cutoff = 10.0**-self.surprise_min / tested
        # the exact tail only for the strongest candidates: the one term that decides the
        # score is (near-)always the one with the largest exponent; the cost stays flat in
        # the number of terms a bucket carries
        for d, c, s, _e, _w in found[: self.exact_terms]:  # strongest first
            if tail_floor(d, n_eff) >= cutoff:
                break  # this one and every weaker candidate are noise
            best = min(best, binom_tail(min(c, n) / deff, n_eff, s))
        return ramp(surprise_of(min(1.0, best * tested)), self.surprise_min, self.surprise_max)

    def top(self, k: int) -> list[tuple[str, float]]:
        """Top ``k`` terms of the last scored bucket by observed/expected ratio."""
        ranked = sorted(self._last, key=lambda f: f[1] / f[3], reverse=True)[:k]
        return [(w, round_to(c / e, 1)) for _d, c, _s, e, w in ranked]

    def learn_one(self, bucket: Bucket) -> None:
        t = bucket.start
        if self.n == 0:
            self.t0 = self.epoch = t
        else:
            k = self._decay(t - self.t_last)
            self.mentions *= k
            self.bound *= k
        self.n += 1
        self.t_last = t
        self.mentions += bucket.count
        counts = self.counts
        grow = 1.0 / self._decay(t - self.epoch)  # a count added now, in epoch units
        if grow > 1e100:  # move the epoch before the scaled counts overflow (every ~3 years)
            counts.rescale(grow)
            self.epoch, grow = t, 1.0
        cut = counts.fold(bucket.terms, self.bound * grow, grow, self.max_tracked)
        self.bound = max(self.bound, cut / grow)

    def details(self) -> dict[str, Any]:
        return {"terms_tested": len(self._last)}

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # the last bucket's candidates are worked out afresh before anyone reads them again
        # (top() follows score_one on the same bucket): ~12 % of a checkpointed series
        return None, {k: getattr(self, k) for k in self.__slots__ if k != "_last"}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        self._last = []
        for name, value in state[1].items():
            setattr(self, name, value)
        if isinstance(self.counts, dict):  # a checkpoint from before the table was C
            self.counts = TermTable(list(self.counts), list(self.counts.values()))

    def clone(self) -> Self:
        return copy.deepcopy(self)
