"""The ``log`` receiver: one line per notification in the service log, never fails.

It is the demo's pager (``make run`` needs no external service), and a way to try routes
and escalation policies before a real receiver exists. Lines go to the ``crisiswatch.pages``
logger at WARNING, so they show with the default log level.

>>> import asyncio
>>> from alerting.notification import Notification
>>> n = Notification(id="inc-1/1", receiver="console", action="trigger", dedup_key="inc-1",
...     incident={"id": "inc-1", "topic": "acme", "severity": 2, "score": 0.91},
...     recipient="ana", created_at=0.0)
>>> page_line(n)
'trigger to ana via console: Crisis on acme (SEV2, score 0.91) [inc-1]'
"""

from __future__ import annotations

import logging

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView

log = logging.getLogger("crisiswatch.pages")


def page_line(n: Notification) -> str:
    """What the log says about one notification."""
    view = IncidentView.of(n.incident)
    return f"{n.action} to {n.recipient or 'everyone'} via {n.receiver}: {view.summary} [{view.id}]"


class LogNotifier:
    # one message per person: the outbox orders them per recipient, not per incident
    per_recipient = True

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"LogNotifier({self.name!r})"

    async def send(self, n: Notification) -> None:
        log.warning("%s", page_line(n))
