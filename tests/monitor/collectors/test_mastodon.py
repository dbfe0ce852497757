"""Mastodon streaming collector against a local websocket server replaying recorded frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from websockets.asyncio.server import ServerConnection, serve

from monitor.clock import FakeClock
from monitor.collectors.common import Secret
from monitor.collectors.mastodon import MastodonSource, html_to_text, parse_event, status_to_mention
from monitor.config.sources import MastodonConfig, MastodonStreamConfig
from monitor.errors import DecodeError

from .conftest import DownKV, make_harness, run_until

FRAMES: list[dict[str, Any]] = [
    json.loads(line)
    for line in (Path(__file__).parents[2] / "data/collectors/mastodon_frames.jsonl")
    .read_text()
    .splitlines()
]
# the clock at the recorded statuses' time: an id dated further ahead of it is refused
NOW = 1_714_600_000.0
STREAMS = [
    MastodonStreamConfig(stream="public"),
    MastodonStreamConfig(stream="hashtag", tag="acme"),
    MastodonStreamConfig(stream="list", list="77"),
]


class FakeMastodon:
    """Checks the token, waits for the subscribe frames, then streams; the first connection
    dies after `drop_after` frames and the next one carries on with the live stream."""

    def __init__(self, drop_after: int) -> None:
        self.drop_after = drop_after
        self.sent = 0
        self.auth: list[str | None] = []
        self.subscribed: list[list[dict[str, Any]]] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.auth.append(ws.request.headers.get("Authorization"))
        subs = [json.loads(await ws.recv()) for _ in STREAMS]
        self.subscribed.append(subs)
        first = len(self.auth) == 1
        while self.sent < len(FRAMES):
            if first and self.sent == self.drop_after:
                ws.transport.abort()
                return
            await ws.send(json.dumps(FRAMES[self.sent]))
            self.sent += 1
        await ws.wait_closed()


GAP = 112345678900000100  # statuses posted while the stream was down: GAP .. GAP + 44


def gap_status(k: int) -> dict[str, Any]:
    return {
        "id": str(GAP + k),
        "created_at": "2024-05-01T12:05:00.000Z",
        "content": f"<p>acme gap {k}</p>",
        "account": {"id": "9", "acct": "ann@mastodon.example"},
        "visibility": "public",
    }


class FakeTimelines:
    """The REST timelines, paged like Mastodon's (``min_id``: the page right after it, listed
    newest first): public holds the gap but one status, the tag timeline that one and a
    copy of another, the list fails."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        self.requests.append((request.path, q["min_id"], request.headers.get("Authorization")))
        if request.path.endswith("/list/77"):
            return web.Response(status=500)
        ks = [k for k in range(45) if k != 7] if request.path.endswith("/public") else [0, 7]
        held = [gap_status(k) for k in ks]
        newer = [st for st in held if int(st["id"]) > int(q["min_id"])][: int(q["limit"])]
        return web.json_response(newer[::-1])


async def test_streams_with_a_disconnect_in_the_middle_and_backfills_the_gap() -> None:
    h = make_harness(FakeClock(NOW))
    fake = FakeMastodon(drop_after=4)
    rest = FakeTimelines()
    app = web.Application()
    app.add_routes([web.get("/api/v1/timelines/{path:.*}", rest.handle)])
    rest_server = TestServer(app)
    await rest_server.start_server()
    origin = str(rest_server.make_url("")).rstrip("/")

    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(
            enabled=True,
            url=f"ws://127.0.0.1:{port}/api/v1/streaming",
            streams=STREAMS,
            rest_url=origin,
        )
        src = MastodonSource(cfg, h.ctx, token=Secret("tok-123"), seed=2)
        got = await run_until(src, lambda g: fake.sent >= len(FRAMES) and len(g) >= 7 + 45)

        # a restart resumes from the stored newest id: the gap is not read again
        fake.sent, fake.drop_after = 0, -1
        h2 = make_harness(FakeClock(NOW))
        h2.kv.data = h.kv.data  # the same state store
        again = MastodonSource(cfg, h2.ctx, token=Secret("tok-123"), seed=2)
        await run_until(again, lambda _: len(rest.requests) >= 7)
    await rest_server.close()

    seen, last = "112345678900000003", str(GAP + 40)
    public, tag, lst = (f"/api/v1/timelines/{p}" for p in ("public", "tag/acme", "list/77"))
    assert rest.requests[:4] == [  # after the reconnect: public in two pages, then the others
        (public, seen, "Bearer tok-123"),
        (public, last, "Bearer tok-123"),
        (tag, seen, "Bearer tok-123"),
        (lst, seen, "Bearer tok-123"),
    ]
    newest = str(GAP + 44)
    assert h.kv.data["collector:mastodon:newest"] == newest.encode()
    assert rest.requests[4:] == [(p, newest, "Bearer tok-123") for p in (public, tag, lst)]
    ids = [m.id for m in got]
    # merged across timelines in id (= time) order, between the stream's 3 and 4
    assert ids[3:48] == [str(GAP + k) for k in range(45)]
    assert len(ids) == len(set(ids)) and src.backfilled == 45 and again.backfilled == 0
    got = [m for m in got if int(m.id) < GAP]
    assert fake.auth[:2] == ["Bearer tok-123", "Bearer tok-123"]
    assert fake.subscribed[0] == [
        {"type": "subscribe", "stream": "public"},
        {"type": "subscribe", "stream": "hashtag", "tag": "acme"},
        {"type": "subscribe", "stream": "list", "list": "77"},
    ]
    assert [m.id[-1] for m in got] == ["1", "2", "3", "4", "5", "6", "7"]  # 1 came twice, 3 edited
    by_id = {m.id[-1]: m for m in got}
    assert by_id["1"].text == "#acme is down again & nobody answers"
    assert (
        by_id["2"].text
        == "Same here.\nThird time this week.\n\nSee https://status.acme.example/incidents/42"
    )
    assert (by_id["2"].kind, by_id["2"].in_reply_to) == ("reply", "112345678900000001")
    assert by_id["3"].author.verified and by_id["3"].author.handle == "@acmecorp"
    assert by_id["4"].kind == "dm"
    assert by_id["5"].text.startswith("acme rant\n\n")
    assert h.retracted == [("mastodon", "112345678900000005")]
    assert src.health.reconnects == 1
    assert h.metric("crisiswatch_collector_duplicates_total", source="mastodon") == 2
    assert not h.letters.items


def test_bad_frames() -> None:
    for frame, reason in [
        ([], "not_object"),
        ({"event": "update", "payload": {"id": "1"}}, "wrong_type"),
        ({"event": "update", "payload": "{oops"}, "malformed_json"),
        ({"event": "update", "payload": json.dumps({"id": "1"})}, "missing_field"),
        ({"event": "delete", "payload": None}, "wrong_type"),
        ({"error": "Missing access token"}, "invalid_value"),
    ]:
        with pytest.raises(DecodeError) as e:
            parse_event(frame)
        assert e.value.reason == reason
    assert parse_event({"event": "notification", "payload": "{}"}).action == "skip"


def test_html_to_text_and_entities() -> None:
    assert html_to_text("<p>a</p><p>b &lt;3 &#x1F600;</p>") == "a\n\nb <3 😀"
    assert html_to_text("") == ""
    status = json.loads(FRAMES[0]["payload"])
    m = status_to_mention({**status, "content": "<p>x</p>", "in_reply_to_id": None})
    assert (m.text, m.kind, m.metrics) == (
        "x",
        "post",
        (("favourites", 1), ("reblogs", 1), ("replies", 1)),
    )


async def test_an_unforeseen_decoder_failure_costs_one_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monitor.collectors.mastodon as mod

    real = mod.parse_event
    calls = 0

    def flaky(obj: object, *, source: str = "mastodon") -> mod.MastoEvent:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug")
        return real(obj, source=source)

    monkeypatch.setattr(mod, "parse_event", flaky)
    h = make_harness(FakeClock(NOW))

    async def handler(ws: ServerConnection) -> None:
        for _ in STREAMS[:1]:
            await ws.recv()
        await ws.send(json.dumps(FRAMES[0]))
        await ws.send(json.dumps(FRAMES[2]))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(enabled=True, url=f"ws://127.0.0.1:{port}/", streams=STREAMS[:1])
        got = await run_until(MastodonSource(cfg, h.ctx), lambda g: bool(g))
    assert [m.id for m in got] == ["112345678900000002"]
    assert h.letters.reasons == {"decoder_error": 1}
    assert "KeyError" in h.letters.items[0][2]


async def test_a_state_store_outage_does_not_stop_the_stream() -> None:
    h = make_harness(FakeClock(NOW))
    kv = DownKV()

    async def handler(ws: ServerConnection) -> None:
        for _ in STREAMS[:1]:
            await ws.recv()
        for k in (0, 2, 5):
            await ws.send(json.dumps(FRAMES[k]))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(enabled=True, url=f"ws://127.0.0.1:{port}/", streams=STREAMS[:1])
        src = MastodonSource(cfg, replace(h.ctx, state=kv))
        got = await run_until(src, lambda g: len(g) == 3)
    assert len({m.id for m in got}) == 3
    # none while streaming (periodic saves come a minute apart, not one per status), one at
    # the end
    assert kv.failed_puts == 1
    assert src.newest == max(int(m.id) for m in got)


async def test_a_frame_over_max_frame_bytes_costs_that_frame_not_the_connection() -> None:
    """The websocket's own limit was max_frame_bytes: such a frame ended the connection and
    took the frames before it along (QA, tenth session)."""
    h = make_harness(FakeClock(NOW))
    big = {**FRAMES[0], "payload": json.dumps({"content": "acme " + "x" * 5000})}
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        for f in (FRAMES[0], big, FRAMES[2]):
            await ws.send(json.dumps(f))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(
            enabled=True, url=f"ws://127.0.0.1:{port}/", streams=STREAMS[:1], max_frame_bytes=2048
        )
        got = await run_until(MastodonSource(cfg, h.ctx), lambda g: len(g) == 2)
    assert len(got) == 2 and connections == 1
    assert h.letters.reasons == {"oversize": 1}


async def test_a_status_id_dated_far_ahead_is_not_kept_as_the_newest() -> None:
    """One status id 99999999999999999999 was persisted as the newest and every backfill asked
    min_id with it (QA, twelfth session); a saved one from before is ignored too."""
    h = make_harness(FakeClock(NOW))
    bogus = json.loads(FRAMES[0]["payload"])
    bogus["id"] = "99999999999999999999"
    frames = [FRAMES[0], {**FRAMES[0], "payload": json.dumps(bogus)}, FRAMES[2]]

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for f in frames:
            await ws.send(json.dumps(f))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(enabled=True, url=f"ws://127.0.0.1:{port}/", streams=STREAMS[:1])
        src = MastodonSource(cfg, h.ctx)
        got = await run_until(src, lambda g: len(g) == 3)
        assert "99999999999999999999" in {m.id for m in got}  # the status itself is kept
        assert src.newest == 112345678900000002 and src.implausible == 1
        assert h.kv.data["collector:mastodon:newest"] == b"112345678900000002"

        h.kv.data["collector:mastodon:newest"] = b"99999999999999999999"  # saved by an old build
        again = MastodonSource(cfg, h.ctx)
        await again._load()
    assert again.newest is None  # no backfill from it; the next status seen sets it
