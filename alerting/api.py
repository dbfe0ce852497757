"""HTTP routes for acting on incidents: REST (bearer token), one-click links, PagerDuty webhooks.

* ``GET  /api/v1/incidents/{id}`` — one incident (a viewer or responder token once tokens
  are configured, see :func:`require_reader`).
* ``POST /api/v1/incidents/{id}/acknowledge|resolve|snooze`` — role responder; snooze takes
  exactly one of ``{"seconds": N}`` or ``{"until": T}`` (an ISO date-time, UTC without an
  offset, or epoch seconds, as for silences).
* ``GET  /act/{token}`` — a signed link from a notification: shows what it will do and a
  confirm button; ``POST /act/{token}`` does it. The GET never acts because mail scanners and
  chat unfurlers fetch every link they see, and an acknowledgement made by a robot would stop
  the paging of a real crisis.
* ``POST /api/v1/webhooks/pagerduty`` — PagerDuty v3 webhook; ``X-PagerDuty-Signature``
  (``v1=<hex HMAC-SHA256 of the raw body>``, comma-separated during rotation) is verified
  before anything is parsed; ``incident.acknowledged``/``incident.resolved`` made by a person
  are applied to the incident whose dedup key is the PagerDuty ``incident_key``, unless they
  occurred before our latest re-page of it (:func:`pagerduty_ignored`).
* ``GET /api/v1/silences[?state=active|all]`` — silences, newest start first (a reader, as
  above); ``POST /api/v1/silences`` — role responder, body checked by :func:`parse_silence`,
  201; ``DELETE /api/v1/silences/{id}`` — role responder, ends the silence now.

>>> bearer("Bearer abc"), bearer("Basic abc"), bearer(None)
('abc', None, None)
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client import CollectorRegistry

from alerting.links import LinkClaim, LinkError, LinkSigner
from alerting.metrics import ActionMetrics
from alerting.notifiers.webhook import verify_body
from alerting.routing import Matcher
from alerting.silences import SilenceError
from monitor.clock import Clock
from monitor.config.alerting import parse_when
from monitor.config.receivers import ApiConfig, secret
from monitor.errors import ConfigError, CrisiswatchError
from monitor.server import bad_request

log = logging.getLogger(__name__)

# A maintenance window longer than a month is a config change (reviewed, in the repository),
# not a click: a forgotten silence would hide every crisis of its topic until it ends.
MAX_SILENCE_SECONDS = 30 * 86400.0
SILENCE_FIELDS = ("comment", "duration_seconds", "end", "matchers", "start")
SNOOZE_FIELDS = ("seconds", "until")
# A silence is stored, listed, logged and checked against every incident: a body of 100,000
# matchers or a 3 MB comment was accepted and made a 1.4 MB log line (QA).
MAX_COMMENT_CHARS = 1000
MAX_MATCHERS = 32
MAX_MATCHER_CHARS = 256

Acted = tuple[dict[str, Any], bool]  # the record after an action, and whether it changed it


class IncidentActions(Protocol):
    """What the API needs from the incident book. An action returns the incident after it (a
    JSON-able dict) and whether it changed anything, decided under the book's lock: of two
    responders acting at once only the first changes it, and only that one is logged and
    counted. None when there is no such incident. Repeating an action is harmless.
    """

    async def acknowledge(self, incident_id: str, who: str) -> Acted | None: ...

    async def resolve(self, incident_id: str, who: str) -> Acted | None: ...

    async def snooze(self, incident_id: str, until: float, who: str) -> Acted | None: ...

    async def get(self, incident_id: str) -> dict[str, Any] | None: ...

    async def list(self) -> list[dict[str, Any]]: ...


class SilenceActions(Protocol):
    """What the API needs for silences. A silence is ``Silence.to_dict()`` plus ``active``
    (in force now)."""

    async def list_silences(self) -> list[dict[str, Any]]:
        """Every silence, newest start first."""
        ...

    async def add_silence(
        self, matchers: Sequence[str], start: float, end: float, author: str, comment: str
    ) -> dict[str, Any]:
        """A new silence with a fresh id; SilenceError when malformed."""
        ...

    async def expire_silence(self, silence_id: str, who: str) -> Acted | None:
        """End the silence now and whether that changed it (an ended one stays as it was);
        None when unknown."""
        ...


class ApiActions(IncidentActions, SilenceActions, Protocol):
    """Everything :func:`api_routes` acts through (``alerting.service.IncidentService``)."""


class Refused(CrisiswatchError):
    """The incident's state does not allow the action (HTTP 409)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class TokenBook:
    """Bearer tokens → principals. Only SHA-256 digests are kept in memory.

    >>> book = TokenBook({"t0ken": Principal("ana", frozenset({"responder"}))})
    >>> book.find("t0ken").name, book.find("nope")
    ('ana', None)
    """

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._by_digest = {hashlib.sha256(t.encode()).digest(): p for t, p in tokens.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def from_config(cls, cfg: ApiConfig, env: Mapping[str, str]) -> TokenBook:
        tokens: dict[str, Principal] = {}
        first: dict[str, int] = {}
        for i, t in enumerate(cfg.tokens):
            path = f"delivery.api.tokens[{i}].token_env"
            value = secret(env, t.token_env, path)
            if value in tokens:
                # One of the two would silently get the other's name and roles.
                raise ConfigError(
                    path, f"{t.token_env} holds the same token as tokens[{first[value]}]"
                )
            tokens[value], first[value] = Principal(t.name, frozenset(t.roles)), i
        return cls(tokens)

    def may_read(self, token: str | None) -> bool:
        """A known token with a role that may read incidents (viewer or responder)."""
        who = self.find(token)
        return who is not None and bool({"viewer", "responder"} & who.roles)

    def find(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for d, p in self._by_digest.items():  # constant time over the whole book
            if hmac.compare_digest(d, digest):
                found = p
        return found


def unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text='{"error": "missing or unknown bearer token"}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="crisiswatch"'},
    )


def require_reader(tokens: TokenBook, request: web.Request) -> None:
    """Reading incidents needs a known token (viewer or responder) once any is configured;
    with none (the demo) reads are open, like the wall. Raises 401."""
    if len(tokens) and not tokens.may_read(bearer(request.headers.get("Authorization"))):
        raise unauthorized()


@dataclass(frozen=True, slots=True)
class PagerDutyEvent:
    """An ``incident.acknowledged``/``incident.resolved`` v3 webhook event, as far as we use it."""

    action: str  # acknowledge | resolve
    key: str  # event.data.incident_key: the dedup_key we sent
    who: str  # pagerduty:<agent summary>
    agent_type: str | None  # event.agent.type; user_reference for a person
    occurred_at: float | None  # event.occurred_at; None when absent or unreadable


def pagerduty_action(event: Mapping[str, Any]) -> PagerDutyEvent | None:
    """The event of a v3 webhook body we act on, else None.

    >>> ev = pagerduty_action({"event": {"event_type": "incident.acknowledged",
    ...     "occurred_at": "1970-01-01T00:01:00.000Z",
    ...     "agent": {"summary": "Jane Doe", "type": "user_reference"},
    ...     "data": {"incident_key": "acme/volume"}}})
    >>> ev.action, ev.key, ev.who, ev.agent_type, ev.occurred_at
    ('acknowledge', 'acme/volume', 'pagerduty:Jane Doe', 'user_reference', 60.0)
    >>> pagerduty_action({"event": {"event_type": "incident.priority_updated", "data": {}}})
    """
    ev = event.get("event")
    if not isinstance(ev, Mapping):
        return None
    action = {"incident.acknowledged": "acknowledge", "incident.resolved": "resolve"}.get(
        str(ev.get("event_type"))
    )
    data = ev.get("data")
    if action is None or not isinstance(data, Mapping):
        return None
    key = data.get("incident_key")
    if not isinstance(key, str) or not key:
        return None
    agent = ev.get("agent")
    agent = agent if isinstance(agent, Mapping) else {}
    kind = agent.get("type")
    try:
        occurred: float | None = _when(ev.get("occurred_at"), "occurred_at")
    except ValueError:
        occurred = None
    return PagerDutyEvent(
        action,
        key,
        f"pagerduty:{agent.get('summary') or 'unknown'}",
        kind if isinstance(kind, str) else None,
        occurred,
    )


def pagerduty_ignored(event: PagerDutyEvent, incident: Mapping[str, Any]) -> str | None:
    """Why `event` must not be applied to `incident`, or None to apply it.

    Two rules, both needing nothing we do not already have:

    * Only a person's ack or resolve is applied (``agent.type`` ``user_reference``). A re-page
      after an ack resolves the PagerDuty incident through the Events API before triggering a
      new one (``PagerDutyNotifier.send``); PagerDuty reports that resolve with the service or
      its Events API integration as the agent, and applying it ended the crisis we had just
      re-paged. We cannot tell our integration from another, so every non-person agent
      (automation, auto-resolve, none) is ignored: only a person may stop the paging.
    * An event that occurred before we last triggered the incident (``triggered_at``: its
      opening, a re-page or a re-trigger) is about the PagerDuty incident that re-page
      replaced: a webhook delayed or retried past the re-page. It is compared with time, not
      with PagerDuty's incident id, because the Events API never tells us the id of the
      incident a trigger opened.

    >>> ev = PagerDutyEvent("acknowledge", "k", "pagerduty:Jane", "user_reference", 100.0)
    >>> pagerduty_ignored(ev, {"triggered_at": 90.0}) is None
    True
    >>> pagerduty_ignored(ev, {"triggered_at": 120.0})[:77]
    'occurred at 1970-01-01T00:01:40Z, before our re-page at 1970-01-01T00:02:00Z:'
    """
    if event.agent_type != "user_reference":
        return f"not made by a person (agent type {event.agent_type or 'none'})"
    at, triggered = event.occurred_at, incident.get("triggered_at")
    # No time (PagerDuty always sends one): applied, as before this rule.
    if at is not None and isinstance(triggered, int | float) and at < triggered:
        return (
            f"occurred at {_iso(at)}, before our re-page at {_iso(triggered)}:"
            " it is about the PagerDuty incident that re-page replaced"
        )
    return None


def _already_done(action: str, incident: Mapping[str, Any]) -> str | None:
    """What makes a one-click link's action moot, for its page; None when it can still act.

    >>> _already_done("acknowledge", {"state": "resolved", "resolved_by": "detector"})
    'Already resolved by detector'
    >>> _already_done("acknowledge", {"state": "acknowledged", "acknowledged_by": "ana"})
    'Already acknowledged by ana'
    >>> _already_done("resolve", {"state": "acknowledged"}) is None
    True
    """
    state = incident.get("state")
    if state == "resolved":
        return f"Already resolved by {incident.get('resolved_by') or 'someone'}"
    if state == "acknowledged" and action == "acknowledge":
        return f"Already acknowledged by {incident.get('acknowledged_by') or 'someone'}"
    return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:34em;margin:3em auto;padding:0 1em}}
button{{font-size:1.2em;padding:.6em 1.4em;cursor:pointer}}.muted{{color:#666}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = _PAGE.format(title=html.escape(title), body=body)
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


_VERB = {"acknowledge": "Acknowledge", "resolve": "Resolve", "snooze": "Snooze"}


def api_routes(
    actions: ApiActions,
    config: ApiConfig,
    *,
    clock: Clock,
    registry: CollectorRegistry,
    env: Mapping[str, str],
    links: LinkSigner | None = None,
) -> list[web.RouteDef]:
    """The routes above, bound to `actions`. Secrets are read from `env` here, once."""
    tokens = TokenBook.from_config(config, env)
    pd_keys: list[bytes] = []
    if config.pagerduty_webhook_secret_env:
        pd_keys = [
            secret(
                env,
                config.pagerduty_webhook_secret_env,
                "delivery.api.pagerduty_webhook_secret_env",
            ).encode()
        ]
    metrics = ActionMetrics(registry)

    def authorize(request: web.Request, role: str | None) -> Principal:
        p = tokens.find(bearer(request.headers.get("Authorization")))
        if p is None:
            metrics.rejected.labels(via="api", reason="unauthorized").inc()
            raise unauthorized()
        if role is not None and role not in p.roles:
            metrics.rejected.labels(via="api", reason="forbidden").inc()
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"role {role} required"}),
                content_type="application/json",
            )
        return p

    async def apply(
        action: str, incident_id: str, who: str, via: str, until: float | None = None
    ) -> Acted | None:
        """The incident after `action` and whether the action changed it (None if unknown); a
        repeat changes nothing and is neither logged nor counted. Refused if the incident's
        state forbids the action."""
        try:
            if action == "acknowledge":
                acted = await actions.acknowledge(incident_id, who)
            elif action == "resolve":
                acted = await actions.resolve(incident_id, who)
            else:
                assert until is not None
                acted = await actions.snooze(incident_id, until, who)
        except CrisiswatchError as exc:  # e.g. acknowledging a resolved incident
            metrics.rejected.labels(via=via, reason="conflict").inc()
            raise Refused(str(getattr(exc, "reason", exc))) from None
        if acted is not None and acted[1]:
            metrics.actions.labels(action=action, via=via).inc()
            # %r: a PagerDuty agent's name is outside text; a newline in it would forge a line
            log.info("%s %s by %r via %s", action, incident_id, who, via)
        return acted

    async def get_incident(request: web.Request) -> web.Response:
        require_reader(tokens, request)
        inc = await actions.get(request.match_info["id"])
        if inc is None:
            raise web.HTTPNotFound(
                text='{"error": "no such incident"}', content_type="application/json"
            )
        return web.json_response({"incident": inc})

    async def act(request: web.Request) -> web.Response:
        who = authorize(request, "responder").name
        action = request.match_info["action"]
        action = "acknowledge" if action == "ack" else action
        until = None
        if action == "snooze":
            until = await _snooze_until(request, clock.now(), config.max_snooze_seconds)
        try:
            acted = await apply(action, request.match_info["id"], who, "api", until)
        except Refused as exc:
            raise web.HTTPConflict(
                text=json.dumps({"error": exc.reason}), content_type="application/json"
            ) from None
        if acted is None:
            raise web.HTTPNotFound(
                text='{"error": "no such incident"}', content_type="application/json"
            )
        return web.json_response({"incident": acted[0]})

    def claim_of(request: web.Request) -> LinkClaim | web.Response:
        if links is None:
            return _page("Links are disabled", "<p>This server signs no action links.</p>", 404)
        try:
            return links.verify(request.match_info["token"], clock.now())
        except LinkError as exc:
            metrics.rejected.labels(via="link", reason=exc.reason).inc()
            if exc.reason == "expired":
                return _page(
                    "Link expired",
                    "<p>This link has expired. Open the wall or use the API instead.</p>",
                    410,
                )
            return _page("Invalid link", "<p>This link is not valid.</p>", 403)

    async def link_page(request: web.Request) -> web.Response:
        claim = claim_of(request)
        if isinstance(claim, web.Response):
            return claim
        inc = await actions.get(claim.incident_id)
        if inc is None:
            return _page("No such incident", "<p>The incident no longer exists.</p>", 404)
        verb = _VERB[claim.action]
        what = html.escape(str(inc.get("title") or inc.get("summary") or claim.incident_id))
        extra = ""
        if claim.action == "snooze" and claim.param.isdigit():
            extra = f" for {int(claim.param) // 60} minutes"
        state = html.escape(str(inc.get("state", "?")))
        head = (
            f"<p><b>{what}</b></p><p class=muted>incident {html.escape(claim.incident_id)},"
            f" currently {state}</p>"
        )
        done = _already_done(claim.action, inc)
        if done is not None:
            # no button: it offered "Acknowledge" on a resolved incident, then a 409 (QA)
            return _page(done, head + f"<p>{html.escape(done)}; nothing to do.</p>")
        body = (
            head + f'<form method="post"><button type="submit">{verb}{extra}</button></form>'
            f"<p class=muted>as {html.escape(claim.who or 'link holder')}</p>"
        )
        return _page(f"{verb} incident?", body)

    async def link_act(request: web.Request) -> web.Response:
        claim = claim_of(request)
        if isinstance(claim, web.Response):
            return claim
        until = None
        if claim.action == "snooze":
            seconds = float(claim.param) if claim.param.isdigit() else 3600.0
            until = clock.now() + min(seconds, config.max_snooze_seconds)
        try:
            acted = await apply(claim.action, claim.incident_id, claim.who or "link", "link", until)
        except Refused as exc:
            return _page("Not possible", f"<p>{html.escape(exc.reason)}</p>", 409)
        if acted is None:
            return _page("No such incident", "<p>The incident no longer exists.</p>", 404)
        state = html.escape(str(acted[0].get("state", "?")))
        return _page("Done", f"<p>Incident {html.escape(claim.incident_id)} is now {state}.</p>")

    async def pagerduty_webhook(request: web.Request) -> web.Response:
        if not pd_keys:
            raise web.HTTPNotFound()
        raw = await request.read()
        header = request.headers.get("X-PagerDuty-Signature")
        if not header:
            metrics.rejected.labels(via="pagerduty", reason="unsigned").inc()
            raise bad_request("missing X-PagerDuty-Signature")
        if not verify_body(pd_keys, raw, header):
            metrics.rejected.labels(via="pagerduty", reason="bad_signature").inc()
            raise web.HTTPForbidden(
                text='{"error": "invalid signature"}', content_type="application/json"
            )
        try:
            body = json.loads(raw)
        except ValueError:
            metrics.rejected.labels(via="pagerduty", reason="malformed").inc()
            raise bad_request("body is not JSON") from None
        found = pagerduty_action(body) if isinstance(body, dict) else None
        if found is None:
            return web.json_response({"applied": False, "reason": "ignored event"})
        incident_id = await _resolve_key(actions, found.key)
        incident = None if incident_id is None else await actions.get(incident_id)
        if incident_id is None or incident is None:
            # 2xx all the same: a retry from PagerDuty cannot make the incident appear.
            return web.json_response({"applied": False, "reason": "unknown incident"})
        why = pagerduty_ignored(found, incident)
        if why is not None:
            # 200: PagerDuty retries anything else, and a retry would be ignored the same way.
            log.info(
                "PagerDuty incident.%s for %s by %r not applied: %s",
                "acknowledged" if found.action == "acknowledge" else "resolved",
                incident_id,
                found.who,
                why,
            )
            return web.json_response({"applied": False, "incident_id": incident_id, "reason": why})
        try:
            acted = await apply(found.action, incident_id, found.who, "pagerduty")
        except Refused as exc:
            return web.json_response({"applied": False, "reason": exc.reason})
        changed = acted is not None and acted[1]
        out: dict[str, Any] = {"applied": changed, "incident_id": incident_id}
        if not changed:
            out["reason"] = "already in that state"
        return web.json_response(out)

    async def list_silences(request: web.Request) -> web.Response:
        require_reader(tokens, request)
        state = request.query.get("state", "all")
        if state not in ("active", "all"):
            raise bad_request(f"state: expected active or all (got {state[:40]!r})")
        found = await actions.list_silences()
        if state == "active":
            found = [s for s in found if s["active"]]
        return web.json_response({"silences": found})

    async def add_silence(request: web.Request) -> web.Response:
        who = authorize(request, "responder").name
        try:
            want = parse_silence(await _json_body(request), clock.now())
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        try:
            silence = await actions.add_silence(
                want.matchers, want.start, want.end, who, want.comment
            )
        except SilenceError as exc:  # the service's own checks; parse_silence should catch all
            raise bad_request(exc.reason) from None
        metrics.actions.labels(action="silence", via="api").inc()
        return web.json_response({"silence": silence}, status=201)

    async def expire_silence(request: web.Request) -> web.Response:
        who = authorize(request, "responder").name
        sid = request.match_info["id"]
        acted = await actions.expire_silence(sid, who)
        if acted is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no such silence {sid[:80]!r}"}),
                content_type="application/json",
            )
        silence, changed = acted
        if changed:  # a repeated expiry is answered, not counted
            metrics.actions.labels(action="expire_silence", via="api").inc()
        return web.json_response({"silence": silence})

    return [
        web.get("/api/v1/incidents/{id}", get_incident),
        web.post("/api/v1/incidents/{id}/{action:acknowledge|ack|resolve|snooze}", act),
        web.get("/act/{token}", link_page),
        web.post("/act/{token}", link_act),
        web.post("/api/v1/webhooks/pagerduty", pagerduty_webhook),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", add_silence),
        # `.+`: a configured silence id may contain a slash
        web.delete("/api/v1/silences/{id:.+}", expire_silence),
    ]


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); a JSON 400 otherwise."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise bad_request("body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("expected a JSON object")
    return body


async def _snooze_until(request: web.Request, now: float, cap: float) -> float:
    body = await _json_body(request)
    unknown = sorted(set(body) - set(SNOOZE_FIELDS))
    if unknown:
        raise bad_request(f"unknown field {unknown[0][:40]!r}; expected seconds or until")
    if sum(body.get(k) is not None for k in SNOOZE_FIELDS) > 1:  # null is absent, as elsewhere
        raise bad_request("give either seconds or until (exactly one)")
    try:
        if body.get("until") is not None:
            until = _when(body["until"], "until")  # ISO or epoch, as for silences
        elif body.get("seconds") is not None:
            seconds = _number(body["seconds"])
            if seconds is None:
                raise ValueError(
                    f"seconds: expected a number of seconds (got {_show(body['seconds'])})"
                )
            until = now + seconds
        else:
            raise ValueError('snooze needs {"seconds": N} or {"until": ISO time or epoch}')
    except ValueError as exc:  # names the field and the value given, not just "missing"
        raise bad_request(str(exc)) from None
    if until <= now:
        raise bad_request("snooze must end in the future")
    if until - now > cap:
        raise bad_request(f"snooze longer than {cap:.0f} seconds")
    return until


def _number(value: Any) -> float | None:
    """A finite JSON number, else None.

    NaN (which ``json`` accepts) would compare false with every deadline and so snooze an
    incident for ever; ``true`` is an int to Python but not a duration.

    >>> _number(5), _number(float("nan")), _number(True), _number(10**400), _number("5")
    (5.0, None, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


@dataclass(frozen=True, slots=True)
class SilenceRequest:
    matchers: tuple[str, ...]
    start: float
    end: float
    comment: str


def parse_silence(
    body: Mapping[str, Any], now: float, max_seconds: float = MAX_SILENCE_SECONDS
) -> SilenceRequest:
    """The silence a POST body asks for; ValueError naming the field and value otherwise.

    Times are ISO date-times (UTC without an offset) or epoch seconds. A start in the past, or
    none, means now: the past cannot be silenced, and a client clock a little behind is no
    error. At least one matcher must need a label value, as in Alertmanager: ``topic=~.*``
    alone would mute every crisis.

    >>> r = parse_silence({"matchers": ["topic=acme"], "duration_seconds": 600,
    ...                    "comment": "release"}, now=1000.0)
    >>> r.matchers, r.start, r.end
    (('topic=acme',), 1000.0, 1600.0)
    >>> r = parse_silence({"matchers": ["topic=acme"], "start": "1970-01-01T00:30",
    ...                    "end": "1970-01-01T01:00+00:00", "comment": "x"}, now=1000.0)
    >>> r.start, r.end
    (1800.0, 3600.0)
    >>> parse_silence({"matchers": ["topic!=acme"], "end": 2000, "comment": "x"}, now=1000.0)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: matchers: ["topic!=acme"] would silence incidents without any label value; ...
    """
    unknown = sorted(set(body) - set(SILENCE_FIELDS))
    if unknown:
        hint = " (the author is the token's name)" if "author" in unknown else ""
        raise ValueError(
            f"unknown field {unknown[0]!r}{hint}; expected {', '.join(SILENCE_FIELDS)}"
        )
    texts = body.get("matchers")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(
            f'matchers: expected a non-empty list of strings like ["topic=acme"] '
            f"(got {_show(texts)})"
        )
    if len(texts) > MAX_MATCHERS:
        raise ValueError(f"matchers: at most {MAX_MATCHERS} (got {len(texts)})")
    parsed: list[Matcher] = []
    for i, text in enumerate(texts):
        if len(text) > MAX_MATCHER_CHARS:
            raise ValueError(
                f"matchers[{i}]: at most {MAX_MATCHER_CHARS} characters (got {len(text)})"
            )
        try:
            parsed.append(Matcher.parse(text))
        except ValueError as exc:
            raise ValueError(f"matchers[{i}]: {exc}") from None
    if all(m.matches({}) for m in parsed):
        raise ValueError(
            f"matchers: {_show(texts)} would silence incidents without any label value; at "
            'least one matcher must need one, like "topic=acme"'
        )
    comment = body.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        raise ValueError(f"comment: required, say why (got {_show(comment)})")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment: at most {MAX_COMMENT_CHARS} characters (got {len(comment)})")
    start = now if body.get("start") is None else max(now, _when(body["start"], "start"))
    has_end, has_duration = body.get("end") is not None, body.get("duration_seconds") is not None
    if has_end == has_duration:
        raise ValueError("give either end or duration_seconds (exactly one)")
    if has_duration:
        field, seconds = "duration_seconds", _number(body["duration_seconds"])
        if seconds is None or seconds <= 0:
            raise ValueError(
                f"duration_seconds: expected a positive number of seconds "
                f"(got {_show(body['duration_seconds'])})"
            )
        end = start + seconds
    else:
        field, end = "end", _when(body["end"], "end")
        if end <= start:
            what = "in the future" if start == now else f"after start {_show(body['start'])}"
            raise ValueError(f"end: {_show(body['end'])} is not {what}")
    if end - start > max_seconds:
        raise ValueError(
            f"{field}: {_show(body[field])} makes the silence {(end - start) / 86400:.1f} days "
            f"long; at most {max_seconds / 86400:g} days"
        )
    return SilenceRequest(tuple(texts), start, end, comment.strip())


def _when(value: Any, field: str) -> float:
    """Epoch seconds of an ISO date-time (UTC without an offset) or of a finite JSON number.

    >>> _when("2026-01-05T09:00", "end"), _when("2026-01-05T10:00+01:00", "end"), _when(5, "end")
    (1767603600.0, 1767603600.0, 5.0)
    """
    if isinstance(value, str):
        try:
            t = parse_when(value, ZoneInfo("UTC")).timestamp()
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None
    else:
        number = _number(value)
        if number is None:
            raise ValueError(
                f"{field}: expected an ISO date-time or epoch seconds (got {_show(value)})"
            )
        t = number
    try:
        datetime.fromtimestamp(t, UTC)  # so that every accepted time can be shown
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{field}: {_show(value)} is out of range") from None
    return t


def _show(value: Any) -> str:
    """A request value for an error message: JSON, cut short (a body may be megabytes).

    >>> _show("acme"), _show(None), _show("x" * 100)[-5:]
    ('"acme"', 'null', 'xx...')
    """
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def _resolve_key(actions: IncidentActions, key: str) -> str | None:
    """Our incident for a PagerDuty incident_key (= the dedup_key we sent)."""
    if await actions.get(key) is not None:
        return key
    matches = [
        inc
        for inc in await actions.list()
        if key in (inc.get("dedup_key"), inc.get("key")) and inc.get("id")
    ]
    # An incident key recurs over time; the open incident is the one PagerDuty refers to.
    matches.sort(key=lambda inc: inc.get("state") == "resolved")
    return str(matches[0]["id"]) if matches else None
