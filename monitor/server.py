"""The HTTP surface of the kernel: /metrics, /healthz, /livez, /api/v1/incidents, plus mounted
routes.

Routes owned by other packages (the wall, ingest webhooks, the incident actions API) are
passed in by the composition root; this module knows none of them.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from yarl import URL

from monitor.outage import Outage

Health = Callable[[], Awaitable[dict[str, Any]]]
IncidentList = Callable[[bool, int], Awaitable[list[dict[str, Any]]]]
#: raises (401) when the request may not read incidents
ReadGuard = Callable[[web.Request], None]
MAX_LIST = 1000


_SECRET_PARAM = re.compile(r"token|key|secret|passw|signature|auth", re.IGNORECASE)


def without_secrets(url: URL) -> URL:
    """``url`` without what may hold a secret: query parameters named like a token, key,
    secret, password or signature (the wall's ``token``, Meta's ``hub.verify_token``), and the
    signed capability of a one-click link's path (``/act/<token>`` acknowledges an incident).

    >>> str(without_secrets(URL("/w?hub.mode=subscribe&hub.verify_token=s3&hub.challenge=4")))
    '/w?hub.mode=subscribe&hub.challenge=4'
    >>> str(without_secrets(URL("/?token=t&api_key=k&Password=p&limit=5")))
    '/?limit=5'
    >>> str(without_secrets(URL("/act/djF8YWNrfGluYy0x.c2ln")))
    '/act/...'
    """
    if url.path.startswith("/act/"):
        return URL("/act/...")
    names = {k for k in url.query if _SECRET_PARAM.search(k)}
    return url.without_query_params(*names) if names else url


#: A handler sets this on its request to have its successful access lines logged at DEBUG:
#: a push endpoint fed one mention per request (Meta webhooks, a single-item client) logged a
#: line per mention (QA).
ROUTINE = web.RequestKey("routine", bool)


class AccessLog(AbstractAccessLogger):
    """aiohttp's access line without secrets: a kiosk wall opens ``/?token=…`` and every asset
    it loads repeats that URL as its Referer, so the default line logged the viewer token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # a scrape every 15 s (Prometheus, a load balancer's health check) buried the log
        routine = request.path in ("/metrics", "/healthz", "/livez") or request.get(ROUTINE, False)
        quiet = routine and response.status < 400
        self.logger.log(
            logging.DEBUG if quiet else logging.INFO,
            '%s "%s %s" %d %s %.3fs',
            request.remote,
            request.method,
            without_secrets(request.rel_url),
            response.status,
            response.body_length,
            time,
        )


class ClientErrorsInShort(logging.Filter):
    """A request aiohttp cannot parse (a URL or header over 8,190 bytes, a malformed line) is
    the client's mistake, not ours: one warning naming the error, without the traceback,
    whose message quotes the raw request line, ``?token=`` and ``Authorization`` included."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.msg}: {type(exc).__name__} (answered {exc.code})"
            record.exc_info = record.exc_text = None
            record.levelno = min(record.levelno, logging.WARNING)  # keep a DEBUG one quiet
            record.levelname = logging.getLevelName(record.levelno)
        return True


class OutOfFilesInShort(logging.Filter):
    """asyncio's "socket.accept() out of system resource" (no file descriptor left: a flood of
    connections that never finish their request) once a minute, without the traceback: it
    logged 313,687 lines, 139 MB in two minutes (QA)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock, self._outage = clock, Outage(remind_seconds=60.0)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)):
            return True
        if self._outage.failed(self._clock()) < logging.WARNING:
            return False
        record.msg = f"{record.getMessage()}: {exc} ({self._outage.failures} times so far)"
        record.args, record.exc_info, record.exc_text = None, None, None
        return True


def _server_log() -> logging.Logger:
    """aiohttp's connection-level logger for this app (``handler_args``), with the filters
    above (added once, however many apps are built)."""
    logger = logging.getLogger(__name__)
    if not any(isinstance(f, ClientErrorsInShort) for f in logger.filters):
        logger.addFilter(ClientErrorsInShort())
    loop_log = logging.getLogger("asyncio")
    if not any(isinstance(f, OutOfFilesInShort) for f in loop_log.filters):
        loop_log.addFilter(OutOfFilesInShort())
    return logger


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors under ``/api/`` are JSON ``{"error": ...}`` like the API's own, also the router's
    404 and 405, aiohttp's 413 and a bug's 500 (logged with its traceback); the wall's pages
    keep aiohttp's plain ones."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if (
            exc.status < 400
            or exc.content_type == "application/json"
            or not request.path.startswith("/api/")
        ):
            raise
        headers = exc.headers.copy()
        headers.popall("Content-Type", None)
        error = (exc.text or "").removeprefix(f"{exc.status}: ") or exc.reason
        return web.json_response({"error": error}, status=exc.status, headers=headers)
    except Exception as exc:
        # a client that went away mid-answer is not our bug: aiohttp's own quiet handling
        if not request.path.startswith("/api/") or isinstance(exc, ConnectionResetError):
            raise
        # the path only: a query string may hold a token
        _server_log().exception("unhandled error on %s %r", request.method, request.path)
        return web.json_response({"error": "internal error (logged)"}, status=500)


def bad_request(reason: str) -> web.HTTPBadRequest:
    """A 400 whose body is JSON ``{"error": reason}``, like every error of the REST API, so a
    client can read ``error`` from any of them."""
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def list_params(query: Mapping[str, str]) -> tuple[bool, int]:
    """``(open_only, limit)`` of ``?state=open|all&limit=N``; a bad value is a 400 naming it.

    >>> list_params({}), list_params({"state": "open", "limit": "5"})
    ((False, 200), (True, 5))
    >>> list_params({"limit": " 500 "})
    Traceback (most recent call last):
    ...
    aiohttp.web_exceptions.HTTPBadRequest: Bad Request
    """
    state = query.get("state", "all")
    if state not in ("open", "all"):
        raise bad_request(f"state: expected open or all (got {state[:40]!r})")
    raw = query.get("limit", "200")
    # ASCII digits only: int() also takes " 500 ", "+5", "1_0" and other scripts' digits
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
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

    async def livez(_: web.Request) -> web.Response:
        # for a liveness probe: /healthz is 503 for troubles a restart does not mend (a broker
        # down, a full disk), and restarting on it lost what was held in memory (QA)
        return web.json_response({"ok": True})

    async def list_incidents(request: web.Request) -> web.Response:
        if may_read is not None:
            may_read(request)
        open_only, limit = list_params(request.query)
        return web.json_response({"incidents": await incidents(open_only, limit)})

    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[json_errors],
        handler_args={"logger": _server_log()},
    )
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
            web.get("/livez", livez),
            web.get("/api/v1/incidents", list_incidents),
            *routes,
        ]
    )
    return app
