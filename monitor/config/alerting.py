"""Config of incidents and escalation (owned by alerting/)."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Section


class AlertingConfig(Section):
    resolve_after_seconds: float = Field(default=600.0, gt=0)
