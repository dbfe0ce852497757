"""Fixtures of the wall's browser and Prometheus tests: Debian chromium through Playwright, the
real App with a responder token, a config file for the service run as a subprocess."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import config_doc, free_port

__all__ = ["free_port", "wall_config_doc"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESPONDER_TOKEN = "responder-secret-ana"


def wall_config_doc(tmp: Path, port: int = 0) -> dict[str, Any]:
    """config/default.yaml with a temp store, a port and the lexicon (for a subprocess run)."""
    doc = config_doc(tmp, port)
    doc.setdefault("enrichment", {})["sentiment"] = "baseline"
    return doc


# The wall does not depend on which sentiment model runs; the lexicon loads instantly.
LEXICON: dict[str, Any] = {"enrichment": {"sentiment": "baseline"}}
TOKEN_ENV = "CW_WALL_TEST_TOKEN"
RESPONDER = {"name": "ana", "token_env": TOKEN_ENV, "roles": ["responder"]}


@pytest.fixture
def wall_app(
    app_factory: Callable[..., contextlib.AbstractAsyncContextManager[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[float], contextlib.AbstractAsyncContextManager[Any]]:
    """The real App (tests/conftest.py) with a responder token for the actions API."""
    monkeypatch.setenv(TOKEN_ENV, RESPONDER_TOKEN)

    def make(speed: float) -> contextlib.AbstractAsyncContextManager[Any]:
        return app_factory(speed=speed, delivery={"api": {"tokens": [RESPONDER]}}, **LEXICON)

    return make


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run `bash scripts/ensure-chromium.sh`")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


def have(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed: run `bash scripts/ensure-prometheus.sh`")
    return path
