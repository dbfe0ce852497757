"""Jetstream collector against a local websocket server replaying recorded frames."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from monitor.clock import FakeClock
from monitor.collectors.jetstream import JetstreamSource, parse_frame
from monitor.config.sources import JetstreamConfig
from monitor.errors import DecodeError
from monitor.model import Mention

from .conftest import DownKV, make_harness, run_until

FRAMES = [
    json.loads(line)
    for line in (Path(__file__).parents[2] / "data/collectors/jetstream_frames.jsonl")
    .read_text()
    .splitlines()
]
# the clock at the recorded frames' time: a cursor further ahead of it is refused
NOW = 1_725_911_200.0
CREATED = {
    f"at://{f['did']}/app.bsky.feed.post/{f['commit']['rkey']}"
    for f in FRAMES
    if f["kind"] == "commit"
    and f["commit"]["operation"] == "create"
    and f["commit"]["collection"].endswith("post")
}


class FakeJetstream:
    """Serves frames from `cursor` on, filtered by wantedCollections, like the real service.

    `drop_after[n]` = on the n-th connection, abort the TCP connection after that many frames.
    `skip_on_resume` = drop that many frames after the cursor (retention loss -> a gap).
    """

    def __init__(
        self, frames: list[dict[str, Any]], drop_after: list[int | None], skip_on_resume: int = 0
    ):
        self.frames, self.drop_after, self.skip = frames, drop_after, skip_on_resume
        self.queries: list[dict[str, list[str]]] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        q = parse_qs(urlsplit(ws.request.path).query)
        self.queries.append(q)
        cursor = int(q["cursor"][0]) if "cursor" in q else None
        wanted = set(q.get("wantedCollections", []))
        out = [
            f
            for f in self.frames
            if (cursor is None or f["time_us"] >= cursor)
            and (f["kind"] != "commit" or not wanted or f["commit"]["collection"] in wanted)
        ]
        if cursor is not None:
            out = out[self.skip :]
        n = len(self.queries) - 1
        limit = self.drop_after[n] if n < len(self.drop_after) else None
        for i, f in enumerate(out):
            if limit is not None and i == limit:
                ws.transport.abort()  # the link dies mid-stream, no close frame
                return
            await ws.send(json.dumps(f))
        await ws.wait_closed()  # then stay open, like a quiet live stream


def config_for(server: Any, **settings: Any) -> JetstreamConfig:
    """The source's config for the local relay `server` (its `/subscribe`)."""
    port = server.sockets[0].getsockname()[1]
    return JetstreamConfig(enabled=True, url=f"ws://127.0.0.1:{port}/subscribe", **settings)


async def test_disconnect_mid_stream_resumes_by_cursor_without_loss_or_duplicates() -> None:
    h = make_harness(FakeClock(NOW))
    fake = FakeJetstream(FRAMES, drop_after=[9])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=0.2)
        src = JetstreamSource(cfg, h.ctx, seed=1)
        got = await run_until(src, lambda g: len(g) >= len(CREATED) and bool(h.retracted))
    assert {m.id for m in got} == CREATED
    assert len(got) == len(CREATED)  # the rewind overlap and the update were deduplicated
    assert h.metric("crisiswatch_collector_duplicates_total", source="bluesky") >= 1
    assert (
        src.health.reconnects == 1
        and h.metric("crisiswatch_collector_reconnects_total", source="bluesky") == 1
    )
    assert len(h.retracted) == 1 and h.retracted[0][1].startswith("at://")
    # the resume asked for the last cursor minus the rewind, for posts only
    assert fake.queries[0] == {"wantedCollections": ["app.bsky.feed.post"]}
    resumed = int(fake.queries[1]["cursor"][0])
    last_before_drop = [
        f for f in FRAMES if f["kind"] != "commit" or f["commit"]["collection"].endswith("post")
    ][8]
    assert resumed == last_before_drop["time_us"] - 200_000
    assert h.metric("crisiswatch_collector_stream_gap_seconds", source="bluesky") == 0.0
    # handles learned from identity events replace DIDs on later posts
    ident = {f["did"]: f["identity"]["handle"] for f in FRAMES if f["kind"] == "identity"}
    assert any(m.author.handle in ident.values() for m in got)
    replies = [m for m in got if m.kind == "reply"]
    assert replies and all(r.in_reply_to and r.in_reply_to.startswith("at://") for r in replies)
    assert {m.lang for m in got} == {"en", "de"}
    assert not h.letters.items


async def test_restart_resumes_from_the_persisted_cursor() -> None:
    h = make_harness(FakeClock(NOW))
    first_half = FRAMES[:12]
    fake1 = FakeJetstream(first_half, drop_after=[])
    seen: list[Mention] = []
    async with serve(fake1.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=5)
        n_first = len(
            [
                i
                for i in CREATED
                if any(i.endswith(f["commit"]["rkey"]) for f in first_half if f["kind"] == "commit")
            ]
        )
        seen += await run_until(JetstreamSource(cfg, h.ctx), lambda g: len(g) >= n_first)
    saved = json.loads(h.kv.data["collector:bluesky:cursor"])
    assert saved["cursor"] == first_half[-1]["time_us"]
    fake2 = FakeJetstream(FRAMES, drop_after=[])
    async with serve(fake2.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=5)
        seen += await run_until(
            JetstreamSource(cfg, h.ctx), lambda g: len(g) + len(seen) >= len(CREATED)
        )
    assert int(fake2.queries[0]["cursor"][0]) == saved["cursor"] - 5_000_000
    assert sorted(m.id for m in seen) == sorted(CREATED)  # none twice across the restart


async def test_gap_after_reconnect_is_measured() -> None:
    h = make_harness(FakeClock(NOW))
    fake = FakeJetstream(FRAMES, drop_after=[5], skip_on_resume=8)
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=0)
        src = JetstreamSource(cfg, h.ctx)
        await run_until(src, lambda g: src.health.reconnects == 1 and len(g) >= 8)
    assert h.metric("crisiswatch_collector_stream_gap_seconds", source="bluesky") > 0.1
    assert h.metric("crisiswatch_collector_missed_stream_seconds_total", source="bluesky") > 0.1


async def test_bad_frames_are_dead_lettered_and_the_stream_continues() -> None:
    h = make_harness(FakeClock(NOW))

    async def handler(ws: ServerConnection) -> None:
        await ws.send("{not json")
        await ws.send(b"\xff\xfe")
        await ws.send(json.dumps({"kind": "commit"}))
        await ws.send(json.dumps({**FRAMES[0], "time_us": "soon"}))
        bad = json.loads(json.dumps(FRAMES[0]))
        bad["commit"]["record"]["text"] = 5
        await ws.send(json.dumps(bad))
        await ws.send(json.dumps(FRAMES[0]))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        src = JetstreamSource(JetstreamConfig(enabled=True, url=f"ws://127.0.0.1:{port}/"), h.ctx)
        got = await run_until(src, lambda g: len(g) == 1)
    assert h.letters.reasons == {
        "malformed_json": 1,
        "invalid_utf8": 1,
        "missing_field": 1,
        "wrong_type": 2,
    }
    assert got[0].text == FRAMES[0]["commit"]["record"]["text"]


def test_parse_frame_edge_cases() -> None:
    f = json.loads(json.dumps(FRAMES[0]))
    f["commit"]["record"]["createdAt"] = "2999-01-01T00:00:00Z"  # a lying client clock
    m = parse_frame(f).mention
    assert m is not None and m.created_at == f["time_us"] / 1e6
    with pytest.raises(DecodeError):
        parse_frame({**f, "commit": {**f["commit"], "operation": "upsert"}})
    assert parse_frame({"did": "d", "time_us": 1, "kind": "account"}).action == "skip"


async def test_a_state_store_outage_does_not_stop_the_stream() -> None:
    # the cursor only bookmarks the stream: failing to save it must not blind the collector
    h = make_harness(FakeClock(NOW))
    kv = DownKV()
    fake = FakeJetstream(FRAMES, drop_after=[9])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=0.2)
        src = JetstreamSource(cfg, replace(h.ctx, state=kv), seed=1)
        got = await run_until(src, lambda g: len(g) >= len(CREATED))
    assert {m.id for m in got} == CREATED and len(got) == len(CREATED)
    assert kv.failed_puts >= 1 and src.health.reconnects == 1
    # the reconnect still resumed from the cursor kept in memory
    assert "cursor" in fake.queries[1]


async def test_a_restarted_stream_resumes_from_memory_not_from_an_older_saved_cursor() -> None:
    # the app restarts stream() on the same instance after a failure; when the last saves did
    # not reach the store, the stored cursor and keys are older than what this instance has
    h = make_harness(FakeClock(NOW))
    fake = FakeJetstream(FRAMES, drop_after=[])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        src = JetstreamSource(config_for(server, rewind_seconds=0), h.ctx)
        got = await run_until(src, lambda g: len(g) >= len(CREATED))
        h.kv.data[src._state_key] = json.dumps(
            {"cursor": FRAMES[0]["time_us"], "recent": []}
        ).encode()
        again = await run_until(
            src, lambda g: len(fake.queries) == 2 and src.health.connected, timeout=10
        )
    assert {m.id for m in got} == CREATED
    assert again == []
    assert int(fake.queries[1]["cursor"][0]) > FRAMES[0]["time_us"]


def big_post(after: dict[str, Any], size: int) -> dict[str, Any]:
    """A post 300 us after `after` whose text makes its frame about `size` bytes."""
    f: dict[str, Any] = json.loads(json.dumps(after))
    f["time_us"] += 300
    f["commit"]["rkey"] = "3bigbigbigbig"
    f["commit"]["record"]["text"] = "acme " + "x" * size
    return f


@pytest.mark.parametrize(("size", "connections"), [(5_000, 1), (20_000, 2)])
async def test_an_oversized_frame_is_dead_lettered_and_the_stream_goes_on(
    size: int, connections: int
) -> None:
    """Over max_frame_bytes (1024 here): dead-lettered on the same connection. Over the
    websocket limit (8 x that) the library ends the connection; resuming by cursor replayed the
    same frame: 106 reconnects in 8 s and nothing after it ever arrived (QA, tenth session)."""
    h = make_harness(FakeClock(NOW))
    frames = [*FRAMES[:3], big_post(FRAMES[2], size), *FRAMES[3:]]
    fake = FakeJetstream(frames, drop_after=[])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, max_frame_bytes=1024)
        src = JetstreamSource(cfg, h.ctx, seed=1)
        got = await run_until(src, lambda g: len(g) >= len(CREATED))
    assert {m.id for m in got} == CREATED
    assert h.letters.reasons == {"oversize": 1}
    assert len(fake.queries) == connections
    if connections == 2:  # past the cursor, without the rewind that would replay the frame
        assert int(fake.queries[1]["cursor"][0]) == FRAMES[2]["time_us"] + 1000


async def test_a_frame_dated_far_ahead_never_becomes_the_cursor() -> None:
    """One account frame with time_us 9e18 was saved as the cursor and every reconnect asked
    for cursor=8999999999997000000 (QA, twelfth session)."""
    h = make_harness(FakeClock(NOW))
    bogus = {"did": "did:plc:x", "time_us": 9_000_000_000_000_000_000, "kind": "account"}
    frames = [*FRAMES[:5], bogus, *FRAMES[5:]]
    fake = FakeJetstream(frames, drop_after=[9])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server, rewind_seconds=0.2)
        src = JetstreamSource(cfg, h.ctx, seed=1)
        got = await run_until(src, lambda g: len(g) >= len(CREATED))
    assert {m.id for m in got} == CREATED and src.implausible >= 1
    served = [f for f in frames[:9] if f is not bogus]
    assert int(fake.queries[1]["cursor"][0]) == max(f["time_us"] for f in served) - 200_000
    saved = json.loads(h.kv.data["collector:bluesky:cursor"])
    assert saved["cursor"] == max(f["time_us"] for f in FRAMES)


async def test_a_saved_cursor_in_the_future_is_not_resumed_from() -> None:
    h = make_harness(FakeClock(NOW))
    h.kv.data["collector:bluesky:cursor"] = json.dumps(
        {"cursor": 9_000_000_000_000_000_000, "recent": []}
    ).encode()
    fake = FakeJetstream(FRAMES, drop_after=[])
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        cfg = config_for(server)
        got = await run_until(JetstreamSource(cfg, h.ctx), lambda g: len(g) >= len(CREATED))
    assert "cursor" not in fake.queries[0]  # live, not from 9e18
    assert {m.id for m in got} == CREATED


async def test_a_text_frame_that_is_not_utf8_is_stepped_over() -> None:
    """websockets closes such a frame with 1007; resuming at the cursor replayed it on every
    reconnect, for ever (QA, twelfth session)."""
    h = make_harness(FakeClock(NOW))
    bad_at = FRAMES[2]["time_us"] + 300
    queries: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        q = parse_qs(urlsplit(ws.request.path).query)
        cursor = int(q["cursor"][0]) if "cursor" in q else None
        queries.append(cursor)
        for f in [*FRAMES[:3], None, *FRAMES[3:]]:
            t = bad_at if f is None else f["time_us"]
            if cursor is not None and t < cursor:
                continue
            if f is None:
                await ws.send(b'{"text": "caf\xe9"}', text=True)  # latin-1 sent as text
                # let the client fail before more frames fill its queue: with reading paused it
                # only sees the server's close after its close timeout (10 s), then reconnects
                await asyncio.sleep(0.3)
            elif f["kind"] != "commit" or f["commit"]["collection"].endswith("post"):
                await ws.send(json.dumps(f))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        cfg = config_for(server)
        src = JetstreamSource(cfg, h.ctx, seed=1)
        got = await run_until(src, lambda g: len(g) >= len(CREATED))
    assert {m.id for m in got} == CREATED
    assert h.letters.reasons == {"invalid_utf8": 1}
    assert queries == [None, FRAMES[2]["time_us"] + 1000]  # past the cursor, no rewind
