"""The wall's HTTP and websocket shell: page, static assets, `/ws` (protocol v1, docs/wall.md).

One websocket per wall: a snapshot on connect, then deltas. The hub never waits for a client:
each client has a bounded drop-oldest queue; a client that fell behind gets a fresh snapshot
(``reason: "dropped"``) instead of the messages it missed. A client whose socket does not drain
within `send_timeout` is disconnected (its wall reconnects and resyncs).

Kiosk screens authenticate with a viewer token in the URL (``/?token=...``); the page passes it
on to ``/ws?token=...``. Acknowledging is done by the incident actions API with a responder's
bearer token, entered on the wall (never put in the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, MutableSet
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from dashboards.view import PROTOCOL_VERSION, WallState, encode, live_view
from monitor.clock import Clock
from monitor.hub import Hub, Subscription

__all__ = [
    "PROTOCOL_VERSION",
    "WallState",
    "close_walls",
    "live_view",
    "run_live",
    "wall_routes",
]

#: ``authorize(token) -> bool``: may a screen holding this viewer token watch the wall?
Authorize = Callable[[str | None], bool]
CLOSE_UNAUTHORIZED = 4401

HEARTBEAT: tuple[str, dict[str, Any]] = ("heartbeat", {})
RESYNC: tuple[str, dict[str, Any]] = ("resync", {})  # wakes an idle pump for a request
_TYPES = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def client_message(text: str) -> str | None:
    """The request type of a client frame (``{"type": "resync"}``; bare ``resync`` is accepted).

    >>> client_message('{"type":"resync"}'), client_message("resync"), client_message("{]")
    ('resync', 'resync', None)
    >>> client_message("[" * 100_000)  # too deep for the parser: garbage like any other
    """
    if text == "resync":
        return text
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None
    kind = msg.get("type") if isinstance(msg, dict) else None
    return kind if isinstance(kind, str) else None


def wall_routes(
    state: WallState,
    hub: Hub,
    *,
    client_queue: int = 256,
    clock: Clock | None = None,
    authorize: Authorize | None = None,
    heartbeat_seconds: float = 2.0,
    send_timeout: float = 10.0,
    sockets: MutableSet[web.WebSocketResponse] | None = None,
) -> list[web.RouteDef]:
    """Routes for ``/``, ``/static/{name}`` and ``/ws``.

    `clock` stamps snapshots and heartbeats so walls show ages and countdowns in service time
    (the demo runs faster than real time); without it the newest time seen in data is used.
    `authorize` checks viewer tokens; None leaves the wall open (local demo).
    `sockets` collects open walls (authorized ones only) so a shutdown hook can close them
    (`close_walls`): otherwise aiohttp waits its whole shutdown timeout for these never-ending
    handlers. Its size is the number of walls (the hub's subscribers include the MQTT
    publisher too).
    """
    static = resources.files("dashboards") / "static"
    # A client queue longer than the frame cache could hold messages whose frame was evicted;
    # such a client would then be resynced. Keep them consistent.
    client_queue = min(client_queue, state.frame_cache)

    def now() -> float | None:
        return clock.now() if clock is not None else None

    def allowed(request: web.Request) -> bool:
        return authorize is None or authorize(request.query.get("token"))

    async def index(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.Response(
                status=401,
                text="<!doctype html><title>crisiswatch</title><h1>401: viewer token required</h1>"
                "<p>Open the wall as <code>/?token=VIEWER_TOKEN</code>.</p>",
                content_type="text/html",
            )
        return web.Response(
            text=(static / "index.html").read_text("utf-8"),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        ext = name[name.rfind(".") :] if "." in name else ""
        path = static / name
        if "/" in name or name.startswith(".") or ext not in _TYPES or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            text=path.read_text("utf-8"),
            content_type=_TYPES[ext],
            headers={"Cache-Control": "no-cache"},
        )

    async def send(ws: web.WebSocketResponse, frame: str) -> None:
        # A wall that stopped reading must not hold its pump (and memory) forever.
        # (asyncio.timeout, not wait_for: no task per frame, which matters at 500 walls)
        async with asyncio.timeout(send_timeout):
            await ws.send_str(frame)

    # One ticker for all walls puts a heartbeat marker in every queue: cheaper than a timer
    # per wall, and the marker keeps frames in order behind the deltas already queued.
    subs: set[Subscription] = set()
    ticker: list[asyncio.Task[None]] = []

    async def tick() -> None:
        while subs:
            await asyncio.sleep(heartbeat_seconds)
            for sub in list(subs):
                # a full queue is a wall already behind: a marker would only evict a delta
                # (a counted drop) and the pump has plenty to wake it
                if not sub.full:
                    sub.offer(HEARTBEAT)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        if not allowed(request):
            err = {"v": PROTOCOL_VERSION, "type": "error", "code": "unauthorized"}
            await ws.send_str(encode(err))
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"viewer token required")
            return ws
        if sockets is not None:
            sockets.add(ws)
        with hub.subscribe(client_queue) as sub:
            # subscribe and snapshot with no await in between: nothing published is missed
            first = state.snapshot_frame("connect", now(), heartbeat=heartbeat_seconds)
            first_seq = state.seq
            subs.add(sub)
            if not ticker or ticker[0].done():
                ticker[:] = [asyncio.create_task(tick())]

            async def pump() -> None:
                try:
                    await stream()
                except BaseException:
                    # A send that failed (timeout, reset; or a CancelledError that is not ours:
                    # aiohttp shares one drain future between writers, and a timed-out close
                    # elsewhere cancels it). The unsent bytes of a wall that stopped reading
                    # would keep a graceful close, this handler, its queue and socket waiting
                    # forever: drop the TCP connection, which ends the reader below too.
                    me = asyncio.current_task()
                    if not (me and me.cancelling()) and request.transport is not None:
                        request.transport.abort()
                    raise
                finally:
                    await ws.close()

            async def stream() -> None:
                await send(ws, first)
                seq, reported = first_seq, 0
                loop = asyncio.get_running_loop()
                last_snapshot = loop.time()
                async for _topic, msg in sub:
                    marker = msg is HEARTBEAT[1] or msg is RESYNC[1]
                    hit = None if marker else state.frame(msg)
                    lost = sub.dropped > reported
                    # a snapshot is ~0.5 MB: one a client asks for comes at most once per
                    # heartbeat interval (a client asking in a loop was sent 265 MB/s; QA)
                    asked = sub.resync and loop.time() - last_snapshot >= heartbeat_seconds
                    if lost or asked or (hit is None and not marker):
                        reason = "dropped" if lost else "requested"
                        reported, sub.resync = sub.dropped, False
                        sub.drain()
                        snap = state.snapshot_frame(reason, now(), sub.dropped, heartbeat_seconds)
                        last_snapshot = loop.time()
                        hit = (state.seq, snap)
                    elif msg is HEARTBEAT[1]:
                        await send(ws, state.heartbeat_frame(now(), seq))
                        continue
                    elif hit is None:
                        continue  # asked too soon after the last snapshot: a heartbeat serves it
                    seq = hit[0]
                    await send(ws, hit[1])

            sender = asyncio.create_task(pump())
            try:
                async for m in ws:
                    # the pump owns the socket; asking it to resync keeps frames in order. One
                    # request pending at a time, and a marker only to wake an idle pump: 500
                    # requests used to fill the queue and count as drops (QA)
                    if (
                        m.type == WSMsgType.TEXT
                        and client_message(m.data) == "resync"
                        and not sub.resync
                    ):
                        sub.resync = True
                        if not sub.queued:
                            sub.offer(RESYNC)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
                subs.discard(sub)
                if sockets is not None:
                    sockets.discard(ws)
        return ws

    return [
        web.get("/", index),
        web.get("/static/{name}", asset),
        web.get("/ws", websocket),
    ]


async def close_walls(sockets: MutableSet[web.WebSocketResponse], timeout: float = 5.0) -> None:
    """Close every open wall with 1001 (going away); walls reconnect with backoff and resync.

    Wire as ``web_app.on_shutdown.append(lambda _: close_walls(sockets))``. All at once and
    each within `timeout`: a wall whose socket no longer drains (a laptop asleep) must not
    hold up shutdown nor the others' close frames; its own handler then drops it.
    """

    async def close(ws: web.WebSocketResponse) -> None:
        async with asyncio.timeout(timeout):
            await ws.close(code=1001, message=b"server shutting down")

    # return_exceptions: also keeps a close whose drain future another writer cancelled from
    # cancelling the shutdown hook itself
    await asyncio.gather(*(close(ws) for ws in list(sockets)), return_exceptions=True)
    sockets.clear()


async def run_live(
    hub: Hub,
    read: Callable[[], dict[str, Any]],
    *,
    interval: float = 0.25,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> None:
    """Publish ``live`` (see `live_view`) every `interval` seconds of real time when it changed.

    This is what makes a single mention visible on the wall within a second: closed buckets
    arrive only once per bucket width. Real (not service) time: it is a screen refresh rate.
    """
    last: dict[str, Any] | None = None
    while True:
        await sleep(interval)
        cur = read()
        if cur != last:
            hub.publish("live", cur)
            last = cur
