"""Who may watch the wall of a composed app: any configured API token closes it (QA)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.app import App
from monitor.clock import FakeClock
from monitor.storage import open_store
from tests.conftest import demo_config


async def test_a_responder_token_alone_closes_the_wall_to_anonymous_screens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no viewer-role token configured, `/` and `/ws` were open to anyone while the API
    refused anonymous reads (QA: ws_open_leak.py with qa_resp_only.yaml)."""
    monkeypatch.setenv("CW_TEST_RESP", "resp-secret")
    tokens = [{"name": "rita", "token_env": "CW_TEST_RESP", "roles": ["responder"]}]
    cfg = demo_config(
        tmp_path, sources={"demo": {"enabled": False}}, delivery={"api": {"tokens": tokens}}
    )
    store = await open_store(cfg.storage.url)
    app = await App.open(cfg, FakeClock(1_768_384_800.0), store)
    server = TestServer(app.web)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/")) as r:
                assert r.status == 401
            async with http.get(server.make_url("/?token=resp-secret")) as r:
                assert r.status == 200
            async with http.ws_connect(server.make_url("/ws")) as ws:
                first = await ws.receive_json(timeout=5)
                assert first == {"v": 1, "type": "error", "code": "unauthorized"}
            async with http.ws_connect(server.make_url("/ws?token=resp-secret")) as ws:
                assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
            # even with the token: not from a page of another site
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(
                    server.make_url("/ws?token=resp-secret"),
                    headers={"Origin": "https://evil.example"},
                )
    finally:
        await server.close()
        await app.close()
        await store.close()
