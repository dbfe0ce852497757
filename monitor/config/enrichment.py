"""Config of enrichment (owned by monitor/enrich)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import Section


class EnrichmentConfig(Section):
    sentiment: Literal["baseline", "linear"] = "linear"
    languages: list[str] = ["en", "de"]
    batch_size: int = Field(default=256, ge=1)
