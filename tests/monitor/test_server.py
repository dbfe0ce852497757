"""The kernel's HTTP surface: who may list incidents, and what the list's query accepts."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from alerting.api import Principal, TokenBook, require_reader
from monitor.server import AccessLog, build_web_app

Client = TestClient[web.Request, web.Application]
TOKENS = TokenBook({"view-token": Principal("wall", frozenset({"viewer"}))})


async def health() -> dict[str, Any]:
    return {"ok": True}


async def incidents(open_only: bool, limit: int) -> list[dict[str, Any]]:
    return [{"id": f"inc-{i}", "open_only": open_only} for i in range(limit)]


async def client_for(tokens: TokenBook) -> Client:
    app = build_web_app(
        registry=CollectorRegistry(),
        health=health,
        incidents=incidents,
        may_read=functools.partial(require_reader, tokens),
    )
    return TestClient(TestServer(app))


@pytest.fixture
async def guarded() -> AsyncIterator[Client]:
    async with await client_for(TOKENS) as client:
        yield client


async def test_the_incident_list_needs_a_token_once_tokens_are_configured(
    guarded: Client,
) -> None:
    r = await guarded.get("/api/v1/incidents")
    assert r.status == 401 and await r.json() == {"error": "missing or unknown bearer token"}
    r = await guarded.get("/api/v1/incidents", headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    r = await guarded.get(
        "/api/v1/incidents?limit=2", headers={"Authorization": "Bearer view-token"}
    )
    assert r.status == 200 and len((await r.json())["incidents"]) == 2
    assert (await guarded.get("/healthz")).status == 200  # probes stay open


async def test_without_tokens_the_list_is_open_like_the_wall() -> None:
    async with await client_for(TokenBook({})) as client:
        r = await client.get("/api/v1/incidents?state=open&limit=1")
        assert r.status == 200 and (await r.json())["incidents"] == [
            {"id": "inc-0", "open_only": True}
        ]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("limit=0", "limit: expected an integer from 1 to 1000 (got '0')"),
        ("limit=-1", "limit: expected an integer from 1 to 1000 (got '-1')"),
        ("limit=1001", "limit: expected an integer from 1 to 1000 (got '1001')"),
        ("limit=abc", "limit: expected an integer from 1 to 1000 (got 'abc')"),
        ("state=bogus", "state: expected open or all (got 'bogus')"),
    ],
)
async def test_a_bad_list_query_is_a_400_naming_the_value(query: str, error: str) -> None:
    async with await client_for(TokenBook({})) as client:
        r = await client.get(f"/api/v1/incidents?{query}")
        assert r.status == 400 and await r.json() == {"error": error}


async def test_the_access_log_never_holds_a_token(caplog: pytest.LogCaptureFixture) -> None:
    app = build_web_app(registry=CollectorRegistry(), health=health, incidents=incidents)
    runner = web.AppRunner(app, access_log_class=AccessLog)  # as App.run serves it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/healthz?token=s3cret&x=1"
                async with http.get(url, headers={"Referer": "http://wall/?token=s3cret"}) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "aiohttp.access"]
    assert len(lines) == 1 and '"GET /healthz?x=1" 200' in lines[0]
    assert "s3cret" not in caplog.text
