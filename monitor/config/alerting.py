"""Config of incidents and escalation (owned by alerting/)."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Section


class IncidentSettings(Section):
    """How incidents open, wait for a human and close."""

    ack_timeout_seconds: float = Field(default=1800.0, ge=0)
    """An acknowledged incident re-triggers when nobody resolves it for this long (0 = never)."""
    auto_resolve_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Resolve when no active verdict arrived for this long (a safety net behind detection)."""
    keep_resolved_seconds: float = Field(default=86_400.0, ge=0)
    """Resolved incidents stay in the book (and on the wall) this long."""
    repage_on_severity_jump: bool = True
    severity_thresholds: tuple[float, float, float] = (0.95, 0.85, 0.7)
    """Used only when a verdict carries no severity; same meaning as in ``detection``."""
    max_timeline: int = Field(default=1000, ge=10)


class AlertingConfig(Section):
    incidents: IncidentSettings = IncidentSettings()
