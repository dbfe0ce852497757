"""The enrichment stage: topics, language, sentiment and terms for a batch of mentions.

>>> from monitor.config.enrichment import EnrichmentConfig
>>> from monitor.config.system import TopicConfig
>>> from monitor.model import Author, Mention
>>> e = Enricher([TopicConfig(name="acme", query="acme AND (outage OR refund)")],
...              EnrichmentConfig(sentiment="baseline"))
>>> m = Mention(id="1", source="demo", channel="x", text="Acme outage again, terrible!",
...             created_at=0.0, author=Author(id="a", handle="@bob"))
>>> out = e.enrich_batch([m])[0]
>>> out.topics, out.lang, out.sentiment.label, out.terms
(('acme',), 'en', 'negative', ('acme', 'outage', 'terrible'))
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.config.enrichment import EnrichmentConfig
from monitor.config.system import TopicConfig
from monitor.enrich.lang import LanguageDetector
from monitor.enrich.linear import load_default_model
from monitor.enrich.matcher import TopicMatcher
from monitor.enrich.query import language_code, make_doc, parse_query
from monitor.enrich.sentiment import LexiconScorer, SentimentScorer
from monitor.enrich.terms import content_terms
from monitor.enrich.text import tokenize
from monitor.model import Enriched, Mention

__all__ = ["Enricher", "make_scorer", "source_lang"]

# Codes a source uses to say it does not know the language (Twitter: "und", and the
# ISO 639-2 local-use range qaa-qtz for "media only", "hashtags only", ...).
_NOT_A_LANGUAGE = frozenset({"und", "mul", "mis", "zxx"})


def source_lang(code: str | None) -> str:
    """The language a source supplied as its ISO 639-1 code where one exists (``ger``, ``deu``
    and ``gsw`` are ``de``), or "" when it names no language.

    A German post tagged ``ger`` was scored by the English head and missed ``lang:de`` (QA).

    >>> source_lang("en-GB"), source_lang("pt_BR"), source_lang("und"), source_lang("qme")
    ('en', 'pt', '', '')
    >>> source_lang("ger"), source_lang("deu"), source_lang("gsw"), source_lang("eng")
    ('de', 'de', 'de', 'en')
    """
    if not code:
        return ""
    primary = language_code(code)
    if primary in _NOT_A_LANGUAGE or (len(primary) == 3 and "qaa" <= primary <= "qtz"):
        return ""
    return primary


def make_scorer(config: EnrichmentConfig) -> SentimentScorer:
    """The scorer the config asks for."""
    if config.sentiment == "linear":
        return load_default_model()
    return LexiconScorer()


class Enricher:
    """Pure and synchronous: mentions in, :class:`Enriched` out, same order.

    ``scorer`` replaces the configured sentiment model (e.g. a heavier one, or a fake in tests).
    """

    def __init__(
        self,
        topics: Sequence[TopicConfig],
        config: EnrichmentConfig,
        *,
        scorer: SentimentScorer | None = None,
        detector: LanguageDetector | None = None,
    ) -> None:
        self.config = config
        self.matcher = TopicMatcher([(t.name, parse_query(t.query)) for t in topics])
        self.detector = detector or LanguageDetector(config.languages, config.language_boost)
        self.scorer = scorer if scorer is not None else make_scorer(config)

    def _langs(self, mentions: Sequence[Mention]) -> list[str]:
        """Languages: the source's when trusted, the rest detected in one batched call."""
        trust = self.config.trust_source_lang
        langs = [source_lang(m.lang) if trust else "" for m in mentions]
        todo = [i for i, g in enumerate(langs) if not g]
        if todo:
            found = self.detector.detect_batch([mentions[i].text for i in todo])
            for i, g in zip(todo, found, strict=True):
                langs[i] = g
        return langs

    def enrich_batch(self, mentions: Sequence[Mention]) -> list[Enriched]:
        """Enrich ``mentions``; the scorer sees them in chunks of ``config.batch_size``."""
        langs = self._langs(mentions)
        texts = [m.text for m in mentions]
        sentiments = []
        step = self.config.batch_size
        for lo in range(0, len(texts), step):
            sentiments.extend(self.scorer.score_batch(texts[lo : lo + step], langs[lo : lo + step]))
        out: list[Enriched] = []
        limit = self.config.max_terms
        for m, lang, sent in zip(mentions, langs, sentiments, strict=True):
            # only the first MAX_TOKENIZED characters: the whole of a 100,000-character post
            # took 0.75 s on the event loop (QA); sentiment and language ID read less still
            tokens = tokenize(m.text)
            doc = make_doc(
                tokens,
                lang=lang,
                channel=m.channel,
                author=m.author.handle,
                country=m.country or "",
            )
            terms = content_terms(tokens, limit)
            out.append(Enriched(m, self.matcher.match(doc), lang, sent, terms))
        return out
