"""A local HTTP receiver for notifier tests: records every request, answers from a script."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from monitor.clock import SystemClock

#: an incident as the service sends it: its title opens with the severity
TITLED: dict[str, Any] = {
    "id": "i1",
    "topic": "acme",
    "title": "SEV2 ACME Corp: volume crisis",
    "severity": 2,
    "score": 0.9,
    "drivers": ["volume 253 vs 36.6 expected (6.9x)"],
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered
    at: float = 0.0  # wall-clock arrival time

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """``async with Receiver() as r:`` then point a notifier at ``r.url("/path")``.

    Answers come from `script` in order (the last one repeats); default 200 "ok".
    """

    def __init__(self, *answers: Answer | int) -> None:
        self.requests: list[Recorded] = []
        self._clock = SystemClock()
        self._answers = [a if isinstance(a, Answer) else Answer(a) for a in answers]
        self._runner: web.AppRunner | None = None
        self.port = 0

    def script(self, *answers: Answer | int) -> None:
        self._answers = [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        a = Answer()
        if self._answers:
            a = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        rec = Recorded(
            request.method, request.path, dict(request.headers), body, a.status, self._clock.now()
        )
        self.requests.append(rec)
        return web.Response(status=a.status, text=a.body, headers=a.headers)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
