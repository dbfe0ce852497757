"""Config of enrichment (owned by monitor/enrich)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import Section


class EnrichmentConfig(Section):
    """How mentions are enriched.

    ``sentiment``: ``linear`` is the trained model shipped in the package, ``baseline`` the
    hand-written lexicon. ``languages`` are boosted by language ID on short texts and are the
    languages the sentiment model was trained for. ``trust_source_lang`` keeps a language the
    collector already knew instead of re-detecting it.
    """

    sentiment: Literal["baseline", "linear"] = "linear"
    languages: list[str] = Field(default=["en", "de"], min_length=1)
    language_boost: float = Field(default=4.0, ge=1.0, le=100.0)
    trust_source_lang: bool = True
    batch_size: int = Field(default=256, ge=1)
    max_terms: int = Field(default=32, ge=0, le=1000)
