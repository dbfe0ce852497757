"""The HTTP surface of the kernel: /metrics, /healthz, /api/v1/incidents, plus mounted routes.

Routes owned by other packages (the wall, ingest webhooks, the incident actions API) are
passed in by the composition root; this module knows none of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Health = Callable[[], Awaitable[dict[str, Any]]]
IncidentList = Callable[[bool, int], Awaitable[list[dict[str, Any]]]]
#: raises (401) when the request may not read incidents
ReadGuard = Callable[[web.Request], None]
MAX_LIST = 1000


class AccessLog(AbstractAccessLogger):
    """aiohttp's access line without secrets: a kiosk wall opens ``/?token=…`` and every asset
    it loads repeats that URL as its Referer, so the default line logged the viewer token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %s %.3fs',
            request.remote,
            request.method,
            request.rel_url.without_query_params("token"),
            response.status,
            response.body_length,
            time,
        )


def bad_request(reason: str) -> web.HTTPBadRequest:
    """A 400 whose body is JSON ``{"error": reason}``, like every error of the REST API, so a
    client can read ``error`` from any of them."""
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def list_params(query: Mapping[str, str]) -> tuple[bool, int]:
    """``(open_only, limit)`` of ``?state=open|all&limit=N``; a bad value is a 400 naming it.

    >>> list_params({}), list_params({"state": "open", "limit": "5"})
    ((False, 200), (True, 5))
    """
    state = query.get("state", "all")
    if state not in ("open", "all"):
        raise bad_request(f"state: expected open or all (got {state[:40]!r})")
    raw = query.get("limit", "200")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST:
        raise bad_request(f"limit: expected an integer from 1 to {MAX_LIST} (got {raw[:40]!r})")
    return state == "open", limit


def build_web_app(
    *,
    registry: CollectorRegistry,
    health: Health,
    incidents: IncidentList,
    routes: Sequence[web.RouteDef] = (),
    max_body_bytes: int = 4 * 1024 * 1024,
    may_read: ReadGuard | None = None,
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("ok", True) else 503)

    async def list_incidents(request: web.Request) -> web.Response:
        if may_read is not None:
            may_read(request)
        open_only, limit = list_params(request.query)
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
