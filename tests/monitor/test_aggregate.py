from __future__ import annotations

from monitor.aggregate import Aggregator
from monitor.model import Author, Enriched, Mention, Sentiment


def enriched(
    t: float,
    topics: tuple[str, ...] = ("acme",),
    label: str = "neutral",
    followers: int = 1,
    terms: tuple[str, ...] = (),
) -> Enriched:
    m = Mention(f"id{t}{followers}", "demo", "x", "text", t, Author("a", "@a", followers))
    score = {"negative": -0.9, "neutral": 0.0, "positive": 0.9}[label]
    return Enriched(m, topics, "en", Sentiment(label, score), terms)  # type: ignore[arg-type]


def test_buckets_close_only_behind_the_watermark_and_include_empty_ones() -> None:
    agg = Aggregator(["acme", "globex"], bucket_seconds=60)
    assert agg.add(enriched(10))
    assert agg.add(enriched(70, ("acme", "globex"), "negative"))
    assert agg.advance(59) == []  # first bucket [0, 60) not yet closed
    closed = agg.advance(125)
    assert [(b.series, b.start, b.count, b.negative) for b in closed] == [
        ("acme", 0.0, 1, 0),
        ("globex", 0.0, 0, 0),
        ("acme", 60.0, 1, 1),
        ("globex", 60.0, 1, 1),
    ]
    assert agg.advance(125) == []


def test_late_mentions_are_rejected_and_counted() -> None:
    agg = Aggregator(["acme"], bucket_seconds=60)
    agg.add(enriched(10))
    agg.advance(120)
    assert not agg.add(enriched(30))
    assert agg.late == 1
    assert agg.add(enriched(130))


def test_samples_keep_the_highest_reach_negative_posts() -> None:
    agg = Aggregator(["acme"], bucket_seconds=60, samples_per_bucket=2)
    for f in (5, 500, 50, 5000):
        agg.add(enriched(1, label="negative", followers=f))
    agg.add(enriched(2, label="positive", followers=10**6))
    (b,) = agg.advance(60)
    assert sorted(s.mention.author.followers for s in b.samples) == [500, 5000]
    assert b.count == 5 and b.negative == 4 and b.positive == 1 and b.reach == 1_005_555


def test_terms_and_channels_are_counted() -> None:
    agg = Aggregator(["acme"], bucket_seconds=60)
    agg.add(enriched(1, terms=("outage", "acme")))
    agg.add(enriched(2, terms=("outage",)))
    (b,) = agg.advance(60)
    assert b.terms["outage"] == 2 and b.channels["x"] == 2
