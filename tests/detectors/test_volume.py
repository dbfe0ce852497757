"""The volume detector: its weekday memory (``weekly_halflife_weeks``), waking after silence."""

from __future__ import annotations

import random

import pytest

from detectors.stage import DetectionStage, Verdict
from detectors.volume import DAY, VolumeDetector
from monitor.config.detection import DetectionConfig
from monitor.model import Bucket
from tests.detectors.synthetic import poisson

WIDTH = 3600.0
MONDAY = 4 * DAY  # 1970-01-05 was a Monday


def monday_factor_after_one_busy_monday(weeks: float) -> float:
    """Three flat weeks, then one Monday at twice the usual count; the Monday factor after it."""
    d = VolumeDetector(weekly_halflife_weeks=weeks, warmup=0.0)
    t = MONDAY
    for _ in range(21 * 24):
        d.learn_one(Bucket("s", t, WIDTH, count=10))
        t += WIDTH
    for _ in range(24):
        d.learn_one(Bucket("s", t, WIDTH, count=20))
        t += WIDTH
    return d._weekly[0]


def test_a_longer_weekday_memory_moves_less_after_one_unusual_day() -> None:
    short, default, long = (monday_factor_after_one_busy_monday(w) for w in (2.0, 4.0, 8.0))
    assert short > default > long > 1.0
    # one day is one sample of a weekday: its pull roughly halves when the memory doubles
    assert (default - 1.0) == pytest.approx((short - 1.0) / 2.0, rel=0.25)
    assert (long - 1.0) == pytest.approx((default - 1.0) / 2.0, rel=0.25)


def test_a_series_back_after_two_silent_months_gets_a_sane_baseline() -> None:
    """Weeks of empty buckets (a topic nobody mentioned) drove the level to ~0; when mentions
    came back the seasonal factors took up the slack and the baseline ended 25,000x above the
    series for weeks: blind to any crisis, and 'active' for days after the one real onset."""
    rng = random.Random(5)
    stage = DetectionStage(DetectionConfig())
    width, rate = 300.0, 2.0
    t = 0.0

    def feed(days: float, lam: float) -> list[Verdict]:
        nonlocal t
        out = []
        for _ in range(round(days * DAY / width)):
            count = poisson(rng, lam) if lam else 0
            out.append(stage.observe(Bucket("s", t, width, count=count)))
            t += width
        return out

    feed(10, rate)
    feed(60, 0.0)
    back = feed(14, rate)
    # waking up may be news once (not with the minimum-evidence rule: 2 per bucket is too few)
    assert sum(v.onset == "open" for v in back) <= 1
    assert sum(v.active for v in back) < 0.05 * len(back)
    second_week = [v.explanation["expected"] / rate for v in back[len(back) // 2 :]]
    assert min(second_week) > 0.5 and max(second_week) < 2.0


def test_a_quiet_topic_at_live_buckets_does_not_page_on_lone_mentions() -> None:
    """A topic with one or two mentions an hour, in 60 s buckets: each lone mention is
    improbable under a baseline near zero, and used to keep the series 'active' half the time
    with an open every few days. A crisis (a dozen mentions in minutes) still opens."""
    for per_hour, seed in ((0.5, 0), (1.0, 1), (2.0, 2)):
        rng = random.Random(seed)
        stage = DetectionStage(DetectionConfig())
        width = 60.0
        lam = per_hour * width / 3600.0
        calm = [
            stage.observe(Bucket("q", i * width, width, count=poisson(rng, lam)))
            for i in range(8 * 1440)
        ]
        assert not any(v.onset for v in calm[1440:]), per_hour
        assert sum(v.active for v in calm[1440:]) == 0, per_hour
        t0 = 8 * 1440 * width
        burst = [stage.observe(Bucket("q", t0 + i * width, width, count=4)) for i in range(5)]
        assert any(v.onset == "open" for v in burst), per_hour


def test_a_narrow_topic_does_not_learn_its_first_crisis_as_its_baseline() -> None:
    """A topic that is silent but for its crises (`acme NEAR/5 outage`): waking from silence
    restarted the level as a plain mean, so the first crisis was the baseline within a minute
    (expected 0 -> 62, the score falling from 0.69 to 0.31 mid-crisis; QA, eleventh session)
    and the next crisis a day later opened only 22 minutes in."""
    stage = DetectionStage(DetectionConfig())
    t = 0.0

    def feed(minutes: int, count: int) -> list[Verdict]:
        nonlocal t
        out = []
        for _ in range(minutes):
            out.append(stage.observe(Bucket("narrow", t, 60.0, count=count)))
            t += 60.0
        return out

    feed(2 * 1440, 0)
    first = feed(30, 60)
    assert first[0].onset == "open" and all(v.active for v in first)
    assert first[-1].explanation["expected"] < 5 and first[-1].score > 0.5
    feed(1440, 0)
    second = feed(30, 60)
    assert second[0].onset == "open"  # at the first bucket of the next crisis
