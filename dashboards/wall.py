"""The wall's view model and its websocket: snapshot on connect, then deltas.

Protocol v1 (server -> client JSON text frames):
  {"v": 1, "type": "snapshot", "data": {...}}   on connect and after a resync
  {"v": 1, "type": "delta", "topic": "series"|"incident"|"source"|..., "data": {...}}
The hub never waits for a client: each client has a bounded drop-oldest queue; a client that
fell behind gets a fresh snapshot instead of the messages it missed.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from monitor.hub import Hub

PROTOCOL_VERSION = 1


class WallState:
    """What a newly connected wall needs: recent series per topic, incidents, sources."""

    def __init__(self, topics: list[dict[str, Any]], history: int = 240) -> None:
        self.topics = topics
        self.series: dict[str, deque[dict[str, Any]]] = {
            t["name"]: deque(maxlen=history) for t in topics
        }
        self.incidents: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        if topic == "series":
            self.series.setdefault(msg["topic"], deque(maxlen=240)).append(msg)
        elif topic == "incident":
            inc = msg["incident"]
            self.incidents[inc["id"]] = inc
            if len(self.incidents) > 200:  # keep the newest; resolved ones age out first
                oldest = min(self.incidents.values(), key=lambda i: i["updated_at"])
                self.incidents.pop(oldest["id"], None)
        elif topic == "source":
            self.sources[msg["name"]] = msg
        else:
            self.extra[topic] = msg

    def snapshot(self) -> dict[str, Any]:
        return {
            "topics": self.topics,
            "series": {k: list(v) for k, v in self.series.items()},
            "incidents": sorted(self.incidents.values(), key=lambda i: -i["updated_at"]),
            "sources": list(self.sources.values()),
            **self.extra,
        }


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"v": PROTOCOL_VERSION, "type": kind, **fields}, separators=(",", ":"))


def wall_routes(
    state: WallState,
    hub: Hub,
    *,
    client_queue: int = 256,
    on_client: Callable[[int], None] | None = None,
) -> list[web.RouteDef]:
    static = resources.files("dashboards") / "static"

    async def index(_: web.Request) -> web.Response:
        return web.Response(
            text=(static / "index.html").read_text("utf-8"), content_type="text/html"
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        ext = name[name.rfind(".") :] if "." in name else ""
        path = static / name
        if "/" in name or ext not in types or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(text=path.read_text("utf-8"), content_type=types[ext])

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        with hub.subscribe(client_queue) as sub:
            if on_client:
                on_client(hub.subscribers)
            await ws.send_str(_frame("snapshot", data=state.snapshot()))

            async def pump() -> None:
                async for topic, msg in sub:
                    if sub.resync:
                        sub.resync = False
                        sub.drain()
                        await ws.send_str(_frame("snapshot", data=state.snapshot()))
                        continue
                    await ws.send_str(_frame("delta", topic=topic, data=msg))

            sender = asyncio.create_task(pump())
            try:
                async for m in ws:  # the client may only ask for a resync
                    if m.type == WSMsgType.TEXT and m.data == "resync":
                        await ws.send_str(_frame("snapshot", data=state.snapshot()))
            finally:
                sender.cancel()
        if on_client:
            on_client(hub.subscribers)
        return ws

    return [
        web.get("/", index),
        web.get("/static/{name}", asset),
        web.get("/ws", websocket),
    ]
