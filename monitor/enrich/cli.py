"""Body of ``crisiswatch sentiment``: one text per line in, ``label<TAB>score`` per line out."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TextIO

from monitor.config.enrichment import EnrichmentConfig
from monitor.enrich.enricher import make_scorer
from monitor.enrich.lang import LanguageDetector
from monitor.enrich.sentiment import SentimentScorer

BATCH = 1024


def run_sentiment(
    lang: str,
    stdin: TextIO,
    stdout: TextIO,
    *,
    scorer_factory: Callable[[], SentimentScorer] | None = None,
) -> int:
    """Score every line of ``stdin``; ``lang`` is ``auto`` (detect per line), ``en`` or ``de``.

    Output order and count equal the input's (an empty line scores neutral; bytes that are not
    valid in the input encoding become U+FFFD). Returns the exit status.

    >>> import io
    >>> from monitor.enrich.sentiment import LexiconScorer
    >>> out = io.StringIO()
    >>> lines = io.StringIO("I love it\\n\\nawful, broken again\\n")
    >>> run_sentiment("en", lines, out, scorer_factory=LexiconScorer)
    0
    >>> out.getvalue().splitlines()
    ['positive\\t0.4621', 'neutral\\t0.0000', 'negative\\t-0.7616']
    """
    if isinstance(stdin, io.TextIOWrapper) and stdin.errors == "strict":
        # Under a strict UTF-8 locale one stray byte would abort the whole run mid-output.
        stdin.reconfigure(errors="replace")
    config = EnrichmentConfig()
    scorer = scorer_factory() if scorer_factory is not None else make_scorer(config)
    detector = LanguageDetector(config.languages, config.language_boost) if lang == "auto" else None
    batch: list[str] = []

    def flush() -> None:
        langs = detector.detect_batch(batch) if detector is not None else [lang] * len(batch)
        for s in scorer.score_batch(batch, langs):
            # + 0.0: a score that rounds to zero from below prints 0.0000, not -0.0000
            stdout.write(f"{s.label}\t{round(s.score, 4) + 0.0:.4f}\n")
        batch.clear()

    for line in stdin:
        batch.append(line.rstrip("\r\n"))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    stdout.flush()
    return 0
