"""The HTTP surface of the kernel: /metrics, /healthz, /api/v1/incidents, plus mounted routes.

Routes owned by other packages (the wall, ingest webhooks, the incident actions API) are
passed in by the composition root; this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Health = Callable[[], Awaitable[dict[str, Any]]]
IncidentList = Callable[[bool, int], Awaitable[list[dict[str, Any]]]]


def build_web_app(
    *,
    registry: CollectorRegistry,
    health: Health,
    incidents: IncidentList,
    routes: Sequence[web.RouteDef] = (),
    max_body_bytes: int = 4 * 1024 * 1024,
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("ok", True) else 503)

    async def list_incidents(request: web.Request) -> web.Response:
        open_only = request.query.get("state") == "open"
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "200"))))
        except ValueError:
            raise web.HTTPBadRequest(text="limit: expected an integer") from None
        return web.json_response({"incidents": await incidents(open_only, limit)})

    app = web.Application(client_max_size=max_body_bytes)
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
            web.get("/api/v1/incidents", list_incidents),
            *routes,
        ]
    )
    return app
