"""The Alertmanager notifier against a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerting.notification import Notification
from alerting.notifiers import build_notifiers
from monitor.clock import SystemClock
from monitor.config.receivers import DeliveryConfig

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed"),
]

CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
receivers:
  - name: blackhole
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    assert BINARY is not None
    (tmp_path / "am.yml").write_text(CONFIG)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        BINARY, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("alertmanager did not become ready")
        yield url
    finally:
        proc.terminate()
        await proc.wait()


async def active(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/v2/alerts") as r:
        assert r.status == 200
        alerts: list[dict[str, Any]] = await r.json()
    return [a for a in alerts if a["status"]["state"] == "active"]


async def test_real_alertmanager_accepts_firing_and_resolved(alertmanager: str) -> None:
    clock = SystemClock()
    inc = {"id": "inc-1", "topic": "acme", "severity": 2, "score": 0.9, "opened_at": clock.now()}
    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "am", "type": "alertmanager", "url": alertmanager}]}
    )
    async with aiohttp.ClientSession() as s:
        am = build_notifiers(cfg.receivers, s, env={}, clock=clock)["am"]
        await am.send(Notification("n1", "am", "trigger", "acme/volume", inc, clock.now()))
        alerts = await active(s, alertmanager)
        assert len(alerts) == 1
        assert alerts[0]["labels"] == {
            "alertname": "CrisiswatchIncident", "dedup_key": "acme/volume", "topic": "acme",
            "severity": "error"}  # fmt: skip
        assert alerts[0]["annotations"]["summary"] == "Crisis on acme (SEV2, score 0.90)"
        await am.send(Notification("n2", "am", "resolve", "acme/volume", inc, clock.now()))
        for _ in range(50):
            if not await active(s, alertmanager):
                break
            await asyncio.sleep(0.1)
        assert await active(s, alertmanager) == []


async def test_severity_easing_off_keeps_one_alert_that_the_resolve_closes(
    alertmanager: str,
) -> None:
    # Labels are the alert's identity in Alertmanager: a SEV2 crisis that eased to SEV3 before
    # it was acknowledged must not turn into a second (newly firing) alert, and the resolve
    # must close the one that fired.
    clock = SystemClock()
    opened = {"id": "inc-2", "topic": "acme", "severity": 2, "peak_severity": 2, "score": 0.9,
              "opened_at": clock.now()}  # fmt: skip
    eased = {**opened, "severity": 3, "score": 0.75}
    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "am", "type": "alertmanager", "url": alertmanager}]}
    )
    async with aiohttp.ClientSession() as s:
        am = build_notifiers(cfg.receivers, s, env={}, clock=clock)["am"]
        await am.send(Notification("n1", "am", "trigger", "acme/sentiment", opened, clock.now()))
        await am.send(Notification("n2", "am", "acknowledge", "acme/sentiment", eased, clock.now()))
        alerts = await active(s, alertmanager)
        assert [a["labels"]["severity"] for a in alerts] == ["error"]
        assert alerts[0]["annotations"]["acknowledged"] == "true"
        await am.send(Notification("n3", "am", "resolve", "acme/sentiment", eased, clock.now()))
        for _ in range(50):
            if not await active(s, alertmanager):
                break
            await asyncio.sleep(0.1)
        assert await active(s, alertmanager) == []
