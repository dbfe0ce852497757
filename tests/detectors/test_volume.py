"""The volume detector's weekday memory (``weekly_halflife_weeks``)."""

from __future__ import annotations

import pytest

from detectors.volume import DAY, VolumeDetector
from monitor.model import Bucket

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
