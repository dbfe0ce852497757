"""``POST /api/v1/mentions``: JSON object, JSON array or NDJSON, with per-item results.

One bad item never sinks the batch: each item is validated on its own, accepted ones go into
the pipeline, rejected ones go to the dead-letter store, and the response lists every item's
fate. Status: 200 all accepted (duplicates count as accepted), 207 some rejected, 422 all
rejected or no item at all (an empty batch is a client bug worth seeing), 400 body
unparseable, 401 bad/missing token, 413 body too large.

Load shedding: a request is taken whole or not at all. While `max_waiting` requests already
wait for room in a full pipeline, another is refused with 503 and ``Retry-After`` before any
of its items is taken (no dead letter, no dedup entry, nothing queued), so resending the same
body is safe; an admitted request is answered only once all its items are queued.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Intake, Secret, metrics_for, payload_bytes, read_body
from monitor.config.sources import HttpIngestConfig
from monitor.decode import decode_mention, loads
from monitor.errors import DecodeError
from monitor.model import Mention
from monitor.server import ROUTINE

PATH = "/api/v1/mentions"
_NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/json-seq",
)
#: Requests that may wait at once for room in the pipeline; each holds up to `max_items`
#: parsed mentions, so this bounds what a slow pipeline and retrying clients can pile up.
MAX_WAITING = 4
RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a request body: its value, or why it could not even be parsed."""

    index: int
    value: object
    raw: bytes
    error: DecodeError | None = None


def split_body(raw: bytes, content_type: str, *, max_item_bytes: int) -> Iterator[Item]:
    """A request body -> its items. Raises DecodeError only when nothing can be salvaged.

    >>> [i.value for i in split_body(b'[{"a":1},2]', "application/json", max_item_bytes=99)]
    [{'a': 1}, 2]
    >>> [(i.value, i.error and i.error.reason) for i in
    ...  split_body(b'{"a":1}\\n{oops\\n', "application/x-ndjson", max_item_bytes=99)]
    [({'a': 1}, None), (None, 'malformed_json')]
    >>> list(split_body(b'{\\n "a": 1,\\n}', "application/json", max_item_bytes=99))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    monitor.errors.DecodeError: malformed_json: Expecting property name ... at position 11
    """
    # RFC 8259 lets a parser ignore a byte order mark; Windows tools write one
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    ndjson = content_type.split(";")[0].strip().lower() in _NDJSON_TYPES
    if not ndjson:
        try:
            doc = loads(raw, max_bytes=len(raw) + 1)
        except DecodeError as err:
            # `{..}\n{..}` sent as application/json is NDJSON in practice; accept it as such,
            # but only if its first line is a document: a pretty-printed one with a typo
            # would become one error per line instead of the one that says what is wrong
            if (
                err.reason not in ("malformed_json", "invalid_utf8")
                or b"\n" not in raw.strip()
                or not _is_json(raw.strip().split(b"\n", 1)[0])
            ):
                raise
            ndjson = True
        else:
            # an item's size is the bytes sent for a single document (as for an NDJSON line or
            # an MQTT message), its compact JSON inside an array; untruncated, or a 400 KB item
            # would pass as 64 KiB
            items = doc if isinstance(doc, list) else [doc]
            for i, value in enumerate(items):
                rawi = payload_bytes(value, limit=None) if items is doc else raw.strip()
                if len(rawi) > max_item_bytes:
                    big = DecodeError("oversize", f"item of {len(rawi)} bytes > {max_item_bytes}")
                    yield Item(i, None, rawi[:max_item_bytes], big)
                else:
                    yield Item(i, value, rawi)
            return
    index = 0
    for line in raw.split(b"\n"):
        line = line.strip(b"\r\t \x1e")  # \x1e: RFC 7464 json-seq record separator
        if not line:
            continue
        try:
            yield Item(index, loads(line, max_bytes=max_item_bytes), line)
        except DecodeError as err:
            yield Item(index, None, line[:max_item_bytes], err)
        index += 1


def _is_json(line: bytes) -> bool:
    try:
        loads(line.strip(b"\r\t \x1e"), max_bytes=len(line) + 1)
    except DecodeError:
        return False
    return True


def bearer_ok(header: str | None, token: Secret) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header.

    >>> bearer_ok("Bearer s3cret", Secret("s3cret")), bearer_ok("Bearer nope", Secret("s3cret"))
    (True, False)
    >>> bearer_ok(None, Secret("s3cret"))
    False
    """
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # aiohttp hands non-UTF-8 header bytes over as surrogate escapes: turn them back into the
    # bytes that were sent (a plain .encode() would raise, a 500 instead of a 401)
    return hmac.compare_digest(
        value.strip().encode("utf-8", "surrogateescape"), token.reveal().encode()
    )


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None if it is longer than `limit` (stops reading there)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    return await read_body(request.content, limit)


class MentionIngest:
    """The HTTP ingest endpoint; `health` is its source health (a push source)."""

    def __init__(
        self,
        cfg: HttpIngestConfig,
        ctx: SourceContext,
        token: Secret | None,
        *,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.intake = Intake(cfg.name, "http", ctx, stale_after=cfg.stale_after_seconds or math.inf)
        self.health: SourceHealth = self.intake.health
        self.token = token
        # a push endpoint is "connected" while it can accept: i.e. its token is configured
        self.intake.set_connected(token is not None)
        self._metrics = metrics_for(ctx.registry)
        self._allowed = frozenset(cfg.allowed_sources)
        self._max_waiting = max(1, max_waiting)
        self._waiting = 0  # admitted requests still queueing their items

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        request[ROUTINE] = True  # an accepted push is no news in the log: one per mention
        if self.token is None:
            return json_error(503, f"ingest token not configured (set ${self.cfg.token_env})")
        if not bearer_ok(request.headers.get("Authorization"), self.token):
            self._metrics.auth_failures.labels(self.cfg.name, "token").inc()
            return web.json_response(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if self._waiting >= self._max_waiting:
            return self._refuse()  # before reading the body: shedding should cost nothing
        try:
            raw = await read_limited(request, self.cfg.max_body_bytes)
        except web.RequestPayloadError as exc:
            return self._undecodable(request, exc)
        if raw is None:
            self.intake.reject("oversize", f"body > {self.cfg.max_body_bytes} bytes", b"")
            return json_error(413, f"body larger than {self.cfg.max_body_bytes} bytes")
        items: list[Item] = []
        try:
            for it in split_body(raw, request.content_type, max_item_bytes=self.cfg.max_item_bytes):
                items.append(it)
                if len(items) > self.cfg.max_items:
                    # refused anyway: reading on (millions of tiny items fit in the body
                    # limit) would hold the event loop for seconds
                    break
        except DecodeError as err:
            self.intake.reject_error(err, raw[: self.cfg.max_item_bytes])
            return json_error(400, str(err))
        if len(items) > self.cfg.max_items:
            self.intake.reject("oversize", f"more than {self.cfg.max_items} items", b"")
            return json_error(413, f"more than {self.cfg.max_items} items")
        checked = [(item, self._check(item)) for item in items]
        # decided here, with nothing awaited until the count is taken: all or nothing
        if self._waiting >= self._max_waiting:
            return self._refuse()
        self._waiting += 1
        try:
            results = [await self._take(item, m) for item, m in checked]
        finally:
            self._waiting -= 1
        counts = {
            s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")
        }
        status = (
            200 if not counts["rejected"] else 422 if counts["rejected"] == len(results) else 207
        )
        if not results:
            status = 422
        return web.json_response({**counts, "items": results}, status=status)

    def _undecodable(self, request: web.Request, exc: web.RequestPayloadError) -> web.Response:
        """A body that its ``Content-Encoding`` does not decode (``gzip`` that is not gzip): a
        400 naming it, dead-lettered like an unparseable body. It was a 500 with two
        tracebacks, nothing dead-lettered, and the next request on the connection was reset
        (QA): the connection is closed after this answer, its request stream is broken."""
        encoding = request.headers.get("Content-Encoding", "").strip() or "identity"
        cause = exc.__cause__ or exc
        why = " ".join(str(getattr(cause, "message", "") or cause).split())[:200]
        detail = f"body is not valid Content-Encoding {encoding!r} ({why})"
        self.intake.reject("invalid_value", detail, b"")
        # the parser stopped at the error: end the body here, or aiohttp tries to read the
        # rest after the answer, meets the error again and logs it as an unhandled exception
        request.content.feed_eof()
        resp = json_error(400, detail)
        resp.force_close()
        return resp

    def _refuse(self) -> web.Response:
        self._metrics.shed_requests.labels(self.cfg.name).inc()
        return web.json_response(
            {"error": "pipeline backed up: nothing of this request was taken, send it again"},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def _check(self, item: Item) -> Mention | DecodeError:
        """The item as a mention, or why not (no side effect: the request may yet be shed)."""
        if item.error is not None:
            return item.error
        try:
            m = decode_mention(item.value, source=self.cfg.name)
        except DecodeError as e:
            return e
        if self._allowed and m.source not in self._allowed:
            return DecodeError("unknown_source", f"source {m.source!r} not allowed")
        return m

    async def _take(self, item: Item, m: Mention | DecodeError) -> dict[str, Any]:
        if isinstance(m, DecodeError):
            err = m
            self.intake.reject_error(err, item.raw)
            return {
                "index": item.index,
                "status": "rejected",
                "reason": err.reason,
                "detail": err.detail,
            }
        if not self.intake.accept(m):
            return {"index": item.index, "status": "duplicate", "id": m.id}
        await self.ctx.submit(m)
        return {"index": item.index, "status": "accepted", "id": m.id}


def json_error(status: int, message: str) -> web.Response:
    """An HTTP error whose body is JSON ``{"error": message}``, like the REST API's."""
    return web.json_response({"error": message}, status=status)
