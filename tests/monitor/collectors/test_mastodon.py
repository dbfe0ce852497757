"""Mastodon streaming collector against a local websocket server replaying recorded frames."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from monitor.collectors.common import Secret
from monitor.collectors.mastodon import MastodonSource, html_to_text, parse_event, status_to_mention
from monitor.config.sources import MastodonConfig, MastodonStreamConfig
from monitor.errors import DecodeError
from monitor.model import Mention

from .conftest import make_harness

FRAMES: list[dict[str, Any]] = [
    json.loads(line)
    for line in (Path(__file__).parents[2] / "data/collectors/mastodon_frames.jsonl")
    .read_text()
    .splitlines()
]
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


async def test_streams_with_a_disconnect_in_the_middle() -> None:
    h = make_harness()
    fake = FakeMastodon(drop_after=4)
    got: list[Mention] = []
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(
            enabled=True, url=f"ws://127.0.0.1:{port}/api/v1/streaming", streams=STREAMS
        )
        src = MastodonSource(cfg, h.ctx, token=Secret("tok-123"), seed=2)

        async def consume() -> None:
            async with aclosing(src.stream()) as stream:
                async for m in stream:
                    got.append(m)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            while fake.sent < len(FRAMES) or len(got) < 7:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert fake.auth == ["Bearer tok-123", "Bearer tok-123"]
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
    h = make_harness()

    async def handler(ws: ServerConnection) -> None:
        for _ in STREAMS[:1]:
            await ws.recv()
        await ws.send(json.dumps(FRAMES[0]))
        await ws.send(json.dumps(FRAMES[2]))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = MastodonConfig(enabled=True, url=f"ws://127.0.0.1:{port}/", streams=STREAMS[:1])
        src = MastodonSource(cfg, h.ctx)
        got: list[Mention] = []

        async def consume() -> None:
            async with aclosing(src.stream()) as stream:
                async for m in stream:
                    got.append(m)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m.id for m in got] == ["112345678900000002"]
    assert h.letters.reasons == {"decoder_error": 1}
    assert "KeyError" in h.letters.items[0][2]
