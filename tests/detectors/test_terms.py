"""The term detector's shortcuts (exact tail for the three strongest candidates only, and the
method-of-types lower bound that skips the incomplete beta) must not change any score."""

from __future__ import annotations

import math
import random
from collections import Counter

from detectors.sentiment import binom_tail, ramp
from detectors.terms import TermsDetector
from detectors.volume import surprise_of
from monitor.model import Bucket


def reference_score(d: TermsDetector, b: Bucket) -> float:
    """Every candidate term through the exact binomial tail (the definition)."""
    n = b.count
    tested = [(w, c) for w, c in b.terms.items() if c >= d.min_count]
    if n <= 0 or not tested:
        return 0.0
    deff = (1.0 + (n - 1) * d.rho) * (1.0 + n / (d.mentions + 1.0))
    best = 1.0
    for w, c in tested:
        s = min(d.share(w, b.start), 0.999)
        if c > s * n:
            best = min(best, binom_tail(min(c, n) / deff, n / deff, s))
    return ramp(surprise_of(min(1.0, best * len(tested))), d.surprise_min, d.surprise_max)


def test_shortcuts_give_the_exact_scores() -> None:
    rng = random.Random(11)
    scored = fired = 0
    for _ in range(12):
        size = rng.choice([30, 120, 600])
        vocab = [f"w{k}" for k in range(size)]
        weights = [1.0 / (k + 1) for k in range(size)]
        rate = rng.choice([4, 15, 60])
        d = TermsDetector(warmup=3600.0)
        for i in range(400):
            n = max(0, round(rng.gauss(rate, math.sqrt(rate))))
            terms: Counter[str] = Counter()
            for _m in range(n):
                terms.update(set(rng.choices(vocab, weights, k=4)))
            if n and rng.random() < 0.08:  # bursts of rare, common or brand-new terms
                for w in rng.sample([*vocab[:3], *vocab[-5:], "recall", "outage"], 3):
                    terms[w] = min(n, terms[w] + rng.randint(1, n))
            b = Bucket("s", i * 60.0, 60.0, count=n, terms=terms)
            if n and d.warm:
                expected = reference_score(d, b)
                assert d.score_one(b) == expected
                scored += 1
                fired += expected > 0.0
            if n:
                d.learn_one(b)
    assert scored > 2000 and fired > 50
