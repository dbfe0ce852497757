"""Test doubles shared by the alerting tests and the alerting benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class V:
    """A detection verdict (satisfies `monitor.pipeline.VerdictLike`)."""

    series: str
    t: float
    score: float
    severity: int | None = 3
    onset: str | None = None
    active: bool = True
    resolved: bool = False
    explanation: dict[str, Any] = field(default_factory=lambda: {"fired": ["volume"]})
