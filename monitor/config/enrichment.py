"""Config of enrichment (owned by monitor/enrich)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import Section


class EnrichmentConfig(Section):
    """How mentions are enriched: language, sentiment, content words."""

    sentiment: Literal["baseline", "linear"] = "linear"
    """`linear`: the trained model shipped in the package; `baseline`: the hand-written
    lexicon."""
    languages: list[str] = Field(default=["en", "de"], min_length=1)
    """Languages language ID prefers on short texts, and that the sentiment model knows."""
    language_boost: float = Field(default=4.0, ge=1.0, le=100.0)
    """How strongly those languages are preferred (a factor on their language-ID score)."""
    trust_source_lang: bool = True
    """Keep a language the collector already knew instead of detecting it again."""
    batch_size: int = Field(default=256, ge=1)
    """Mentions taken from the queue and scored together (larger: faster, burstier)."""
    max_terms: int = Field(default=32, ge=0, le=1000)
    """Content words of a mention counted for emerging terms (0: no term detection)."""
