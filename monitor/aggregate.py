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
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.decode import decode_mention, encode_mention
from monitor.errors import DecodeError
from monitor.model import Bucket, Enriched, Sentiment

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
        start_floor: float | None = None,
    ) -> None:
        self.topics = list(topics)
        self.width = float(bucket_seconds)
        self.samples = samples_per_bucket
        self.horizon = max(1, math.ceil(horizon_seconds / self.width))  # in buckets
        self._open: dict[tuple[str, float], Bucket] = {}
        self.closed_until: float | None = None  # every bucket ending at or before is closed
        # event time may not begin before this on a first advance (None: the horizon only)
        self.start_floor = start_floor
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
            if self.start_floor is not None:
                oldest = max(oldest, min(end, math.floor(self.start_floor / self.width)))
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
        why = (
            "before event time's first-start floor"
            if self.closed_until is None and self.start_floor is not None
            else f"more than {self.horizon * self.width:.0f} s behind the watermark"
        )
        log.warning(
            "%d open buckets (%d topic mentions) before %.0f dropped: %s", len(old), n, start, why
        )

    def open_buckets(self) -> list[Bucket]:
        """Buckets still collecting (for live counters; do not mutate)."""
        return list(self._open.values())

    def snapshot(self) -> dict[str, Any]:
        """The watermark and every open bucket, JSON-able, for :meth:`restore` after a restart.

        The collectors have acknowledged what these buckets counted, so without them a
        restart would lose the last minutes of mentions for good.

        >>> from monitor.model import Author, Mention, Sentiment
        >>> agg = Aggregator(["acme"], bucket_seconds=60)
        >>> m = Mention("1", "demo", "x", "acme down", 65.0, Author("a", "@a", 10))
        >>> agg.add(Enriched(m, ("acme",), "en", Sentiment("negative", -0.8), ("down",)))
        True
        >>> again = Aggregator(["acme"], bucket_seconds=60)
        >>> again.restore(agg.snapshot())
        >>> [(b.start, b.count, b.negative, dict(b.terms)) for b in again.advance(120.0)]
        [(60.0, 1, 1, {'down': 1})]
        """
        return {
            "closed_until": self.closed_until,
            "open": [_bucket_state(b) for b in self._open.values()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`snapshot`. Buckets of topics no longer configured, of another
        width, or already closed are dropped (logged)."""
        closed = state.get("closed_until")
        self.closed_until = float(closed) if closed is not None else None
        dropped = 0
        for d in state.get("open") or ():
            try:
                b = _bucket_from_state(d)
            except (KeyError, TypeError, ValueError, DecodeError):
                dropped += 1
                continue
            if (
                b.series not in self.topics
                or b.width != self.width
                or (self.closed_until is not None and b.start < self.closed_until)
            ):
                dropped += 1
                continue
            self._open[(b.series, b.start)] = b
        if dropped:
            log.warning(
                "%d saved open buckets not restored (topics or bucket width changed)", dropped
            )


def _bucket_state(b: Bucket) -> dict[str, Any]:
    return {
        "series": b.series,
        "start": b.start,
        "width": b.width,
        "count": b.count,
        "negative": b.negative,
        "positive": b.positive,
        "sentiment_sum": b.sentiment_sum,
        "reach": b.reach,
        "channels": dict(b.channels),
        "terms": dict(b.terms),
        "samples": [
            {
                "mention": encode_mention(e.mention),
                "topics": list(e.topics),
                "lang": e.lang,
                "sentiment": [e.sentiment.label, e.sentiment.score],
                "terms": list(e.terms),
            }
            for e in b.samples
        ],
    }


def _bucket_from_state(d: Mapping[str, Any]) -> Bucket:
    samples = []
    for s in d.get("samples") or ():
        label, score = s["sentiment"]
        if label not in ("negative", "neutral", "positive"):
            raise ValueError(f"sentiment label {label!r}")
        samples.append(
            Enriched(
                decode_mention(s["mention"]),
                tuple(map(str, s["topics"])),
                str(s["lang"]),
                Sentiment(label, float(score)),
                tuple(map(str, s["terms"])),
            )
        )
    return Bucket(
        series=str(d["series"]),
        start=float(d["start"]),
        width=float(d["width"]),
        count=int(d["count"]),
        negative=int(d["negative"]),
        positive=int(d["positive"]),
        sentiment_sum=float(d["sentiment_sum"]),
        reach=int(d["reach"]),
        channels=Counter({str(k): int(v) for k, v in d["channels"].items()}),
        terms=Counter({str(k): int(v) for k, v in d["terms"].items()}),
        samples=samples,
    )
