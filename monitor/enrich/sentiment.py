"""Sentiment scorers behind one small protocol; the pipeline hands them whole batches.

A scorer maps texts (with their detected languages) to :class:`~monitor.model.Sentiment`
values: a label and a continuous score in [-1, 1]. :class:`LexiconScorer` is the
dependency-free baseline; the trained linear model lives in :mod:`monitor.enrich.linear`.

>>> s = LexiconScorer()
>>> [x.label for x in s.score_batch(["great service, thanks!", "not good at all", "it is 5pm"],
...                                 ["en", "en", "en"])]
['positive', 'negative', 'neutral']
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

from monitor.enrich.lexicon import is_negator, polarity
from monitor.enrich.text import strip_urls, tokenize
from monitor.model import Sentiment, SentimentLabel

# Negation reaches at most this many tokens, and never past a clause break.
NEGATION_SCOPE = 3
_CLAUSE_BREAK = re.compile(r"[.,;:!?]+")
_ELONG = re.compile(r"(\w)\1{2,}")


class SentimentScorer(Protocol):
    """Anything that scores a batch of texts; ``langs`` holds ISO codes (or ``"und"``)."""

    def score_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[Sentiment]: ...


def label_for(score: float, threshold: float = 0.2) -> SentimentLabel:
    """Map a score in [-1, 1] to a label with a symmetric neutral band.

    >>> label_for(0.5), label_for(-0.05), label_for(-0.3)
    ('positive', 'neutral', 'negative')
    """
    if score >= threshold:
        return "positive"
    if score <= -threshold:
        return "negative"
    return "neutral"


class LexiconScorer:
    """Counts lexicon hits, flipping those within a few tokens after a negator."""

    def score_one(self, text: str, lang: str = "") -> Sentiment:
        """Score one text.

        >>> s = LexiconScorer().score_one("Rückruf bei Acme, ich bin nicht zufrieden 😡")
        >>> s.label, round(s.score, 3)
        ('negative', -0.905)
        """
        total = 0.0
        # tokenize drops punctuation, so split into clauses first (URLs out: they hold dots)
        for clause in _CLAUSE_BREAK.split(strip_urls(text)):
            negated_until = -1
            for i, tok in enumerate(tokenize(clause)):
                if is_negator(tok):
                    negated_until = i + NEGATION_SCOPE
                    continue
                p = polarity(tok, lang)
                if not p and _ELONG.search(tok):  # "goooood", "baaaad"
                    p = polarity(_ELONG.sub(r"\1\1", tok), lang) or polarity(
                        _ELONG.sub(r"\1", tok), lang
                    )
                if p:
                    # Emoji express the writer's mood directly; negation does not flip them.
                    total += -p if i <= negated_until and tok[-1].isalnum() else p
        score = math.tanh(total / 2.0)
        return Sentiment(label_for(score), score)

    def score_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[Sentiment]:
        """Score each text with the lexicon of its language (both for unknown languages)."""
        return [self.score_one(t, g) for t, g in zip(texts, langs, strict=True)]
