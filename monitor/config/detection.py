"""Config of the detector stack (owned by detectors/)."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Section


class DetectionConfig(Section):
    threshold: float = Field(default=0.8, gt=0, le=1)
    calm_buckets: int = Field(default=10, ge=1)
