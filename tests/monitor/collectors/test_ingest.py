"""POST /api/v1/mentions: formats, auth, limits, per-item results, and fuzzed bad input."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.collectors.common import Secret
from monitor.collectors.ingest import MentionIngest
from monitor.config.sources import HttpIngestConfig
from monitor.decode import REASONS, decode_json_bytes
from monitor.errors import DecodeError

from .conftest import Harness, make_harness

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def item(i: int, **patch: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(i),
        "channel": "x",
        "text": f"acme {i}",
        "created_at": 1_714_564_800 + i,
        "author": {"id": "u", "handle": "@u"},
    }
    return {**base, **patch}


async def serve(
    h: Harness, cfg: HttpIngestConfig | None = None
) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.add_routes(
        MentionIngest(cfg or HttpIngestConfig(enabled=True), h.ctx, Secret(TOKEN)).routes()
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, TestClient[web.Request, web.Application]]]:
    h = make_harness()
    client = await serve(h, HttpIngestConfig(enabled=True, max_body_bytes=64 * 1024, max_items=500))
    yield h, client
    await client.close()


async def test_object_array_and_ndjson(env: tuple[Harness, Any]) -> None:
    h, client = env
    r = await client.post("/api/v1/mentions", json=item(1), headers=AUTH)
    assert r.status == 200
    assert (await r.json())["items"] == [{"index": 0, "status": "accepted", "id": "1"}]
    r = await client.post("/api/v1/mentions", json=[item(2), item(3)], headers=AUTH)
    assert (await r.json())["accepted"] == 2
    nd = "\n".join(json.dumps(item(i)) for i in (4, 5, 6)) + "\n"
    r = await client.post(
        "/api/v1/mentions", data=nd, headers={**AUTH, "Content-Type": "application/x-ndjson"}
    )
    assert (await r.json())["accepted"] == 3
    assert [m.id for m in h.submitted] == ["1", "2", "3", "4", "5", "6"]
    assert all(m.source == "http" for m in h.submitted)


async def test_a_bom_is_ignored_and_pretty_printed_bad_json_is_one_error(
    env: tuple[Harness, Any],
) -> None:
    """QA, tenth session: a body with a UTF-8 BOM was a 400 (NDJSON: its first item lost), and
    a pretty-printed object with a trailing comma came back as one error per line."""
    h, client = env
    bom = b"\xef\xbb\xbf"
    r = await client.post("/api/v1/mentions", data=bom + json.dumps(item(1)).encode(), headers=AUTH)
    assert r.status == 200 and (await r.json())["accepted"] == 1
    nd = bom + b"\n".join(json.dumps(item(i)).encode() for i in (2, 3))
    r = await client.post(
        "/api/v1/mentions", data=nd, headers={**AUTH, "Content-Type": "application/x-ndjson"}
    )
    assert (await r.json())["accepted"] == 2
    pretty = json.dumps(item(4), indent=2).replace('"text"', '"oops": 1,\n  "text"')[:-1] + ",}"
    r = await client.post(
        "/api/v1/mentions", data=pretty, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status == 400 and "malformed_json" in (await r.json())["error"]
    assert [m.id for m in h.submitted] == ["1", "2", "3"]
    assert h.letters.reasons == {"malformed_json": 1}


async def test_per_item_results_never_all_or_nothing(env: tuple[Harness, Any]) -> None:
    h, client = env
    body = [item(1), item(2, author="nobody"), item(1), {"nope": 1}, item(3, created_at="soon")]
    r = await client.post("/api/v1/mentions", json=body, headers=AUTH)
    assert r.status == 207
    out = await r.json()
    assert [i["status"] for i in out["items"]] == [
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
    ]
    reasons = [i.get("reason") for i in out["items"]]
    assert reasons == [None, "wrong_type", None, "unknown_field", "invalid_value"]
    assert (out["accepted"], out["duplicate"], out["rejected"]) == (1, 1, 3)
    assert [m.id for m in h.submitted] == ["1"]
    assert len(h.letters.items) == 3
    assert (
        h.metric("crisiswatch_collector_dead_letters_total", source="http", reason="wrong_type")
        == 1
    )


async def test_ndjson_with_a_broken_line_keeps_the_others(env: tuple[Harness, Any]) -> None:
    h, client = env
    nd = json.dumps(item(1)).encode() + b"\n{broken\n\xff\xfe\n" + json.dumps(item(2)).encode()
    r = await client.post("/api/v1/mentions", data=nd, headers=AUTH)  # no NDJSON content type
    out = await r.json()
    assert r.status == 207
    assert [i.get("reason") for i in out["items"]] == [None, "malformed_json", "invalid_utf8", None]
    assert h.letters.reasons == {"malformed_json": 1, "invalid_utf8": 1}


async def test_auth_and_limits(env: tuple[Harness, Any]) -> None:
    h, client = env
    assert (await client.post("/api/v1/mentions", json=item(1))).status == 401
    bad = {"Authorization": "Bearer wrong"}
    assert (await client.post("/api/v1/mentions", json=item(1), headers=bad)).status == 401
    assert h.metric("crisiswatch_collector_auth_failures_total", source="http", kind="token") == 2
    big = [item(i, text="x" * 1000) for i in range(100)]
    r = await client.post("/api/v1/mentions", json=big, headers=AUTH)
    assert r.status == 413
    many = [item(i) for i in range(501)]
    r = await client.post("/api/v1/mentions", data=json.dumps(many).replace(" ", ""), headers=AUTH)
    assert r.status == 413
    assert h.letters.reasons == {"oversize": 2}
    r = await client.post("/api/v1/mentions", data=b"{", headers=AUTH)
    assert r.status == 400
    assert h.submitted == []


async def test_missing_token_env_disables_the_endpoint() -> None:
    h = make_harness()
    app = web.Application()
    app.add_routes(MentionIngest(HttpIngestConfig(enabled=True), h.ctx, None).routes())
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/api/v1/mentions", json=item(1), headers=AUTH)
        assert r.status == 503
        assert "CRISISWATCH_INGEST_TOKEN" in (await r.json())["error"]


async def test_allowed_sources() -> None:
    h = make_harness()
    client = await serve(h, HttpIngestConfig(enabled=True, allowed_sources=["crm", "http"]))
    r = await client.post(
        "/api/v1/mentions", json=[item(1, source="crm"), item(2, source="spam")], headers=AUTH
    )
    assert [i.get("reason") for i in (await r.json())["items"]] == [None, "unknown_source"]
    await client.close()


junk = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=4),
    ),
    st.builds(
        lambda k, v: json.dumps(item(0, **{k: v})).encode(),
        st.sampled_from(["id", "text", "created_at", "author", "kind", "metrics", "lang"]),
        st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.floats()),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(junk, min_size=50, max_size=100))
def test_thousands_of_bad_payloads_are_dead_lettered_and_the_endpoint_lives(
    lines: list[bytes],
) -> None:
    async def run() -> None:
        h = make_harness()
        client = await serve(h)
        try:
            body = b"\n".join(lines) + b"\n" + json.dumps(item(999_999)).encode()
            r = await client.post(
                "/api/v1/mentions",
                data=body,
                headers={**AUTH, "Content-Type": "application/x-ndjson"},
            )
            assert r.status in (200, 207)
            out = await r.json()
            results = out["items"]
            assert results[-1]["status"] == "accepted"  # the good one after all the junk
            rejected = [x for x in results if x["status"] == "rejected"]
            assert len(rejected) == len(h.letters.items)
            assert all(x["reason"] in REASONS for x in rejected)
            assert len(results) == out["accepted"] + out["duplicate"] + out["rejected"]
            r2 = await client.post("/api/v1/mentions", json=item(1_000_000), headers=AUTH)
            assert r2.status == 200
        finally:
            await client.close()

    asyncio.run(run())


async def raw_request(port: int, head: bytes, body: bytes) -> int:
    """Status of a hand-written HTTP/1.1 request (for header bytes no client library sends)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_a_token_that_is_not_utf8_is_a_401_not_a_500(env: tuple[Harness, Any]) -> None:
    h, client = env
    head = b"POST /api/v1/mentions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
    assert await raw_request(client.port, head, json.dumps(item(1)).encode()) == 401
    assert h.metric("crisiswatch_collector_auth_failures_total", source="http", kind="token") == 1
    assert h.submitted == []


async def test_too_many_items_are_refused_without_reading_them_all(
    env: tuple[Harness, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 MiB of "0\n" is 4 million items: reading each before refusing the body held the event
    # loop (websockets, MQTT acks, the ticker) for seconds; past max_items the rest is moot
    import monitor.collectors.ingest as mod
    from monitor.decode import loads as real

    parsed = 0

    def counting(raw: bytes, *, max_bytes: int = 262144) -> object:
        nonlocal parsed
        parsed += 1
        return real(raw, max_bytes=max_bytes)

    monkeypatch.setattr(mod, "loads", counting)
    h, client = env
    body = b"0\n" * 20_000  # 40 kB, under the 64 KiB body limit of this fixture
    headers = {**AUTH, "Content-Type": "application/x-ndjson"}
    r = await client.post("/api/v1/mentions", data=body, headers=headers)
    assert r.status == 413
    assert parsed <= 501  # max_items + 1
    assert h.letters.reasons == {"oversize": 1} and h.submitted == []


async def test_a_backed_up_pipeline_sheds_requests_with_503_and_takes_nothing_of_them() -> None:
    # A slow pipeline and retrying clients: every request waiting in `submit` held its parsed
    # body, without limit. Past a few waiting requests the rest are refused whole, at once.
    h = make_harness()
    gate, waiting = asyncio.Event(), 0

    async def slow_submit(m: Any) -> None:
        nonlocal waiting
        waiting += 1
        await gate.wait()
        waiting -= 1
        h.submitted.append(m)

    h.ctx.submit = slow_submit
    app = web.Application()
    ingest = MentionIngest(HttpIngestConfig(enabled=True), h.ctx, Secret(TOKEN), max_waiting=2)
    app.add_routes(ingest.routes())
    async with TestClient(TestServer(app)) as client:

        async def post(body: Any, **headers: str) -> tuple[int, dict[str, Any], Any]:
            r = await client.post("/api/v1/mentions", json=body, headers={**AUTH, **headers})
            return r.status, dict(r.headers), await r.json()

        held = [asyncio.create_task(post(item(i))) for i in (1, 2)]
        while waiting < 2:
            await asyncio.sleep(0.01)
        shed = asyncio.create_task(post([item(3), item(2), {"nope": 1}]))
        while not shed.done() and waiting < 3:
            await asyncio.sleep(0.01)
        assert waiting == 2, "a third request went waiting in submit"
        status, headers, body = await shed
        assert status == 503 and int(headers["Retry-After"]) >= 1 and "error" in body
        assert h.metric("crisiswatch_collector_shed_requests_total", source="http") == 1
        gate.set()
        assert [s for s, _, _ in await asyncio.gather(*held)] == [200, 200]
        # nothing of the refused request was taken: no dead letter, no dedup entry
        assert h.letters.items == []
        status, _, body = await post([item(3), item(2), {"nope": 1}])
        assert status == 207
        assert [i["status"] for i in body["items"]] == ["accepted", "duplicate", "rejected"]
    assert sorted(m.id for m in h.submitted) == ["1", "2", "3"]


async def test_max_item_bytes_holds_for_every_body_format() -> None:
    # QA: a 400 KB mention (100,000 emoji, within the text limit) was accepted as an
    # application/json object or array, but refused as NDJSON or over MQTT
    big = item(1, text="\U0001f600" * 100_000)
    raw = json.dumps(big, ensure_ascii=False).encode()
    with pytest.raises(DecodeError) as e:
        decode_json_bytes(raw, max_bytes=256 * 1024)  # what MQTT does with it
    assert e.value.reason == "oversize"
    h = make_harness()
    client = await serve(h)  # max_item_bytes 256 KiB
    try:
        for body, ctype in (
            (raw, "application/json"),
            (b"[" + raw + b"]", "application/json"),
            (raw + b"\n", "application/x-ndjson"),
        ):
            r = await client.post(
                "/api/v1/mentions", data=body, headers={**AUTH, "Content-Type": ctype}
            )
            assert r.status == 422, ctype
            assert (await r.json())["items"][0]["reason"] == "oversize"
        assert h.submitted == [] and h.letters.reasons["oversize"] == 3
    finally:
        await client.close()


async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400_dead_lettered(
    env: tuple[Harness, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """`Content-Encoding: gzip` on a body that is not gzip: a 500, two ERROR tracebacks,
    nothing dead-lettered, and the next request on the keep-alive connection reset (QA)."""
    h, client = env
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    resp = await client.post("/api/v1/mentions", data=b"this is not gzip", headers=headers)
    assert resp.status == 400
    body = await resp.json()
    assert "Content-Encoding 'gzip'" in body["error"]
    assert h.letters.reasons == {"invalid_value": 1}
    assert (
        h.metric("crisiswatch_collector_dead_letters_total", source="http", reason="invalid_value")
        == 1
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the client's next request (same session) is answered, not reset
    good = gzip.compress(json.dumps(item(1)).encode())
    resp = await client.post("/api/v1/mentions", data=good, headers=headers)
    assert resp.status == 200 and (await resp.json())["accepted"] == 1
