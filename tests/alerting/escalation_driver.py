"""Driver for the mid-escalation kill -9 test: IncidentService + Outbox + SQLite + webhook.

    python tests/alerting/escalation_driver.py open DB URL DELAY    # open a crisis, escalate
    python tests/alerting/escalation_driver.py resume DB URL DELAY  # restart: resume only

Policy: level 1 pages user ``ana``, level 2 pages user ``lead`` DELAY seconds later; both reach
the webhook receiver ``hook``. Escalation state is persisted in the store's kv under
``alerting.state`` after every change, exactly as the service must do it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from alerting.notifiers import build_notifiers
from alerting.outbox import Outbox
from alerting.service import IncidentService
from monitor.clock import SystemClock
from monitor.config.alerting import AlertingConfig
from monitor.config.receivers import DeliveryConfig, OutboxConfig
from monitor.storage import open_store

STATE_KEY = "alerting.state"


@dataclass(frozen=True)
class Verdict:
    series: str
    t: float
    score: float = 0.97
    severity: int | None = 1
    onset: str | None = "open"
    active: bool = True
    resolved: bool = False
    explanation: dict[str, Any] = field(default_factory=dict)


async def main(mode: str, db: str, url: str, delay: float) -> None:
    clock = SystemClock()
    store = await open_store(f"sqlite:///{db}")
    alerting = AlertingConfig.model_validate(
        {
            "users": [{"name": u, "receivers": ["hook"]} for u in ("ana", "lead")],
            "teams": [],
            "schedules": [],
            "inhibit_rules": [],
            "policies": [{"name": "p", "repeat": 0, "levels": [
                {"targets": ["user:ana"], "delay_seconds": delay},
                {"targets": ["user:lead"], "delay_seconds": delay}]}],
            "route": {"policy": "p"},
        }
    )  # fmt: skip
    delivery = DeliveryConfig.model_validate(
        {"receivers": [{"name": "hook", "type": "webhook", "url": url, "secret_env": "S"}]}
    )
    raw = await store.get(STATE_KEY)
    state = json.loads(raw) if raw else None

    async def persist(st: dict[str, Any]) -> None:
        await store.put(STATE_KEY, json.dumps(st).encode())

    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(delivery.receivers, session, env={"S": "s"}, clock=clock)
        outbox = Outbox(
            store, notifiers, clock, CollectorRegistry(),
            config=OutboxConfig(base_delay_seconds=0.05, max_delay_seconds=0.5, poll_seconds=0.1),
        )  # fmt: skip
        service = IncidentService(
            alerting, clock, outbox.enqueue, state=state, persist=persist, tick_seconds=0.5
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(outbox.run())
            tg.create_task(service.run())
            if mode == "open":
                await service.on_verdict(Verdict("acme/volume", clock.now()))
            print("ready", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], float(a[3])))
