"""The wall's websocket over real HTTP: snapshot then deltas, drop-oldest resync, heartbeats,
viewer tokens, and a hub that never waits for a wall that does not read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from dashboards.wall import WallState, client_message, close_walls, run_live, wall_routes
from monitor.clock import FakeClock
from monitor.hub import Hub

Frame = dict[str, Any]


@asynccontextmanager
async def serve(
    topics: Iterable[str] = ("acme",), **kw: Any
) -> AsyncIterator[tuple[Hub, WallState, TestServer]]:
    hub, state = Hub(), WallState([{"name": n, "title": n.upper()} for n in topics], history=50)
    hub.add_listener(state.apply)
    app = web.Application()
    app.add_routes(wall_routes(state, **kw))
    server = TestServer(app)
    await server.start_server()
    try:
        yield hub, state, server
    finally:
        await server.close()


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Frame:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    frame: Frame = json.loads(msg.data)
    return frame


async def recv_until(
    ws: aiohttp.ClientWebSocketResponse, pred: Callable[[Frame], bool], limit: int = 200
) -> Frame:
    for _ in range(limit):
        f = await recv(ws)
        if pred(f):
            return f
    raise AssertionError("frame not received")


def series(t: float, count: int = 1) -> dict[str, Any]:
    return {"topic": "acme", "t": t, "width": 60.0, "count": count}


async def test_snapshot_on_connect_then_contiguous_deltas() -> None:
    clock = FakeClock(1000.0)
    async with serve(clock=clock) as (hub, _, server), aiohttp.ClientSession() as http:
        hub.publish("series", series(0.0, 5))
        async with http.ws_connect(server.make_url("/ws")) as ws:
            snap = await recv(ws)
            assert snap["v"] == 1 and snap["type"] == "snapshot" and snap["reason"] == "connect"
            assert snap["seq"] == 1 and snap["now"] == 1000.0
            assert snap["data"]["series"]["acme"][0]["count"] == 5
            for i in range(1, 6):
                hub.publish("series", series(60.0 * i, i))
            hub.publish("source", {"name": "demo", "stale": False})
            got = [await recv_until(ws, lambda f: f["type"] == "delta") for _ in range(6)]
            assert [f["seq"] for f in got] == [2, 3, 4, 5, 6, 7]
            assert [f["topic"] for f in got] == ["series"] * 5 + ["source"]


async def test_a_wall_that_falls_behind_gets_a_snapshot_not_a_backlog() -> None:
    async with (
        serve(client_queue=4) as (hub, state, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")) as ws,
    ):
        assert (await recv(ws))["type"] == "snapshot"
        for i in range(40):  # no await in between: the client's queue overflows
            hub.publish("series", series(60.0 * i, i))
        f = await recv_until(ws, lambda f: f["type"] == "snapshot")
        assert f["reason"] == "dropped" and f["dropped"] >= 36
        assert f["seq"] == state.seq == 40
        assert f["data"]["series"]["acme"][-1]["count"] == 39
        hub.publish("series", series(60.0 * 40, 40))
        nxt = await recv_until(ws, lambda f: f["type"] == "delta")
        assert nxt["seq"] == 41


async def test_client_may_ask_for_a_resync() -> None:
    async with (
        serve() as (_hub, _, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")) as ws,
    ):
        await recv(ws)
        await ws.send_str(json.dumps({"type": "resync"}))
        f = await recv_until(ws, lambda f: f["type"] == "snapshot")
        assert f["reason"] == "requested" and f["dropped"] == 0


async def test_version_2_is_what_the_page_asks_for_and_1_stays_for_the_others() -> None:
    """A page of version 1 still open when the server is upgraded (and scripts that read the
    wall) get version 1: the same frames, series as lists of points."""
    async with serve() as (hub, _, server), aiohttp.ClientSession() as http:
        hub.publish("series", series(0.0, 5))
        async with (
            http.ws_connect(server.make_url("/ws?v=2")) as two,
            http.ws_connect(server.make_url("/ws")) as one,
        ):
            new, old = await recv(two), await recv(one)
            assert (new["v"], old["v"]) == (2, 1)
            assert new["data"]["series"]["acme"] == {
                "n": 1, "cols": {"t": 0.0, "width": 60.0, "count": 5}
            }  # fmt: skip
            assert old["data"]["series"]["acme"] == [series(0.0, 5)]
            hub.publish("series", series(60.0, 6))
            d2, d1 = await recv(two), await recv(one)
            assert (d2["v"], d1["v"]) == (2, 1) and d2["data"] == d1["data"] == series(60.0, 6)


async def test_a_client_asking_in_a_loop_gets_one_snapshot_per_heartbeat_and_no_drops() -> None:
    """Each request was a ~0.5 MB snapshot (265 MB/s to one client), and a burst of them
    filled the client's queue and counted as dropped hub messages (QA)."""
    async with (
        serve(heartbeat_seconds=0.2, client_queue=16) as (hub, state, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")) as ws,
    ):
        await recv(ws)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        snapshots = 0
        while loop.time() < end:
            for _ in range(50):
                await ws.send_str('{"type":"resync"}')
            hub.publish("series", series(loop.time()))
            with suppress(TimeoutError):
                while True:
                    f = await recv(ws, timeout=0.01)
                    snapshots += f["type"] == "snapshot"
                    assert f.get("reason") != "dropped"
        assert 2 <= snapshots <= 1.0 / 0.2 + 1
        assert state.dropped == 0


async def test_heartbeats_carry_the_service_clock_and_last_seq() -> None:
    clock = FakeClock(5000.0)
    async with (
        serve(clock=clock, heartbeat_seconds=0.1) as (hub, _, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")) as ws,
    ):
        await recv(ws)
        hub.publish("series", series(0.0))
        clock.advance(30.0)
        hb = await recv_until(ws, lambda f: f["type"] == "heartbeat")
        assert hb["now"] == 5030.0 and hb["seq"] == 1


async def test_viewer_token_guards_page_and_socket() -> None:
    def authorize(token: str | None) -> bool:
        return token == "kiosk-1"

    async with serve(authorize=authorize) as (_, _, server), aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/")) as r:
            assert r.status == 401
        async with http.get(server.make_url("/?token=kiosk-1")) as r:
            assert r.status == 200 and "wall.js" in await r.text()
        async with http.get(server.make_url("/static/wall.js")) as r:
            assert r.status == 200  # assets hold no data
        async with http.ws_connect(server.make_url("/ws?token=wrong")) as ws:
            f = await recv(ws)
            assert f == {"v": 1, "type": "error", "code": "unauthorized"}
            closed = await ws.receive(timeout=5)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4401
        async with http.ws_connect(server.make_url("/ws?token=kiosk-1")) as ws:
            assert (await recv(ws))["type"] == "snapshot"


async def test_static_assets_only_from_the_static_folder() -> None:
    async with serve() as (_, _, server), aiohttp.ClientSession() as http:
        for bad in ("/static/..%2Fwall.py", "/static/wall.py", "/static/.hidden.js"):
            async with http.get(server.make_url(bad)) as r:
                assert r.status == 404, bad
        async with http.get(server.make_url("/static/wall.css")) as r:
            assert r.status == 200 and r.content_type == "text/css"


async def test_publish_never_waits_for_walls_that_do_not_read() -> None:
    drops: list[int] = []
    async with (
        serve(client_queue=8, on_drop=lambda: drops.append(1)) as (hub, state, server),
        aiohttp.ClientSession() as http,
    ):
        sockets = [await http.ws_connect(server.make_url("/ws")) for _ in range(20)]
        for _ in range(50):
            if state.walls == 20:
                break
            await asyncio.sleep(0.02)
        assert state.walls == 20
        big = "x" * 20_000  # fills socket buffers of clients that never read
        for i in range(2000):
            hub.publish("source", {"name": f"s{i % 3}", "blob": big})
        # publish returned without awaiting; every client holds at most its queue
        assert state.dropped > 0 and len(drops) >= state.dropped  # counted for the metric
        for ws in sockets:
            await ws.close()
    assert state.walls == 0


async def test_run_live_publishes_only_changes() -> None:
    hub = Hub()
    seen: list[dict[str, Any]] = []
    hub.add_listener(lambda topic, msg: seen.append(msg) if topic == "live" else None)
    values = iter([{"processed": 1}, {"processed": 1}, {"processed": 2}])

    async def sleep(_: float) -> None:
        await asyncio.sleep(0)

    def read() -> dict[str, Any]:
        try:
            return next(values)
        except StopIteration:
            raise asyncio.CancelledError from None

    with suppress(asyncio.CancelledError):
        await run_live(hub, read, interval=0.01, sleep=sleep)
    assert seen == [{"processed": 1}, {"processed": 2}]


def test_client_message() -> None:
    assert client_message('{"type": "resync", "why": "gap"}') == "resync"
    assert client_message("[1]") is None


async def test_a_wall_that_stops_reading_is_disconnected_and_its_handler_ends() -> None:
    # the socket buffer of a frozen kiosk never drains: a graceful close would wait forever
    async with (
        serve(client_queue=8, send_timeout=0.2) as (hub, state, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")),  # connects, then never reads
    ):
        while state.walls < 1:
            await asyncio.sleep(0.01)
        big = "x" * 200_000
        for i in range(100):
            hub.publish("source", {"name": f"s{i % 3}", "blob": big})
            await asyncio.sleep(0)

        async def gone() -> None:
            while state.walls:
                hub.publish("source", {"name": "s0", "blob": big})
                await asyncio.sleep(0.05)

        # generous: the send timeout is 0.2 s; before the fix this never happened
        await asyncio.wait_for(gone(), 30)


async def test_garbage_from_a_wall_is_ignored_and_the_wall_stays_connected() -> None:
    async with (
        serve() as (_hub, _, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws")) as ws,
    ):
        assert (await recv(ws))["type"] == "snapshot"
        for junk in ("{]", "[1]", '{"type": 5}', '{"type": "drop"}', "[" * 60_000):
            await ws.send_str(junk)
        await ws.send_bytes(b"\x00\xff")
        await ws.send_str(json.dumps({"type": "resync"}))
        f = await recv_until(ws, lambda f: f["type"] == "snapshot")
        assert f["reason"] == "requested"


async def test_shutdown_with_a_stalled_wall_still_closes_the_others_cleanly() -> None:
    # a laptop that went to sleep with the wall open: its socket stops draining
    hub, state = Hub(), WallState([{"name": "acme", "title": "ACME"}], history=50)
    hub.add_listener(state.apply)
    sockets: set[web.WebSocketResponse] = set()
    app = web.Application()
    app.add_routes(wall_routes(state, client_queue=8, send_timeout=0.5, sockets=sockets))
    app.on_shutdown.append(lambda _: close_walls(sockets))
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        stalled = await http.ws_connect(server.make_url("/ws"))
        live = await http.ws_connect(server.make_url("/ws"))
        frames: list[aiohttp.WSMessage] = []

        async def read() -> None:
            async for m in live:
                frames.append(m)

        reader = asyncio.create_task(read())
        while state.walls < 2:
            await asyncio.sleep(0.01)
        big = "x" * 200_000
        for i in range(60):
            hub.publish("source", {"name": f"s{i % 3}", "blob": big})
            await asyncio.sleep(0.01)
        await server.close()  # runs close_walls: must neither raise nor hang
        await asyncio.wait_for(reader, 30)
        assert live.close_code == 1001
        assert state.walls == 0
        await stalled.close()


async def test_sockets_count_walls_not_other_hub_subscribers() -> None:
    # the MQTT publisher also subscribes to the hub: crisiswatch_wall_clients must not count it
    sockets: set[web.WebSocketResponse] = set()
    async with serve(sockets=sockets) as (hub, state, server):
        with hub.subscribe() as _mqtt_publisher:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(server.make_url("/ws")) as ws:
                    assert (await recv(ws))["type"] == "snapshot"
                    # walls are fed by the state, per selection, not by the hub
                    assert len(sockets) == 1 == state.walls and hub.subscribers == 1
                while sockets:
                    await asyncio.sleep(0.01)
            assert hub.subscribers == 1 and state.walls == 0


async def test_a_page_of_another_origin_may_not_open_the_socket() -> None:
    """Any web page a browser on the monitoring network opened could read the wall's incidents
    and on-call names over a cross-site websocket (QA: ws_open_leak.py)."""
    async with (
        serve(origins=["https://wall.example"]) as (_, _, server),
        aiohttp.ClientSession() as http,
    ):
        own = f"http://{server.host}:{server.port}"
        for bad in ("https://evil.example", "null", f"http://{server.host}:1", "http://[::1"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(server.make_url("/ws"), headers={"Origin": bad})
            assert e.value.status == 403, bad
        for good in (own, own.upper().replace("HTTP://", "http://"), "https://wall.example", None):
            headers = {"Origin": good} if good else {}  # no Origin: not a browser
            async with http.ws_connect(server.make_url("/ws"), headers=headers) as ws:
                assert (await recv(ws))["type"] == "snapshot", good


async def test_a_client_may_present_its_token_as_a_bearer_header() -> None:
    async with (
        serve(authorize=lambda t: t == "kiosk-1") as (_, _, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws"), headers={"Authorization": "Bearer kiosk-1"}) as ws,
    ):
        assert (await recv(ws))["type"] == "snapshot"


async def test_the_wall_page_sends_security_headers() -> None:
    async with (
        serve(authorize=lambda t: t == "kiosk-1") as (_, _, server),
        aiohttp.ClientSession() as http,
    ):
        for path in ("/?token=kiosk-1", "/"):  # the 401 page too
            async with http.get(server.make_url(path)) as r:
                csp = r.headers["Content-Security-Policy"]
                assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
                assert "script-src 'self'" in csp and "connect-src 'self'" in csp
                assert r.headers["X-Frame-Options"] == "DENY"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                # a kiosk's ?token= must not leave in a Referer
                assert r.headers["Referrer-Policy"] == "no-referrer"
        async with http.get(server.make_url("/static/wall.js")) as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff"


async def drain(ws: aiohttp.ClientWebSocketResponse, pings: list[bytes]) -> list[Frame]:
    """The text frames that arrive until none has for 0.3 s; pings (unanswered) go to `pings`."""
    frames: list[Frame] = []
    with suppress(asyncio.TimeoutError):
        while True:
            msg = await ws.receive(timeout=0.3)
            if msg.type == aiohttp.WSMsgType.PING:
                pings.append(msg.data)
            else:
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                frames.append(json.loads(msg.data))
    return frames


async def test_a_wall_that_lags_is_sent_nothing_until_it_catches_up_then_a_snapshot() -> None:
    """A slow reader was cut off by aiohttp's ping timeout (its ping stuck behind the queued
    frames) instead of getting the documented "dropped" snapshot (QA: slow_reader.py). A ping
    answered late means the wall is that far behind: stop feeding it, let its queue overflow."""
    registry = CollectorRegistry()
    async with (
        serve(
            client_queue=4, heartbeat_seconds=0.1, max_lag=0.3, stall_seconds=30, registry=registry
        ) as (hub, state, server),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws"), autoping=False) as ws,
    ):
        assert (await recv(ws))["type"] == "snapshot"
        pings: list[bytes] = []
        await asyncio.sleep(0.5)  # reads nothing: more than max_lag behind
        for i in range(20):
            hub.publish("series", series(60.0 * i, i))
            await asyncio.sleep(0.01)  # each delta had its chance to be sent
        # what was in flight before it fell behind (heartbeats), then nothing while it lags
        assert {f["type"] for f in await drain(ws, pings)} <= {"heartbeat"} and pings
        await ws.pong(b"other")  # not the answer to any ping
        await ws.pong(pings[0])  # progress, but not all read yet
        assert await drain(ws, pings) == []
        await ws.pong(pings[-1])  # the wall read all that was sent
        f = await recv_until(ws, lambda f: f["type"] == "snapshot")
        assert f["reason"] == "dropped" and f["dropped"] >= 16 and f["seq"] == state.seq == 20
        disconnects = {"reason": "no_pong"}
        assert registry.get_sample_value("crisiswatch_wall_disconnects_total", disconnects) == 0


async def test_a_wall_that_answers_no_ping_is_disconnected_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    async with (
        serve(heartbeat_seconds=0.1, max_lag=0.2, stall_seconds=0.5, registry=registry) as (
            _,
            state,
            server,
        ),
        aiohttp.ClientSession() as http,
        http.ws_connect(server.make_url("/ws"), autoping=False) as ws,
    ):
        assert (await recv(ws))["type"] == "snapshot"
        end = asyncio.get_running_loop().time() + 10
        msg = await ws.receive(timeout=10)
        while msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.TEXT):
            assert asyncio.get_running_loop().time() < end, "never disconnected"
            msg = await ws.receive(timeout=10)
        while state.walls:
            await asyncio.sleep(0.01)
        sample = registry.get_sample_value(
            "crisiswatch_wall_disconnects_total", {"reason": "no_pong"}
        )
        assert sample == 1
        lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelname == "WARNING" and not lines[0].exc_info


# --- many topics: a wall tiles its selection, at most 64 (docs/wall.md) ------------------------
def point(topic: str, t: float, score: float = 0.0) -> dict[str, Any]:
    return {"topic": topic, "t": t, "width": 60.0, "count": 1, "score": score}


async def test_the_url_gives_each_screen_its_own_topics() -> None:
    names = ["acme", "globex", "emea-a", "emea-b", "us-x"]
    async with serve(names) as (hub, _, server), aiohttp.ClientSession() as http:
        url = server.make_url("/ws")
        async with (
            http.ws_connect(url.with_query(topics="emea-*,acme")) as emea,
            http.ws_connect(url.with_query(topics="us-x")) as us,
            http.ws_connect(url) as everything,
        ):
            snaps = [await recv(ws) for ws in (emea, us, everything)]
            tiles = [[t["name"] for t in s["data"]["topics"]] for s in snaps]
            assert tiles == [["acme", "emea-a", "emea-b"], ["us-x"], names]
            for n in names:
                hub.publish("series", point(n, 0.0))
            hub.publish("source", {"name": "demo"})  # what is not a tile goes to every wall
            got = []
            for ws in (emea, us, everything):
                f = await recv_until(ws, lambda f: f.get("topic") == "source")
                got.append(f["seq"] - 1)  # its own numbering: the points it was sent
            assert got == [3, 1, 5]


async def test_a_topic_that_enters_the_tiles_reaches_the_wall_with_its_history() -> None:
    names = [f"t{i:03d}" for i in range(70)]
    async with (
        serve(names, heartbeat_seconds=0.2) as (hub, state, server),
        aiohttp.ClientSession() as http,
    ):
        for k in range(10):
            for n in names:
                hub.publish("series", point(n, 60.0 * k, 0.3 if n < "t064" else 0.0))
        async with http.ws_connect(server.make_url("/ws?v=2")) as ws:
            snap = await recv(ws)
            assert [t["name"] for t in snap["data"]["topics"]] == names[:64]
            assert snap["data"]["tiles"]["more"] == 6
            hub.publish("series", point("t069", 600.0, 0.9))  # much worse than any tile
            f = await recv_until(ws, lambda f: f["type"] == "snapshot")
            assert f["reason"] == "tiles"
            assert "t069" in [t["name"] for t in f["data"]["topics"]]
            assert f["data"]["series"]["t069"]["n"] == 11  # its history, not a 1-point chart
            hub.publish("series", point("t069", 660.0, 0.9))
            nxt = await recv_until(ws, lambda f: f["type"] == "delta")
            assert nxt["seq"] == f["seq"] + 1 and nxt["data"]["topic"] == "t069"
            assert state.dropped == 0


async def test_distinct_selections_beyond_the_bound_are_refused() -> None:
    names = [f"t{i:03d}" for i in range(40)]
    async with serve(names) as (_, state, server), aiohttp.ClientSession() as http:
        url = server.make_url("/ws")
        walls = [await http.ws_connect(url.with_query(topics=n, v="2")) for n in names[:32]]
        for ws in walls:
            assert (await recv(ws))["type"] == "snapshot"
        async with http.ws_connect(url.with_query(topics="t039", v="2")) as ws:
            assert await recv(ws) == {"v": 2, "type": "error", "code": "too_many_selections"}
        assert len(state.views) == 32
        async with http.ws_connect(url.with_query(topics="t000", v="2")) as ws:  # watched already
            assert (await recv(ws))["type"] == "snapshot"
        for ws in walls:
            await ws.close()
