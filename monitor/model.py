"""The data that flows through the pipeline. Plain frozen values, no behaviour beyond helpers.

>>> m = Mention(id="1", source="demo", channel="x", text="hi", created_at=0.0,
...             author=Author(id="a", handle="@a", followers=10))
>>> m.key
('demo', '1')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["post", "reply", "comment", "dm", "review"]
SentimentLabel = Literal["negative", "neutral", "positive"]
CHANNELS = (
    "x",
    "facebook",
    "instagram",
    "linkedin",
    "tiktok",
    "reddit",
    "news",
    "bluesky",
    "mastodon",
)


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    handle: str
    followers: int = 0
    verified: bool = False


@dataclass(frozen=True, slots=True)
class Mention:
    """One post/comment/review as collected. `created_at` is event time, epoch seconds UTC."""

    id: str
    source: str
    channel: str
    text: str
    created_at: float
    author: Author
    lang: str | None = None
    url: str | None = None
    kind: Kind = "post"
    in_reply_to: str | None = None
    country: str | None = None
    metrics: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """Dedup key: the same (source, id) is the same mention."""
        return (self.source, self.id)


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: SentimentLabel
    score: float  # in [-1, 1]: negative .. positive


@dataclass(frozen=True, slots=True)
class Enriched:
    """A mention with what enrichment learned: matched topics, language, sentiment, terms."""

    mention: Mention
    topics: tuple[str, ...]
    lang: str
    sentiment: Sentiment
    terms: tuple[str, ...] = ()


@dataclass(slots=True)
class Bucket:
    """Everything one series saw in one event-time bucket [start, start + width)."""

    series: str
    start: float
    width: float
    count: int = 0
    negative: int = 0
    positive: int = 0
    sentiment_sum: float = 0.0
    reach: int = 0
    channels: Counter[str] = field(default_factory=Counter)
    terms: Counter[str] = field(default_factory=Counter)
    samples: list[Enriched] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.width

    @property
    def negative_share(self) -> float:
        return self.negative / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not be used, kept with the reason instead of crashing a collector."""

    source: str
    reason: str
    detail: str
    payload: bytes
    received_at: float
