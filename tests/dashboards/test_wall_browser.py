"""The wall in a real browser (Debian chromium via Playwright) against the real App."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yaml

from .conftest import RESPONDER_TOKEN, ROOT, free_port, wall_config_doc

pytestmark = pytest.mark.browser

SPEED = 120.0
# Every run saves the wall to tests/out/; CW_UPDATE_SCREENSHOT=1 also refreshes the README's
# picture (docs/screenshot.png), so a plain `make test` leaves the checkout clean.
SCREENSHOT = (
    ROOT / "docs" / "screenshot.png"
    if os.environ.get("CW_UPDATE_SCREENSHOT")
    else ROOT / "tests" / "out" / "wall.png"
)


@contextlib.asynccontextmanager
async def wall_page(browser: Any, url: str) -> AsyncIterator[Any]:
    """A page on the wall, closed before the service stops (an open wall delays shutdown)."""
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        yield await open_wall(context, url)
    finally:
        await context.close()


async def open_wall(browser: Any, url: str) -> Any:
    """`browser` is a Browser or a BrowserContext (both make pages)."""
    page = await browser.new_page()
    await page.set_viewport_size({"width": 1920, "height": 1080})
    page.problems = []
    page.on(
        "console",
        lambda m: (
            page.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    await page.goto(url)
    await page.wait_for_selector('#conn[data-state="live"]', timeout=10_000)
    return page


async def stats(page: Any) -> dict[str, int]:
    result: dict[str, int] = await page.evaluate("() => ({...window.crisiswatch.stats})")
    return result


async def test_wall_loads_without_errors_updates_live_and_fits_1080p_and_4k(
    browser: Any, wall_app: Any
) -> None:
    async with wall_app(SPEED) as run, wall_page(browser, run.url + "/") as page:
        # a live update: series deltas arrive and change what a tile shows
        before = await stats(page)
        await page.wait_for_function(
            "n => window.crisiswatch.stats.deltas > n", arg=before["deltas"] + 3, timeout=10_000
        )
        first = await page.text_content("#tile-acme .score-v")
        await page.wait_for_function(
            "s => document.querySelector('#tile-acme .score-v').textContent !== s",
            arg=first,
            timeout=10_000,
        )
        assert await page.locator(".tile").count() == len(run.app.config.topics)
        assert await page.text_content("#sources li") is not None
        for w, h in ((1920, 1080), (3840, 2160)):
            await page.set_viewport_size({"width": w, "height": h})
            await asyncio.sleep(0.3)
            dims = await page.evaluate(
                "() => { const d = document.documentElement; return [d.scrollWidth, d.scrollHeight,"
                " innerWidth, innerHeight, parseFloat(getComputedStyle(d).fontSize)] }"
            )
            assert dims[0] <= dims[2] and dims[1] <= dims[3], f"scrolls at {w}x{h}: {dims}"
            assert dims[4] >= w / 110, "text must scale up on big screens"
        assert page.problems == []


async def test_injected_crisis_shows_within_5s_flashes_and_ack_reaches_the_api(
    browser: Any, wall_app: Any
) -> None:
    loop = asyncio.get_running_loop()
    async with (
        wall_app(SPEED) as run,
        aiohttp.ClientSession() as http,
        wall_page(browser, run.url + "/") as page,
    ):
        app = run.app
        now = app.clock.now()
        verdict = SimpleNamespace(
            series="initech",
            t=now - 60,
            score=0.97,
            severity=1,
            onset="open",
            active=True,
            resolved=False,
            explanation={"fired": ["volume"], "observed": 400, "expected": 20},
        )
        events = await app.incidents.on_verdict(verdict)  # published to the hub on the way
        opened_at = loop.time()
        [opened] = [e.incident for e in events if e.kind == "opened"]
        row = page.locator(f'li[data-id="{opened.id}"]')
        await row.wait_for(state="visible", timeout=5_000)
        assert loop.time() - opened_at <= 5.0
        assert await row.get_attribute("data-state") == "triggered"
        alarm = page.locator("#alarm")
        assert await alarm.is_visible()
        assert "SEV1" in (await alarm.text_content() or "")
        await page.wait_for_timeout(1500)  # let tiles fill for the screenshot
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), animations="disabled")

        # a wrong token is refused and nothing changes
        await row.locator("button.ack").click()
        await page.fill("#login-token", "not-a-token")
        await page.click('#login-form button[type="submit"]')
        await page.wait_for_selector("#toast:not([hidden])", timeout=5_000)
        assert "rejected" in (await page.text_content("#toast") or "")
        assert app.incidents.book.get(opened.id).state == "triggered"

        # a responder logs in on the wall and acks; the API now reports it acknowledged
        await row.locator("button.ack").click()
        await page.fill("#login-token", RESPONDER_TOKEN)
        await page.click('#login-form button[type="submit"]')
        headers = {"Authorization": f"Bearer {RESPONDER_TOKEN}"}
        for _ in range(50):
            async with http.get(f"{run.url}/api/v1/incidents/{opened.id}", headers=headers) as r:
                assert r.status == 200
                inc = (await r.json())["incident"]
            if inc["state"] == "acknowledged":
                break
            await asyncio.sleep(0.1)
        assert inc["state"] == "acknowledged" and inc["acked_by"] == "ana"
        await page.wait_for_selector(
            f'li[data-id="{opened.id}"][data-state="acknowledged"]', timeout=5_000
        )
        assert not await page.locator("#alarm").is_visible() or opened.id not in (
            await page.evaluate("() => [...window.crisiswatch.S.alarms]")
        )
        # the one error is the browser logging the 401 of the wrong token we sent
        unexpected = [p for p in page.problems if "401 (Unauthorized)" not in p]
        assert unexpected == [], unexpected


def start_service(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            "--config",
            str(config),
            "--speed",
            str(SPEED),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            assert proc.poll() is None, "service exited"
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status in (200, 503):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("service did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def test_wall_recovers_after_a_server_restart(browser: Any, tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "wall.yaml"
    cfg.write_text(yaml.safe_dump(wall_config_doc(tmp_path, port)))
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    proc = start_service(cfg, port, log)
    try:
        await wait_healthy(url, proc)
        page = await open_wall(browser, url + "/")  # closed with the browser fixture
        await page.wait_for_function("() => window.crisiswatch.stats.deltas > 0", timeout=10_000)
        stop(proc)
        await page.wait_for_selector('#conn:not([data-state="live"])', timeout=10_000)
        assert await page.evaluate("() => document.body.classList.contains('offline')")
        proc = start_service(cfg, port, log)
        await wait_healthy(url, proc)
        await page.wait_for_selector('#conn[data-state="live"]', timeout=20_000)
        after = await stats(page)
        assert after["connects"] >= 2 and after["snapshots"] >= 2
        await page.wait_for_function(
            "n => window.crisiswatch.stats.deltas > n", arg=after["deltas"], timeout=10_000
        )
        assert not await page.evaluate("() => document.body.classList.contains('offline')")
        # the reconnect itself logs a failed websocket in the console; nothing else may
        unexpected = [
            p for p in page.problems if "WebSocket" not in p and "ERR_CONNECTION" not in p
        ]
        assert unexpected == [], unexpected
    finally:
        stop(proc)
