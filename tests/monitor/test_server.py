"""The kernel's HTTP surface: who may list incidents, and what the list's query accepts."""

from __future__ import annotations

import asyncio
import contextlib
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
from monitor.server import ROUTINE, AccessLog, OutOfFilesInShort, build_web_app

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
        # int() forgives these: a limit is digits, nothing else (QA)
        ("limit=%20500%20", "limit: expected an integer from 1 to 1000 (got ' 500 ')"),
        ("limit=%2B5", "limit: expected an integer from 1 to 1000 (got '+5')"),
        ("limit=1_0", "limit: expected an integer from 1 to 1000 (got '1_0')"),
        ("limit=%D9%A5", "limit: expected an integer from 1 to 1000 (got '٥')"),
        ("state=bogus", "state: expected open or all (got 'bogus')"),
    ],
)
async def test_a_bad_list_query_is_a_400_naming_the_value(query: str, error: str) -> None:
    async with await client_for(TokenBook({})) as client:
        r = await client.get(f"/api/v1/incidents?{query}")
        assert r.status == 400 and await r.json() == {"error": error}


async def sick() -> dict[str, Any]:
    return {"ok": False, "problems": ["source mqtt is down"]}


async def test_livez_answers_while_healthz_reports_troubles_a_restart_cannot_mend() -> None:
    """/healthz as a liveness probe restarted the service over a broker outage, and each
    restart lost what was held in memory (QA)."""
    app = build_web_app(registry=CollectorRegistry(), health=sick, incidents=incidents)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 503
        r = await client.get("/livez")
        assert r.status == 200 and await r.json() == {"ok": True}


async def accepted_push(request: web.Request) -> web.Response:
    request[ROUTINE] = True
    return web.json_response({"accepted": 1}, status=202 if request.query.get("ok") else 400)


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[int]:
    """The service's web app on a free port, with its access log, as App.run serves it."""
    app = build_web_app(
        registry=CollectorRegistry(),
        health=health,
        incidents=incidents,
        routes=[web.post("/push", accepted_push)],
    )
    runner = web.AppRunner(app, access_log_class=AccessLog)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_the_access_log_never_holds_a_token(caplog: pytest.LogCaptureFixture) -> None:
    async with served() as port:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as http:
                for path, status in (
                    ("/healthz", 200),
                    ("/api/v1/nope", 404),
                    ("/act/s3cret", 404),  # a one-click link's path is its capability
                ):
                    # Meta's handshake sends its verify token in the query (collectors QA)
                    secrets = "token=s3cret&hub.verify_token=s3cret&access_key=s3cret"
                    url = f"http://127.0.0.1:{port}{path}?{secrets}&x=1"
                    ref = {"Referer": "http://wall/?token=s3cret"}
                    async with http.get(url, headers=ref) as r:
                        assert r.status == status
    lines = [
        (rec.levelname, rec.getMessage()) for rec in caplog.records if rec.name == "aiohttp.access"
    ]
    assert [level for level, _ in lines] == ["DEBUG", "INFO", "INFO"]  # a scrape is no news
    assert '"GET /healthz?x=1" 200' in lines[0][1] and '"GET /api/v1/nope?x=1" 404' in lines[1][1]
    assert '"GET /act/..." 404' in lines[2][1]
    assert "s3cret" not in caplog.text


async def routes_ok(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def small_body_app(route: web.RouteDef) -> web.Application:
    """The service's app with one extra route, taking bodies of at most 100 bytes."""
    return build_web_app(
        registry=CollectorRegistry(),
        health=health,
        incidents=incidents,
        routes=[route],
        max_body_bytes=100,
    )


async def test_api_errors_are_json_and_the_wall_keeps_its_plain_ones() -> None:
    app = small_body_app(web.post("/api/v1/thing", routes_ok))
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/api/v1/nope")
        assert r.status == 404 and await r.json() == {"error": "Not Found"}
        r = await client.post("/api/v1/incidents")
        assert r.status == 405 and r.headers["Allow"] == "GET,HEAD"
        assert await r.json() == {"error": "Method Not Allowed"}
        r = await client.get("/api/v1/thing")
        assert r.status == 405 and r.content_type == "application/json"
        r = await client.post("/api/v1/thing", data=b"x" * 200)
        assert r.status == 200  # the handler never read its body
        r = await client.get("/nope")  # the wall's paths: aiohttp's own answer
        assert r.status == 404 and r.content_type == "text/plain"


async def broken(request: web.Request) -> web.Response:
    raise KeyError("a bug")


async def test_a_bug_under_the_api_is_a_json_500_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = small_body_app(web.get("/api/v1/broken", broken))
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR):
            r = await client.get("/api/v1/broken?token=view-secret")
            assert r.status == 500 and await r.json() == {"error": "internal error (logged)"}
            r = await client.get("/broken")  # the wall's paths: aiohttp's own answer
            assert r.status == 500 and r.content_type == "text/plain"
    ours = [rec for rec in caplog.records if "unhandled error" in rec.getMessage()]
    assert len(ours) == 1 and ours[0].exc_info is not None
    assert "'/api/v1/broken'" in ours[0].getMessage()
    assert "view-secret" not in caplog.text


async def big_body(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


async def test_an_api_body_over_the_limit_is_a_json_413() -> None:
    app = small_body_app(web.post("/api/v1/big", big_body))
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/api/v1/big", data=b"x" * 200)
        assert r.status == 413
        assert (await r.json())["error"].startswith("Maximum request body size 100 exceeded")


@pytest.mark.parametrize(
    "request_head",
    [
        f"GET /ws?token=view-secret&pad={'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer view-secret{'a' * 9000}\r\n\r\n",
    ],
    ids=["url", "header"],
)
async def test_an_over_long_request_is_one_short_warning_without_the_token(
    request_head: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with served() as port:
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_head.encode())
            await writer.drain()
            assert (await reader.readline()).split()[1] == b"400"
            writer.close()
            await writer.wait_closed()
    assert "view-secret" not in caplog.text and "aaaa" not in caplog.text
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]
    [warning] = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "Error handling request from 127.0.0.1: LineTooLong (answered 400)"
    )


async def test_an_accepted_push_is_logged_at_debug_a_refused_one_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pusher sending one mention per request logged an access line per mention (QA)."""
    async with served() as port, aiohttp.ClientSession() as http:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.access"):
            for query in ("?ok=1", ""):
                async with http.post(f"http://127.0.0.1:{port}/push{query}") as r:
                    assert r.status in (202, 400)
    levels = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "aiohttp.access"]
    assert [lv for lv, _ in levels] == ["DEBUG", "INFO"] and '" 400 ' in levels[1][1]


def test_running_out_of_file_descriptors_is_said_once_a_minute_without_traceback() -> None:
    """asyncio logged the failed accept with its traceback on every try: 313,687 lines, 139 MB
    in two minutes of a connection flood (collectors QA, fourteenth session)."""
    now = [0.0]
    flt = OutOfFilesInShort(clock=lambda: now[0])
    out_of_files = OSError(24, "Too many open files")

    def record() -> logging.LogRecord:
        return logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, "socket.accept() out of system resource",
            None, (OSError, out_of_files, None),
        )  # fmt: skip

    passed = []
    for t in range(0, 130, 1):  # one failed accept a second for 130 s
        now[0] = float(t)
        r = record()
        if flt.filter(r):
            passed.append(r)
    assert len(passed) == 3  # at 0, 60 and 120 s
    assert passed[0].exc_info is None and passed[1].getMessage() == (
        "socket.accept() out of system resource: [Errno 24] Too many open files (61 times so far)"
    )
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "boom", None, None)
    assert flt.filter(other)  # anything else untouched
