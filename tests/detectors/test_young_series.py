"""Young series (the live demo: 1-3 h of history) must not page on ordinary words or moods,
and a real crisis (5x volume, 75% negative, a new term) must page at a severity that says so."""

from __future__ import annotations

import random
from collections import Counter

from detectors.gate import magnitude_severity
from detectors.sentiment import SentimentDetector
from detectors.stage import DetectionStage
from detectors.terms import TermsDetector
from monitor.config.detection import DetectionConfig
from monitor.model import Bucket

W = 60.0
# 16 templates of 5 words each: 80 words, more than the 48 terms a series tracks
TEMPLATES = [[f"w{t}_{k}" for k in range(5)] for t in range(16)]


def calm_bucket(rng: random.Random, i: int, rate: float, neg_share: float = 0.25) -> Bucket:
    n = max(0, round(rng.gauss(rate, rate**0.5)))
    terms: Counter[str] = Counter()
    for _ in range(n):
        terms.update(TEMPLATES[rng.randrange(len(TEMPLATES))])
    neg = sum(rng.random() < neg_share for _ in range(n))
    return Bucket("brand", i * W, W, count=n, negative=neg, terms=terms)


def crisis_bucket(rng: random.Random, i: int, rate: float) -> Bucket:
    b = calm_bucket(rng, i, rate)
    extra = 5 * round(rate)  # the demo: rate * (1 + 5 * intensity)
    b.count += extra
    b.negative += round(0.75 * extra)
    b.terms["outage"] += extra
    return b


def test_template_vocabulary_larger_than_tracking_does_not_page() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        stage = DetectionStage(DetectionConfig(warmup_seconds=3600))
        verdicts = [stage.observe(calm_bucket(rng, i, 14.0)) for i in range(6 * 60)]
        assert not any(v.onset for v in verdicts), seed
        assert max(v.explanation["signals"]["terms"] for v in verdicts[60:]) < 0.3


def test_evicted_regular_word_does_not_come_back_as_new() -> None:
    d = TermsDetector(max_tracked=4, warmup=0.0)
    for i in range(120):
        word = f"word{i % 8}"  # eight regular words, only four slots
        d.learn_one(Bucket("s", i * W, W, count=10, terms=Counter({word: 5})))
    again = Bucket("s", 120 * W, W, count=10, terms=Counter({"word0": 5}))
    assert d.score_one(again) < 0.3  # what a never-seen word would score: 1.0
    new = Bucket("s", 120 * W, W, count=40, terms=Counter({"recall": 30}))
    assert d.score_one(new) > 0.9


def test_young_sentiment_baseline_is_not_pulled_to_the_prior() -> None:
    d = SentimentDetector(warmup=0.0)
    for i in range(60):  # one hour at 20 mentions a minute, 30% negative
        d.learn_one(Bucket("s", i * W, W, count=20, negative=6))
    assert abs(d.share - 0.3) < 0.01
    assert d.score_one(Bucket("s", 60 * W, W, count=20, negative=9)) == 0.0


def test_crisis_in_a_young_series_pages_as_sev1_or_sev2() -> None:
    rng = random.Random(3)
    stage = DetectionStage(DetectionConfig(warmup_seconds=3600))
    for i in range(120):
        stage.observe(calm_bucket(rng, i, 40.0))
    onsets = [v for v in (stage.observe(crisis_bucket(rng, i, 40.0)) for i in range(120, 123))]
    opened = [v for v in onsets if v.onset == "open"]
    assert len(opened) == 1 and opened[0].severity in (1, 2)
    assert set(opened[0].explanation["fired"]) >= {"sentiment", "terms"}
    assert opened[0].explanation["top_terms"][0][0] == "outage"


def test_magnitude_needs_enough_mentions() -> None:
    assert magnitude_severity(15, 1.0, True) == 5  # too few to say: no severity of its own
    assert magnitude_severity(300, 30.0, True) == 1
    assert magnitude_severity(300, 30.0, False) == 2
