"""Driver for the kill -9 test: the real Outbox + SQLite store + webhook notifier, in a process.

    python tests/alerting/outbox_driver.py produce DB URL COUNT   # enqueue COUNT while delivering
    python tests/alerting/outbox_driver.py drain DB URL           # deliver what is pending, exit

``produce`` prints ``enqueued <id>`` once the notification is durable; the test kills the
process at an arbitrary point and expects every printed id to reach the receiver after a
``drain``.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from prometheus_client import CollectorRegistry

from alerting.notification import Notification
from alerting.notifiers import build_notifiers
from alerting.outbox import Outbox
from monitor.clock import SystemClock
from monitor.config.receivers import DeliveryConfig, OutboxConfig
from monitor.storage import open_store


async def main(mode: str, db: str, url: str, count: int) -> int:
    clock = SystemClock()
    store = await open_store(f"sqlite:///{db}")
    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "hook", "type": "webhook", "url": url, "secret_env": "S"}]}
    )
    policy = OutboxConfig(base_delay_seconds=0.05, max_delay_seconds=0.5, poll_seconds=0.05)
    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(cfg.receivers, session, env={"S": "s"}, clock=clock)
        outbox = Outbox(store, notifiers, clock, CollectorRegistry(), config=policy)
        runner = asyncio.create_task(outbox.run())
        if mode == "produce":
            for i in range(count):
                n = Notification(f"n{i}", "hook", "trigger", f"k{i % 7}", {"id": f"i{i}"},
                                 clock.now())  # fmt: skip
                await outbox.enqueue(n)
                print(f"enqueued {n.id}", flush=True)
                await asyncio.sleep(0.01)
        while True:  # drain
            await asyncio.sleep(0.05)
            h = outbox.health()
            if h["last_scan_age"] is not None and h["pending"] == 0 and h["in_flight"] == 0:
                stats = await store.outbox_stats(clock.now())
                if stats["pending"] == 0:
                    break
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    print("drained", flush=True)
    await store.close()
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(asyncio.run(main(args[0], args[1], args[2], int(args[3]) if len(args) > 3 else 0)))
