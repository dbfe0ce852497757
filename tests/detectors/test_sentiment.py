"""The sentiment detector's shortcut (the method-of-types bound that skips the incomplete beta
for buckets in the dead zone) must change no score and no explained tail."""

from __future__ import annotations

import random

from detectors.sentiment import SentimentDetector, binom_tail, ramp
from detectors.volume import surprise_of
from monitor.model import Bucket


def reference(d: SentimentDetector, b: Bucket) -> tuple[float, float]:
    """Score and tail p through the exact binomial tail (the definition)."""
    c, share = b.count, d.share
    if c < d.min_count or b.negative <= share * c:
        return 0.0, 1.0
    deff = (1.0 + (c - 1) * d.rho) * (1.0 + c / (d.tot + d.prior_mentions))
    p = binom_tail(b.negative / deff, c / deff, min(0.999, share))
    return ramp(surprise_of(p), d.surprise_min, d.surprise_max), p


def test_the_shortcut_gives_the_exact_scores_and_tails() -> None:
    rng = random.Random(5)
    skipped = fired = 0
    for share in (0.02, 0.1, 0.3, 0.6, 0.95):
        d = SentimentDetector(warmup=0.0)
        for i in range(600):
            n = rng.choice([0, 3, 5, 8, 20, 60, 300, 2000])
            turn = rng.random() < 0.05  # a sentiment turn now and then
            neg = sum(rng.random() < (min(1.0, share * 2.5) if turn else share) for _ in range(n))
            b = Bucket("s", i * 60.0, 60.0, count=n, negative=neg)
            want_score, want_p = reference(d, b)
            assert d.score_one(b) == want_score
            skipped += isinstance(d._last[2], tuple)  # the tail left for details() to work out
            assert d.details()["tail_p"] == want_p
            fired += want_score > 0.0
            d.learn_one(b)
    assert skipped > 500 and fired > 20  # both the shortcut and the exact path ran
