"""The wall's HTTP and websocket shell: page, static assets, `/ws` (protocol v2, docs/wall.md).

One websocket per wall: a snapshot on connect, then deltas of what its tiles show (the topics of
``/ws?topics=``, see `dashboards.view`). The hub never waits for a client: each client has a
bounded drop-oldest queue, filled by the `WallState` listener; a client that fell behind gets a
fresh snapshot (``reason: "dropped"``) instead of the messages it missed, and one whose tiles
changed gets one too (``reason: "tiles"``). A client whose socket does not drain within
`send_timeout` is disconnected (its wall reconnects and resyncs).

Kiosk screens authenticate with a viewer token in the URL (``/?token=...``); the page passes it
on to ``/ws?token=...`` (other clients may send ``Authorization: Bearer``). Acknowledging is done
by the incident actions API with a responder's bearer token, entered on the wall (never put in
the URL). ``/ws`` refuses a browser page of another origin (cross-site websocket hijacking).

A wall that reads more slowly than the hub publishes is found by pings: the kernel's socket
buffers hold megabytes of deltas, so its queue would never overflow while it fell minutes
behind. A ping not answered within `max_lag` means the wall is that far behind: it is sent
nothing until it has read all that was sent (its queue overflows meanwhile), then it gets the
``dropped`` snapshot. One that answers no ping for `stall_seconds` while it lags stopped
reading: it is disconnected (logged, and counted when a registry is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Collection, MutableSet
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry, Counter
from yarl import URL

from dashboards.view import (
    PROTOCOL_VERSION,
    TILES,
    WallState,
    encode,
    live_view,
    parse_selection,
    parse_version,
)
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
CLOSE_TRY_LATER = 1013

log = logging.getLogger(__name__)

# The page needs its own script, stylesheet and websocket, and a `data:` favicon; nothing
# inline, nothing from elsewhere. `connect-src 'self'` covers ws:/wss: to the same host (CSP 3).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a kiosk's ?token= must not leave in a Referer
}

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


def origin_key(origin: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an Origin, None for one that is not a web origin.

    >>> origin_key("HTTPS://Wall.Example"), origin_key("http://[::1]:8080")
    (('https', 'wall.example', 443), ('http', '::1', 8080))
    >>> origin_key("null"), origin_key("http://[::1")
    (None, None)
    """
    try:
        url = URL(origin)
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url.scheme, url.host.lower(), url.port


def same_host(origin: str, host: str) -> bool:
    """Is a page of `origin` served by this server, reached as `host` (the Host header)?

    The scheme is the origin's: behind a TLS proxy the request arrives as http.

    >>> same_host("http://wall:8080", "WALL:8080"), same_host("https://wall", "wall")
    (True, True)
    >>> same_host("https://wall", "wall:8443"), same_host("http://evil", "wall")
    (False, False)
    """
    key = origin_key(origin)
    return key is not None and key == origin_key(f"{key[0]}://{host}")


def bearer_token(request: web.Request) -> str | None:
    """The token of ``?token=`` (the kiosk page) or of an ``Authorization: Bearer`` header."""
    if token := request.query.get("token"):
        return token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class Stalled(Exception):
    """A wall that lags answered no ping for ``stall_seconds``: it stopped reading."""


class Pings:
    """The pings a wall has not answered yet. Each went out behind every frame sent before it,
    so the age of the oldest is how far behind the wall reads, and a pong is progress."""

    def __init__(self) -> None:
        self.out: deque[tuple[bytes, float]] = deque()
        self.count = 0
        self.answered = asyncio.Event()

    def start(self, now: float) -> bytes:
        self.count += 1
        payload = str(self.count).encode()
        self.out.append((payload, now))
        return payload

    def pong(self, data: bytes) -> None:
        # an unsolicited pong (RFC 6455 allows them) says nothing of the lag
        if any(p == data for p, _ in self.out):
            while self.out.popleft()[0] != data:
                pass
            self.answered.set()

    def lag(self, now: float) -> float:
        """Seconds the oldest unanswered ping has waited (0 with none)."""
        return now - self.out[0][1] if self.out else 0.0


def wall_routes(
    state: WallState,
    *,
    client_queue: int = 256,
    clock: Clock | None = None,
    authorize: Authorize | None = None,
    heartbeat_seconds: float = 2.0,
    send_timeout: float = 10.0,
    sockets: MutableSet[web.WebSocketResponse] | None = None,
    origins: Collection[str] = (),
    max_lag: float = 10.0,
    stall_seconds: float = 20.0,
    registry: CollectorRegistry | None = None,
    on_drop: Callable[[], None] | None = None,
) -> list[web.RouteDef]:
    """Routes for ``/``, ``/static/{name}`` and ``/ws``.

    Walls are fed by `state` (a listener of the hub: each wall's queue gets only the frames of
    its selection). `on_drop` is called for each frame a wall's full
    queue drops (``crisiswatch_hub_dropped_messages_total``).

    `clock` stamps snapshots and heartbeats so walls show ages and countdowns in service time
    (the demo runs faster than real time); without it the newest time seen in data is used.
    `authorize` checks viewer tokens; None leaves the wall open (local demo).
    `sockets` collects open walls (authorized ones only) so a shutdown hook can close them
    (`close_walls`): otherwise aiohttp waits its whole shutdown timeout for these never-ending
    handlers. Its size is the number of walls (the hub's subscribers include the MQTT
    publisher too).
    `origins` are the browser origins allowed besides the one the request reached (a reverse
    proxy that rewrites Host). A wall whose oldest ping is unanswered for `max_lag` seconds is
    sent nothing until it answers them all (then a snapshot); one that answers none for
    `stall_seconds` meanwhile is disconnected.
    `registry` gets ``crisiswatch_wall_disconnects_total{reason}``.
    """
    static = resources.files("dashboards") / "static"

    def now() -> float | None:
        return clock.now() if clock is not None else None

    extra_origins = {k for o in origins if (k := origin_key(o)) is not None}
    disconnects = Counter(
        "crisiswatch_wall_disconnects_total",
        "Walls the server disconnected because they stopped reading: no_pong (lagging, "
        "no ping answered for stall_seconds), send_timeout (a frame not taken in time).",
        ["reason"],
        registry=registry,
    )
    for reason in ("no_pong", "send_timeout"):
        disconnects.labels(reason)

    def allowed(request: web.Request) -> bool:
        return authorize is None or authorize(bearer_token(request))

    def origin_allowed(request: web.Request) -> bool:
        # Browsers always send Origin on a websocket handshake; only a page served here (or
        # a configured one) may read the wall with the screen's token or an open demo's data.
        # No Origin: not a browser, so no page riding on someone else's network or cookies.
        origin = request.headers.get("Origin")
        return (
            origin is None
            or same_host(origin, request.host)
            or (origin_key(origin) in extra_origins)
        )

    async def index(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.Response(
                status=401,
                text="<!doctype html><title>crisiswatch</title><h1>401: viewer token required</h1>"
                "<p>Open the wall as <code>/?token=VIEWER_TOKEN</code>.</p>",
                content_type="text/html",
                headers=PAGE_HEADERS,
            )
        return web.Response(
            text=(static / "index.html").read_text("utf-8"),
            content_type="text/html",
            headers=PAGE_HEADERS,
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
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
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

    refused: set[str] = set()  # origins already logged (a refused page retries forever)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        if not origin_allowed(request):
            origin = request.headers.get("Origin", "")
            if origin not in refused and len(refused) < 100:
                refused.add(origin)
                log.warning(
                    "/ws refused to a page of origin %r (this host: %r); a wall behind a proxy "
                    "that rewrites Host needs its origin in server.wall_origins",
                    origin[:200],
                    request.host[:200],
                )
            raise web.HTTPForbidden(text="websocket from a page of another origin")
        # No aiohttp heartbeat: its ping waited behind the frames queued for a slow wall and
        # its 10 s pong timeout cut that wall off (QA); our pings below measure the lag instead.
        ws = web.WebSocketResponse(autoping=False, max_msg_size=64 * 1024)
        await ws.prepare(request)
        version = parse_version(request.query.get("v"))  # the page asks for 2
        if not allowed(request):
            err = {"v": version, "type": "error", "code": "unauthorized"}
            await ws.send_str(encode(err))
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"viewer token required")
            return ws
        selection = parse_selection(",".join(request.query.getall("topics", [])))
        if not state.may_watch(selection, version):
            err = {"v": version, "type": "error", "code": "too_many_selections"}
            await ws.send_str(encode(err))
            await ws.close(code=CLOSE_TRY_LATER, message=b"too many distinct selections")
            return ws
        if sockets is not None:
            sockets.add(ws)
        loop = asyncio.get_running_loop()
        pings = Pings()
        with state.watch(selection, client_queue, on_drop, version) as (view, sub):
            # watch and snapshot with no await in between: nothing published is missed
            first = state.snapshot_frame("connect", now(), 0, heartbeat_seconds, view)
            first_seq = view.seq
            subs.add(sub)
            if not ticker or ticker[0].done():
                ticker[:] = [asyncio.create_task(tick())]

            async def pump() -> None:
                try:
                    await stream()
                except BaseException as exc:
                    # A send that failed (timeout, reset; or a CancelledError that is not ours:
                    # aiohttp shares one drain future between writers, and a timed-out close
                    # elsewhere cancels it). The unsent bytes of a wall that stopped reading
                    # would keep a graceful close, this handler, its queue and socket waiting
                    # forever: drop the TCP connection, which ends the reader below too.
                    me = asyncio.current_task()
                    if not (me and me.cancelling()):
                        if isinstance(exc, Stalled | TimeoutError):
                            reason = "no_pong" if isinstance(exc, Stalled) else "send_timeout"
                            disconnects.labels(reason).inc()
                            log.warning("wall %s disconnected: %s", request.remote, exc or reason)
                        if request.transport is not None:
                            request.transport.abort()
                    raise
                finally:
                    await ws.close()

            async def stream() -> None:
                await send(ws, first)
                seq, reported = first_seq, 0
                last_snapshot = loop.time()
                retiled = False  # its tiles changed since its last snapshot
                async for kind, item in sub:
                    lagged = pings.lag(loop.time()) > max_lag
                    if lagged:
                        # behind by more than max_lag: feed it nothing (its queue overflows,
                        # counting the drops) until it read all that was sent, then resync.
                        # This ping goes behind all of it; a pong is progress.
                        async with asyncio.timeout(send_timeout):
                            await ws.ping(pings.start(loop.time()))
                        while pings.out:
                            pings.answered.clear()
                            try:
                                async with asyncio.timeout(stall_seconds):
                                    await pings.answered.wait()
                            except TimeoutError:
                                why = f"read nothing for {stall_seconds:.0f} s (no pong)"
                                raise Stalled(why) from None
                    retiled = retiled or kind == TILES[0]
                    lost = sub.dropped > reported
                    # a snapshot is ~0.5 MB: one a client asks for (or its tiles need) comes at
                    # most once per heartbeat interval (a client asking in a loop was sent
                    # 265 MB/s; QA); meanwhile its deltas go on, in order
                    due = loop.time() - last_snapshot >= heartbeat_seconds
                    if lost or lagged or ((sub.resync or retiled) and due):
                        reason = (
                            "dropped" if lost or lagged else "tiles" if retiled else "requested"
                        )
                        reported, sub.resync, retiled = sub.dropped, False, False
                        sub.drain()
                        snap = state.snapshot_frame(
                            reason, now(), sub.dropped, heartbeat_seconds, view
                        )
                        last_snapshot = loop.time()
                        seq = view.seq
                        await send(ws, snap)
                    elif item is HEARTBEAT[1]:
                        await send(ws, state.heartbeat_frame(now(), seq, version))
                        # behind the frames sent so far: its pong says the wall read them
                        async with asyncio.timeout(send_timeout):
                            await ws.ping(pings.start(loop.time()))
                    elif kind == "delta":
                        seq = item["seq"]
                        await send(ws, item["text"])
                    # else a request or retiling too soon after the last snapshot: a heartbeat
                    # serves it

            sender = asyncio.create_task(pump())
            try:
                async for m in ws:
                    # the pump owns the socket; asking it to resync keeps frames in order. One
                    # request pending at a time, and a marker only to wake an idle pump: 500
                    # requests used to fill the queue and count as drops (QA)
                    if m.type == WSMsgType.PONG:
                        pings.pong(m.data)
                    elif m.type == WSMsgType.PING:
                        async with asyncio.timeout(send_timeout):
                            await ws.pong(m.data)
                    elif (
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
