"""Event-time buckets per topic, closed behind a watermark.

A mention lands in the bucket of its `created_at`. A bucket closes when the watermark
(passed in by the caller, derived from the clock or the newest event time) reaches its end;
every topic gets a bucket for every closed interval, empty ones included, because a
silent minute is data too. Mentions for an already closed bucket are counted as late.
Event time starts at the oldest bucket the first watermark closes, never further back than
`horizon_seconds` (a week), and never at a mention dated ahead of the watermark.

>>> from monitor.model import Author, Enriched, Mention, Sentiment
>>> agg = Aggregator(["acme"], bucket_seconds=60)
>>> m = Mention("1", "demo", "x", "acme down", 65.0, Author("a", "@a", 10))
>>> agg.add(Enriched(m, ("acme",), "en", Sentiment("negative", -0.8)))
True
>>> [(b.start, b.count, b.negative) for b in agg.advance(180.0)]
[(60.0, 1, 1), (120.0, 0, 0)]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from monitor.model import Bucket, Enriched

log = logging.getLogger(__name__)

#: The most event time one watermark step closes (see `Aggregator.advance`).
HORIZON_SECONDS = 7 * 86_400.0


class Aggregator:
    def __init__(
        self,
        topics: Sequence[str],
        bucket_seconds: float = 60.0,
        samples_per_bucket: int = 5,
        horizon_seconds: float = HORIZON_SECONDS,
    ) -> None:
        self.topics = list(topics)
        self.width = float(bucket_seconds)
        self.samples = samples_per_bucket
        self.horizon = max(1, math.ceil(horizon_seconds / self.width))  # in buckets
        self._open: dict[tuple[str, float], Bucket] = {}
        self.closed_until: float | None = None  # every bucket ending at or before is closed
        self.late = 0

    def _start(self, t: float) -> float:
        return math.floor(t / self.width) * self.width

    def add(self, e: Enriched) -> bool:
        """Count one enriched mention; False (and counted) when its bucket already closed."""
        start = self._start(e.mention.created_at)
        if self.closed_until is not None and start < self.closed_until:
            self.late += 1
            return False
        for topic in e.topics:
            b = self._open.get((topic, start))
            if b is None:
                b = self._open[(topic, start)] = Bucket(topic, start, self.width)
            b.count += 1
            if e.sentiment.label == "negative":
                b.negative += 1
                self._keep_sample(b, e)
            elif e.sentiment.label == "positive":
                b.positive += 1
            b.sentiment_sum += e.sentiment.score
            b.reach += e.mention.author.followers
            b.channels[e.mention.channel] += 1
            b.terms.update(e.terms)
        return True

    def _keep_sample(self, b: Bucket, e: Enriched) -> None:
        """Keep the highest-reach negative posts: they are what a responder reads first."""
        if self.samples <= 0:
            return
        b.samples.append(e)
        if len(b.samples) > self.samples:
            b.samples.sort(key=lambda s: -s.mention.author.followers)
            del b.samples[self.samples :]

    def advance(self, watermark: float) -> list[Bucket]:
        """Close every bucket that ends at or before `watermark`, oldest first.

        One call closes at most `horizon_seconds` of event time: a years-old item on a first
        start (an RSS feed's archive) or a restart after a long outage would otherwise emit
        one empty bucket per topic for every interval in between. Older buckets are dropped
        and counted as late.
        """
        end = math.floor(watermark / self.width)  # index of the oldest bucket left open
        oldest = end - self.horizon
        if self.closed_until is None:
            # event time starts at the oldest bucket this watermark closes: not at a mention
            # dated in the future, nor at one from beyond the horizon
            starts = (round(s / self.width) for (_, s) in self._open)
            first = min((k for k in starts if oldest <= k < end), default=end)
        else:
            # a restored value is off this width's grid when bucket_seconds changed
            first = max(oldest, math.ceil(self.closed_until / self.width - 1e-9))
        self._drop_before(first * self.width)
        out: list[Bucket] = []
        # starts as index * width, exactly as _start computes them: a running sum drifts
        # off the keys for widths like 0.1
        for k in range(first, end):
            t = k * self.width
            for topic in self.topics:
                b = self._open.pop((topic, t), None)
                out.append(b if b is not None else Bucket(topic, t, self.width))
        self.closed_until = max(end, first) * self.width
        return out

    def _drop_before(self, start: float) -> None:
        old = [key for key in self._open if key[1] < start]
        if not old:
            return
        n = sum(self._open.pop(key).count for key in old)
        self.late += n
        log.warning(
            "%d open buckets (%d topic mentions) before %.0f dropped: more than %.0f s behind"
            " the watermark",
            len(old), n, start, self.horizon * self.width,
        )  # fmt: skip

    def open_buckets(self) -> list[Bucket]:
        """Buckets still collecting (for live counters; do not mutate)."""
        return list(self._open.values())
