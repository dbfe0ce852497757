"""River HalfSpaceTrees as an alternative volume detector (``volume_model: hst``).

Kept for comparison in the benchmark and docs: it is generic (no count model, no tail
probability), slower, and needs features scaled to [0, 1]. Features: log count scaled by
the series' running maximum, and the time of day on the unit circle. The raw HST score sits
high for every point (median about 0.9 on NAB realTweets), so like the count model it is
judged against the series' own history: ``z = (score - mean) / spread`` (slow EWMAs) and
the signal is ``z / (z + z_half)``. The seed is fixed so backtests are reproducible.

>>> from monitor.model import Bucket
>>> d = HSTVolumeDetector(warmup=0.0, window_size=50, n_trees=5)
>>> for i in range(400):
...     b = Bucket("s", i * 300.0, 300.0, count=10 + i % 4)
...     _ = d.score_one(b); d.learn_one(b)
>>> 0.0 <= d.score_one(Bucket("s", 400 * 300.0, 300.0, count=500)) <= 1.0
True
"""

from __future__ import annotations

import copy
import math
from typing import Any, Self

from river.anomaly import HalfSpaceTrees

from detectors._round import round_to
from monitor.model import Bucket

DAY = 86_400.0


class HSTVolumeDetector:
    """HalfSpaceTrees on (scaled log count, time of day)."""

    name = "volume"
    SETTINGS = ("halflife", "warmup", "z_half")
    LAYOUT = ("window_size",)  # the trees' reference window

    def __init__(
        self,
        *,
        warmup: float = DAY,
        n_trees: int = 15,
        height: int = 8,
        window_size: int = 250,
        seed: int = 42,
        z_half: float = 4.0,
        halflife: float = 3 * DAY,
    ) -> None:
        self.warmup = warmup
        self.hst = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self.window_size = window_size
        self.n = 0
        self.t0 = self.t_last = math.nan
        self.max_log = 1.0
        self.z_half, self.halflife = z_half, halflife
        self.mean, self.spread = 0.5, 0.1
        self._last: tuple[float, float] = (0.0, 0.0)

    @property
    def warm(self) -> bool:
        return self.n >= self.window_size and self.t_last - self.t0 >= self.warmup

    @property
    def warm_at(self) -> float:
        # at the earliest: it also needs `window_size` buckets
        return self.t0 + self.warmup if self.n else math.inf

    def _features(self, bucket: Bucket) -> dict[str, float]:
        phase = 2.0 * math.pi * (bucket.start % DAY) / DAY
        # headroom of 2x the max seen so far keeps a new record inside [0, 1]
        return {
            "v": min(1.0, math.log1p(bucket.count) / (2.0 * self.max_log)),
            "s": 0.5 + 0.5 * math.sin(phase),
            "c": 0.5 + 0.5 * math.cos(phase),
        }

    def score_one(self, bucket: Bucket) -> float:
        if self.n < self.window_size:
            self._last = (float(bucket.count), 0.0)
            return 0.0
        s = float(self.hst.score_one(self._features(bucket)))  # type: ignore[no-untyped-call]
        self._last = (float(bucket.count), s)
        z = (s - self.mean) / max(self.spread, 1e-3)
        return z / (z + self.z_half) if z > 0.0 else 0.0

    def learn_one(self, bucket: Bucket) -> None:
        if self.n == 0:
            self.t0 = bucket.start
        self.n += 1
        self.t_last = bucket.start
        self.max_log = max(self.max_log, math.log1p(bucket.count))
        if self.n > self.window_size:
            s = self._last[1]
            a = 1.0 - math.pow(0.5, bucket.width / self.halflife)
            self.spread += a * (1.25 * min(abs(s - self.mean), 4.0 * self.spread) - self.spread)
            self.mean += a * (s - self.mean)
        self.hst.learn_one(self._features(bucket))  # type: ignore[no-untyped-call]

    def details(self) -> dict[str, Any]:
        x, s = self._last
        return {"observed": x, "hst_score": round_to(s, 4)}

    def clone(self) -> Self:
        return copy.deepcopy(self)
