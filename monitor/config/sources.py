"""Config of the collectors (owned by monitor/collectors)."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Section


class DemoSourceConfig(Section):
    enabled: bool = False
    seed: int = 7
    brands: list[str] = ["acme", "globex", "initech"]
    speed: float = Field(default=1.0, gt=0)
    base_rate_per_minute: float = Field(default=40.0, gt=0)
    first_crisis_after_seconds: float = Field(default=90.0, ge=0)
    crisis_every_seconds: float = Field(default=600.0, gt=0)
    crisis_duration_seconds: float = Field(default=240.0, gt=0)


class SourcesConfig(Section):
    demo: DemoSourceConfig = DemoSourceConfig()
