"""Shared fixtures: a real App (in-process, real HTTP on a free port, SQLite in tmp)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.app import App
from monitor.clock import ScaledClock, SystemClock
from monitor.config import Config, load_config, parse_config
from monitor.storage import open_store

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    app: App
    url: str
    stop: asyncio.Event


def demo_config(tmp: Path, **overrides: Any) -> Config:
    """config/default.yaml with a temp store, a free port and section overrides merged in."""
    base = load_config(ROOT / "config" / "default.yaml").model_dump(
        mode="json", by_alias=True, exclude_unset=True
    )
    base["storage"]["url"] = f"sqlite:///{tmp}/cw.db"
    base["server"]["port"] = 0
    for section, values in overrides.items():
        base.setdefault(section, {})
        for k, v in values.items():
            if isinstance(v, dict) and isinstance(base[section].get(k), dict):
                base[section][k].update(v)
            else:
                base[section][k] = v
    return parse_config(base)


def http_only_config(tmp: Path, token_env: str) -> Config:
    """The demo config with the demo off and HTTP ingest on, its token read from `token_env`."""
    return demo_config(
        tmp, sources={"demo": {"enabled": False}, "http": {"enabled": True, "token_env": token_env}}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_doc(tmp: Path, port: int = 0) -> dict[str, Any]:
    """config/default.yaml as a plain document with a temp store and the given port, for
    running the service as a subprocess (`crisiswatch run --config <file>`)."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    doc["storage"] = {"url": f"sqlite:///{tmp}/cw.db"}
    doc["server"] = {"host": "127.0.0.1", "port": port}
    return doc


@contextlib.asynccontextmanager
async def running_app(config: Config, speed: float) -> AsyncIterator[Running]:
    clock = ScaledClock(SystemClock(), speed)
    store = await open_store(config.storage.url)
    app = await App.open(config, clock, store)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        for _ in range(500):
            if app.bound_port or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield Running(app, f"http://127.0.0.1:{app.bound_port}", stop)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await store.close()


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., contextlib.AbstractAsyncContextManager[Running]]:
    def make(
        speed: float = 60.0, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[Running]:
        return running_app(demo_config(tmp_path, **overrides), speed)

    return make
