"""The one value that crosses from escalation (deciding who to tell) to delivery (telling them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["trigger", "acknowledge", "resolve"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver, persisted in the outbox before it is sent.

    `id` is unique per notification and doubles as the idempotency key; `dedup_key` groups all
    notifications of one incident (PagerDuty dedup_key, Alertmanager labels).
    """

    id: str
    receiver: str  # name of a configured receiver (a notifier instance)
    action: Action
    dedup_key: str
    incident: dict[str, Any]  # JSON-able incident snapshot, explanation included
    created_at: float
    recipient: str | None = None  # the on-call user being paged, when a level targets people
    links: dict[str, str] = field(default_factory=dict)  # e.g. {"ack": signed one-click URL}
    # a trigger to a receiver that was sent this incident's acknowledge before (an ack timeout,
    # a snooze ending, a severity jump): PagerDuty must open a new incident to ring anyone
    reopen: bool = False
