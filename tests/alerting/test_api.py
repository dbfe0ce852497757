from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from alerting.api import Acted, api_routes
from alerting.links import LinkAction, LinkClaim, LinkSigner
from alerting.notification import Notification
from alerting.service import IncidentService
from monitor.clock import FakeClock
from monitor.config.alerting import AlertingConfig
from monitor.config.receivers import ApiConfig
from monitor.errors import ConfigError, CrisiswatchError
from tests.alerting.fakes import V


class IncidentRefused(CrisiswatchError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


ENV = {"TOK_ANA": "ana-token", "TOK_BOB": "bob-token", "TOK_VIEW": "view-token",
       "PD_WEBHOOK": "pd-secret"}  # fmt: skip
TOKENS = [
    {"name": "ana", "token_env": "TOK_ANA", "roles": ["responder"]},
    {"name": "wallboard", "token_env": "TOK_VIEW", "roles": ["viewer"]},
]
CONFIG = ApiConfig.model_validate(
    {
        "tokens": TOKENS,
        "pagerduty_webhook_secret_env": "PD_WEBHOOK",
        "max_snooze_seconds": 86400,
    }
)


class Book:
    """An in-memory ApiActions that records every call (silences: no checks, no timing)."""

    def __init__(self) -> None:
        self.incidents: dict[str, dict[str, Any]] = {
            "inc-1": {"id": "inc-1", "key": "acme/volume", "state": "triggered",
                      "title": "Crisis on <acme>"},
            "inc-0": {"id": "inc-0", "key": "acme/volume", "state": "resolved"},
        }  # fmt: skip
        self.silences: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[Any, ...]] = []

    def _set(self, i: str, state: str, call: tuple[Any, ...]) -> Acted | None:
        self.calls.append(call)
        if i not in self.incidents:
            return None
        before = self.incidents[i]
        if before["state"] == "resolved" and state != "resolved":
            raise IncidentRefused("incident is resolved")
        self.incidents[i] = {**before, "state": state}
        return self.incidents[i], self.incidents[i] != before

    async def acknowledge(self, incident_id: str, who: str) -> Acted | None:
        return self._set(incident_id, "acknowledged", ("ack", incident_id, who))

    async def resolve(self, incident_id: str, who: str) -> Acted | None:
        return self._set(incident_id, "resolved", ("resolve", incident_id, who))

    async def snooze(self, incident_id: str, until: float, who: str) -> Acted | None:
        return self._set(incident_id, "snoozed", ("snooze", incident_id, until, who))

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        return self.incidents.get(incident_id)

    async def list_silences(self) -> list[dict[str, Any]]:
        return list(self.silences.values())

    async def add_silence(
        self, matchers: Sequence[str], start: float, end: float, author: str, comment: str
    ) -> dict[str, Any]:
        self.calls.append(("silence", list(matchers), start, end, author, comment))
        sid = f"s-{len(self.silences)}"
        self.silences[sid] = {"id": sid, "matchers": list(matchers), "start": start, "end": end,
                              "author": author, "comment": comment, "active": True}  # fmt: skip
        return self.silences[sid]

    async def expire_silence(self, silence_id: str, who: str) -> Acted | None:
        self.calls.append(("expire", silence_id, who))
        silence = self.silences.get(silence_id)
        return None if silence is None else (silence, True)

    async def list(self) -> list[dict[str, Any]]:
        return list(self.incidents.values())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner([b"link-secret"], base_url="http://cw.test")


@pytest.fixture
async def env(
    clock: FakeClock, signer: LinkSigner
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Book, CollectorRegistry]]:
    book, reg = Book(), CollectorRegistry()
    app = web.Application()
    app.add_routes(api_routes(book, CONFIG, clock=clock, registry=reg, env=ENV, links=signer))
    async with TestClient(TestServer(app)) as client:
        yield client, book, reg


Env = tuple[TestClient[web.Request, web.Application], Book, CollectorRegistry]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rest_ack_resolve_snooze_need_responder(env: Env, clock: FakeClock) -> None:
    client, book, reg = env
    r = await client.post("/api/v1/incidents/inc-1/acknowledge")
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await client.post("/api/v1/incidents/inc-1/acknowledge", headers=auth("wrong"))
    assert r.status == 401
    r = await client.post("/api/v1/incidents/inc-1/acknowledge", headers=auth("view-token"))
    assert r.status == 403 and book.calls == []
    r = await client.post("/api/v1/incidents/inc-1/acknowledge", headers=auth("ana-token"))
    assert r.status == 200 and (await r.json())["incident"]["state"] == "acknowledged"
    # null is absent, as in a silence: a generated client sends both keys
    r = await client.post(
        "/api/v1/incidents/inc-1/snooze",
        headers=auth("ana-token"),
        json={"seconds": 600, "until": None},
    )
    assert r.status == 200
    r = await client.post("/api/v1/incidents/inc-1/resolve", headers=auth("ana-token"))
    assert r.status == 200
    assert book.calls == [
        ("ack", "inc-1", "ana"), ("snooze", "inc-1", 1600.0, "ana"), ("resolve", "inc-1", "ana")
    ]  # fmt: skip
    r = await client.post("/api/v1/incidents/nope/ack", headers=auth("ana-token"))
    assert r.status == 404
    assert (
        reg.get_sample_value(
            "crisiswatch_incident_actions_total", {"action": "acknowledge", "via": "api"}
        )
        == 1.0
    )
    assert (
        reg.get_sample_value(
            "crisiswatch_incident_action_rejections_total", {"via": "api", "reason": "forbidden"}
        )
        == 1.0
    )


@pytest.mark.parametrize(
    "body", [{}, {"seconds": -5}, {"until": 999.0}, {"seconds": 10**6}, [1], {"seconds": "x"}]
)
async def test_bad_snooze_is_400(env: Env, body: Any) -> None:
    client, book, _ = env
    r = await client.post("/api/v1/incidents/inc-1/snooze", headers=auth("ana-token"), json=body)
    assert r.status == 400 and book.calls == []
    assert (await r.json())["error"]  # JSON like the API's other errors


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"seconds": 60, "extra": 1}, "unknown field 'extra'; expected seconds or until"),
        ({"seconds": 60, "until": 5}, "give either seconds or until (exactly one)"),
        ({"seconds": 60, "until": 1300}, "give either seconds or until (exactly one)"),
    ],
)
async def test_a_snooze_body_is_parsed_strictly(env: Env, body: Any, error: str) -> None:
    client, book, _ = env
    r = await client.post("/api/v1/incidents/inc-1/snooze", headers=auth("ana-token"), json=body)
    assert r.status == 400 and await r.json() == {"error": error} and book.calls == []


@pytest.mark.parametrize(
    "raw",
    [
        '{"seconds": NaN}',  # json accepts it; a NaN deadline would never expire
        '{"until": NaN}',
        '{"until": Infinity}',
        '{"seconds": true}',
        '{"until": 1' + "0" * 400 + "}",  # an int too large for a float
        '{"seconds": 600',  # truncated
    ],
)
async def test_snooze_needs_a_finite_number(env: Env, raw: str) -> None:
    client, book, _ = env
    r = await client.post(
        "/api/v1/incidents/inc-1/snooze",
        headers={**auth("ana-token"), "Content-Type": "application/json"},
        data=raw,
    )
    assert r.status == 400 and book.calls == []


async def test_get_incident_needs_any_token(env: Env) -> None:
    client, _, _ = env
    assert (await client.get("/api/v1/incidents/inc-1")).status == 401
    r = await client.get("/api/v1/incidents/inc-1", headers=auth("view-token"))
    assert r.status == 200 and (await r.json())["incident"]["id"] == "inc-1"
    assert (await client.get("/api/v1/incidents/x", headers=auth("view-token"))).status == 404


async def test_without_configured_tokens_reads_are_open_and_acts_refused(clock: FakeClock) -> None:
    app = web.Application()
    app.add_routes(
        api_routes(Book(), ApiConfig(), clock=clock, registry=CollectorRegistry(), env={})
    )
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/v1/incidents/inc-1")).status == 200
        assert (await client.post("/api/v1/incidents/inc-1/ack")).status == 401
        assert (await client.get("/api/v1/silences")).status == 200
        assert (await client.post("/api/v1/silences", json=SILENCE)).status == 401
        assert (await client.delete("/api/v1/silences/s-0")).status == 401


async def test_a_repeated_action_is_answered_but_counted_once(env: Env) -> None:
    client, _, reg = env
    for _ in range(3):
        r = await client.post("/api/v1/incidents/inc-1/ack", headers=auth("ana-token"))
        assert r.status == 200 and (await r.json())["incident"]["state"] == "acknowledged"
    counted = reg.get_sample_value(
        "crisiswatch_incident_actions_total", {"action": "acknowledge", "via": "api"}
    )
    assert counted == 1.0
    body = pd_body("incident.acknowledged")
    r = await client.post(
        "/api/v1/webhooks/pagerduty", data=body, headers={"X-PagerDuty-Signature": pd_sign(body)}
    )
    assert await r.json() == {
        "applied": False, "incident_id": "inc-1", "reason": "already in that state"
    }  # fmt: skip


async def test_link_get_confirms_post_acts(env: Env, signer: LinkSigner) -> None:
    client, book, _ = env
    url = signer.url(LinkClaim("acknowledge", "inc-1", expires_at=2000, who="ana"))
    path = url.removeprefix("http://cw.test")
    r = await client.get(path)
    text = await r.text()
    assert r.status == 200 and book.calls == []  # a link preview must not acknowledge
    assert "Crisis on &lt;acme&gt;" in text and '<form method="post">' in text
    assert r.headers["Cache-Control"] == "no-store"
    r = await client.post(path)
    assert r.status == 200 and "acknowledged" in await r.text()
    assert book.calls == [("ack", "inc-1", "ana")]


@pytest.mark.parametrize(
    ("action", "state", "says"),
    [
        ("acknowledge", {"state": "resolved", "resolved_by": "detector"}, "resolved by detector"),
        ("snooze", {"state": "resolved", "resolved_by": "ana"}, "resolved by ana"),
        ("acknowledge", {"state": "acknowledged", "acknowledged_by": "lead"}, "acknowledged by"),
    ],
)
async def test_a_link_to_a_moot_action_says_so_without_a_button(
    env: Env, signer: LinkSigner, action: LinkAction, state: dict[str, Any], says: str
) -> None:
    """The page offered "Acknowledge" for a resolved incident; pressing it gave a 409 (QA)."""
    client, book, _ = env
    book.incidents["inc-1"].update(state)
    url = signer.url(LinkClaim(action, "inc-1", expires_at=2000, who="ana", param="600"))
    r = await client.get(url.removeprefix("http://cw.test"))
    text = await r.text()
    assert r.status == 200 and f"Already {says}" in text and "<form" not in text


async def test_link_snooze_uses_signed_duration(
    env: Env, signer: LinkSigner, clock: FakeClock
) -> None:
    client, book, _ = env
    url = signer.url(LinkClaim("snooze", "inc-1", expires_at=2000, who="ana", param="1800"))
    r = await client.post(url.removeprefix("http://cw.test"))
    assert r.status == 200 and book.calls == [("snooze", "inc-1", 2800.0, "ana")]


async def test_expired_and_forged_links_are_refused(
    env: Env, signer: LinkSigner, clock: FakeClock
) -> None:
    client, book, reg = env
    path = signer.url(LinkClaim("resolve", "inc-1", expires_at=1500)).removeprefix("http://cw.test")
    clock.advance(600)
    assert (await client.post(path)).status == 410
    forged = LinkSigner([b"guess"], base_url="").url(LinkClaim("resolve", "inc-1", 9999))
    assert (await client.post(forged)).status == 403
    assert (await client.get("/act/garbage!!")).status == 403
    assert book.calls == []
    assert (
        reg.get_sample_value(
            "crisiswatch_incident_action_rejections_total", {"via": "link", "reason": "expired"}
        )
        == 1.0
    )


USER_AGENT = {"html_url": "https://x.pagerduty.com/users/P1", "id": "P1",
              "summary": "Jane Doe", "type": "user_reference"}  # fmt: skip
# What PagerDuty names as the agent of a change made through the Events API (our own resolve
# before a re-page's trigger): the service, or the integration the event came in through.
SERVICE_AGENT = {"id": "PF9KMXH", "summary": "crisiswatch (Events API v2)",
                 "type": "service_reference"}  # fmt: skip


def pd_body(
    event_type: str,
    key: str = "acme/volume",
    *,
    agent: dict[str, Any] | None = USER_AGENT,
    occurred_at: str = "2026-11-27T08:00:00.000Z",
) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": occurred_at,
                "agent": agent,
                "data": {"id": "Q1", "type": "incident", "number": 7, "status": "acknowledged",
                         "incident_key": key, "title": "Crisis on acme"},
            }
        }
    ).encode()  # fmt: skip


def pd_sign(body: bytes, secret: bytes = b"pd-secret") -> str:
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def test_pagerduty_webhook_acks_the_open_incident(env: Env) -> None:
    client, book, reg = env
    body = pd_body("incident.acknowledged")
    sig = f"v1=deadbeef,{pd_sign(body)}"  # rotation: any matching signature is enough
    r = await client.post(
        "/api/v1/webhooks/pagerduty", data=body, headers={"X-PagerDuty-Signature": sig}
    )
    assert r.status == 200 and await r.json() == {"applied": True, "incident_id": "inc-1"}
    assert book.calls == [("ack", "inc-1", "pagerduty:Jane Doe")]
    body = pd_body("incident.resolved")
    r = await client.post(
        "/api/v1/webhooks/pagerduty", data=body, headers={"X-PagerDuty-Signature": pd_sign(body)}
    )
    assert book.calls[-1] == ("resolve", "inc-1", "pagerduty:Jane Doe")
    assert (
        reg.get_sample_value(
            "crisiswatch_incident_actions_total", {"action": "resolve", "via": "pagerduty"}
        )
        == 1.0
    )


async def test_pagerduty_webhook_signature_is_enforced(env: Env) -> None:
    client, book, _ = env
    body = pd_body("incident.acknowledged")
    r = await client.post("/api/v1/webhooks/pagerduty", data=body)
    assert r.status == 400
    r = await client.post(
        "/api/v1/webhooks/pagerduty",
        data=body,
        headers={"X-PagerDuty-Signature": pd_sign(body, b"wrong")},
    )
    assert r.status == 403
    tampered = body.replace(b"Jane", b"Mall")
    r = await client.post(
        "/api/v1/webhooks/pagerduty",
        data=tampered,
        headers={"X-PagerDuty-Signature": pd_sign(body)},
    )
    assert r.status == 403 and book.calls == []


async def test_pagerduty_other_events_and_unknown_incidents_are_ignored(env: Env) -> None:
    client, book, _ = env
    for body in (pd_body("incident.priority_updated"), pd_body("incident.acknowledged", "zzz")):
        r = await client.post(
            "/api/v1/webhooks/pagerduty",
            data=body,
            headers={"X-PagerDuty-Signature": pd_sign(body)},
        )
        assert r.status == 200 and (await r.json())["applied"] is False
    assert book.calls == []


@pytest.mark.parametrize(
    "agent",
    [
        SERVICE_AGENT,
        {"id": "P0KV9NX", "type": "events_api_v2_inbound_integration_reference"},
        None,  # PagerDuty documents that an event may have no agent
    ],
)
async def test_pagerduty_events_not_made_by_a_person_are_ignored(
    env: Env, agent: dict[str, Any] | None, caplog: pytest.LogCaptureFixture
) -> None:
    """An ack or resolve that no person made is ours (the resolve before a re-page's trigger)
    or PagerDuty's automation: it must not end the paging of a crisis."""
    client, book, _ = env
    caplog.set_level(logging.INFO, logger="alerting.api")
    for event_type in ("incident.resolved", "incident.acknowledged"):
        out = await post_pd(client, pd_body(event_type, agent=agent))
        assert out["applied"] is False
        assert out["incident_id"] == "inc-1" and "not made by a person" in out["reason"]
    assert book.calls == [] and book.incidents["inc-1"]["state"] == "triggered"
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "alerting.api"]
    assert len(lines) == 2 and all(line.startswith("PagerDuty incident.") for line in lines)
    assert all(rec.levelno == logging.INFO for rec in caplog.records if rec.name == "alerting.api")


def test_missing_token_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"delivery\.api\.tokens\[0\]\.token_env"):
        api_routes(Book(), CONFIG, clock=FakeClock(), registry=CollectorRegistry(), env={})


def test_two_names_with_one_token_is_a_config_error() -> None:
    env = {**ENV, "TOK_VIEW": "ana-token"}  # the viewer's token would act as responder
    with pytest.raises(ConfigError, match=r"delivery\.api\.tokens\[1\]\.token_env: TOK_VIEW"):
        api_routes(Book(), CONFIG, clock=FakeClock(), registry=CollectorRegistry(), env=env)


async def test_state_conflicts_are_409_not_500(env: Env, signer: LinkSigner) -> None:
    client, _, _ = env
    r = await client.post("/api/v1/incidents/inc-0/acknowledge", headers=auth("ana-token"))
    assert r.status == 409 and await r.json() == {"error": "incident is resolved"}
    link = signer.url(LinkClaim("acknowledge", "inc-0", expires_at=2000)).removeprefix(
        "http://cw.test"
    )
    r = await client.post(link)
    assert r.status == 409 and "incident is resolved" in await r.text()


# --- silences ------------------------------------------------------------------------------------
SILENCE = {"matchers": ["topic=acme"], "duration_seconds": 3600, "comment": "CMS release"}


async def test_silence_routes_need_a_reader_and_writes_a_responder(env: Env) -> None:
    client, book, reg = env
    assert (await client.get("/api/v1/silences")).status == 401
    r = await client.get("/api/v1/silences", headers=auth("view-token"))
    assert r.status == 200 and await r.json() == {"silences": []}
    r = await client.post("/api/v1/silences", json=SILENCE)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await client.post("/api/v1/silences", json=SILENCE, headers=auth("view-token"))
    assert r.status == 403 and await r.json() == {"error": "role responder required"}
    r = await client.delete("/api/v1/silences/s-0", headers=auth("view-token"))
    assert r.status == 403
    assert (await client.delete("/api/v1/silences/s-0")).status == 401
    assert book.calls == []
    r = await client.post("/api/v1/silences", json=SILENCE, headers=auth("ana-token"))
    assert r.status == 201 and (await r.json())["silence"]["author"] == "ana"
    assert book.calls == [("silence", ["topic=acme"], 1000.0, 4600.0, "ana", "CMS release")]
    r = await client.delete("/api/v1/silences/s-0", headers=auth("ana-token"))
    assert r.status == 200 and book.calls[-1] == ("expire", "s-0", "ana")
    forbidden = reg.get_sample_value(
        "crisiswatch_incident_action_rejections_total", {"via": "api", "reason": "forbidden"}
    )
    assert forbidden == 2.0


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"matchers": ["topic=acme"], "duration_seconds": 60}', "comment: required"),
        ('{"matchers": ["topic=acme"], "duration_seconds": 60, "comment": " "}',
         'comment: required, say why (got " ")'),
        ('{"duration_seconds": 60, "comment": "c"}', "matchers: expected a non-empty list"),
        ('{"matchers": [], "duration_seconds": 60, "comment": "c"}', "(got [])"),
        ('{"matchers": "topic=acme", "duration_seconds": 60, "comment": "c"}',
         'matchers: expected a non-empty list of strings like ["topic=acme"] (got "topic=acme")'),
        ('{"matchers": ["topic=acme", "acme"], "duration_seconds": 60, "comment": "c"}',
         "matchers[1]: expected name=value, name!=value, name=~re or name!~re, got 'acme'"),
        ('{"matchers": ["topic=~(acme"], "duration_seconds": 60, "comment": "c"}',
         "matchers[0]: bad regular expression '(acme'"),
        ('{"matchers": ["topic=~.*"], "duration_seconds": 60, "comment": "c"}',
         'matchers: ["topic=~.*"] would silence incidents without any label value'),
        ('{"matchers": ["topic=acme"], "comment": "c"}', "either end or duration_seconds"),
        ('{"matchers": ["topic=acme"], "end": 5000, "duration_seconds": 60, "comment": "c"}',
         "either end or duration_seconds"),
        ('{"matchers": ["topic=acme"], "end": 999, "comment": "c"}',
         "end: 999 is not in the future"),
        ('{"matchers": ["topic=acme"], "start": 5000, "end": 4000, "comment": "c"}',
         "end: 4000 is not after start 5000"),
        ('{"matchers": ["topic=acme"], "end": "tomorrow", "comment": "c"}',
         "end: expected an ISO date-time like 2026-01-05T09:00, got 'tomorrow'"),
        ('{"matchers": ["topic=acme"], "end": 1e300, "comment": "c"}', "end: 1e+300 is out of"),
        ('{"matchers": ["topic=acme"], "start": "x", "end": 5000, "comment": "c"}', "start: "),
        ('{"matchers": ["topic=acme"], "end": "1970-03-01T00:00Z", "comment": "c"}',
         'end: "1970-03-01T00:00Z" makes the silence 59.0 days long; at most 30 days'),
        ('{"matchers": ["topic=acme"], "duration_seconds": 2592001, "comment": "c"}',
         "duration_seconds: 2592001 makes the silence 30.0 days long; at most 30 days"),
        ('{"matchers": ["topic=acme"], "duration_seconds": 0, "comment": "c"}',
         "duration_seconds: expected a positive number of seconds (got 0)"),
        ('{"matchers": ["topic=acme"], "duration_seconds": -5, "comment": "c"}', "(got -5)"),
        ('{"matchers": ["topic=acme"], "duration_seconds": "600", "comment": "c"}',
         '(got "600")'),
        ('{"matchers": ["topic=acme"], "duration_seconds": true, "comment": "c"}', "(got true)"),
        ('{"matchers": ["topic=acme"], "duration_seconds": NaN, "comment": "c"}', "(got NaN)"),
        ('{"matchers": ["topic=acme"], "duration_seconds": Infinity, "comment": "c"}',
         "(got Infinity)"),
        ('{"matchers": ["topic=acme"], "duration_seconds": 60, "comment": "c", "author": "bo"}',
         "unknown field 'author' (the author is the token's name)"),
        (json.dumps({"matchers": ["topic=acme"], "duration_seconds": 60, "comment": "c" * 1001}),
         "comment: at most 1000 characters (got 1001)"),
        (json.dumps({"matchers": ["topic=acme"] * 33, "duration_seconds": 60, "comment": "c"}),
         "matchers: at most 32 (got 33)"),
        (json.dumps({"matchers": ["topic=" + "a" * 251], "duration_seconds": 60,
                     "comment": "c"}), "matchers[0]: at most 256 characters (got 257)"),
        ("[1]", "expected a JSON object"),
        ('{"matchers": ["topic=acme"]', "body is not JSON"),
    ],
)  # fmt: skip
async def test_bad_silences_are_400s_naming_field_and_value(env: Env, raw: str, error: str) -> None:
    client, book, _ = env
    r = await client.post(
        "/api/v1/silences",
        data=raw,
        headers={**auth("ana-token"), "Content-Type": "application/json"},
    )
    assert r.status == 400 and book.calls == []
    assert error in (await r.json())["error"]


async def test_silence_list_state_is_checked_and_unknown_ids_are_404(env: Env) -> None:
    client, _, _ = env
    r = await client.get("/api/v1/silences?state=open", headers=auth("view-token"))
    assert r.status == 400 and await r.json() == {
        "error": "state: expected active or all (got 'open')"
    }
    r = await client.delete("/api/v1/silences/nope", headers=auth("ana-token"))
    assert r.status == 404 and await r.json() == {"error": "no such silence 'nope'"}


# The real IncidentService behind the routes: the demo config, reachable through "pager".
T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()  # ana (EMEA) is on call
ENDED = {"matchers": ["topic=old"], "start": "2026-01-13T08:00Z", "end": "2026-01-13T09:00Z",
         "author": "ops", "comment": "yesterday's window"}  # fmt: skip


class Live:
    """The routes over a real IncidentService; what it emitted and last saved."""

    def __init__(self) -> None:
        self.clock, self.registry = FakeClock(T0), CollectorRegistry()
        self.sent: list[Notification] = []
        self.saved: dict[str, Any] = {}
        config = AlertingConfig.model_validate(
            {"default_receivers": ["pager"], "silences": [ENDED]}
        )
        self.svc = IncidentService(config, self.clock, self.emit, persist=self.persist)
        self.app = web.Application()
        bob = {"name": "bob", "token_env": "TOK_BOB", "roles": ["responder"]}
        api = ApiConfig.model_validate({**CONFIG.model_dump(), "tokens": [*TOKENS, bob]})
        self.app.add_routes(
            api_routes(self.svc, api, clock=self.clock, registry=self.registry, env=ENV)
        )

    async def emit(self, n: Notification) -> None:
        await asyncio.sleep(0)  # I/O, like persist: other requests run meanwhile
        self.sent.append(n)

    async def persist(self, state: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.saved = json.loads(json.dumps(state))

    def paged(self, topic: str) -> list[str]:
        return [f"{n.action} {n.recipient}" for n in self.sent if n.incident["topic"] == topic]


@pytest.fixture
async def live() -> AsyncIterator[tuple[Live, TestClient[web.Request, web.Application]]]:
    rig = Live()
    async with TestClient(TestServer(rig.app)) as client:
        yield rig, client


LiveEnv = tuple[Live, TestClient[web.Request, web.Application]]


async def test_silences_are_created_listed_and_expired_over_http(
    live: LiveEnv, caplog: pytest.LogCaptureFixture
) -> None:
    rig, client = live
    caplog.set_level(logging.INFO, logger="alerting.service")
    r = await client.post("/api/v1/silences", json=SILENCE, headers=auth("ana-token"))
    assert r.status == 201
    now = (await r.json())["silence"]
    assert now["id"].startswith("s-") and now["id"] != "config-0"
    assert {k: now[k] for k in ("matchers", "start", "end", "author", "comment", "active")} == {
        "matchers": ["topic=acme"], "start": T0, "end": T0 + 3600, "author": "ana",
        "comment": "CMS release", "active": True,
    }  # fmt: skip
    later_body = {"matchers": ['kind=~"volume|terms"', "topic=acme"], "comment": "migration",
                  "start": "2026-01-14T13:00:00+01:00", "end": T0 + 9000}  # fmt: skip
    r = await client.post("/api/v1/silences", json=later_body, headers=auth("ana-token"))
    later = (await r.json())["silence"]
    assert r.status == 201 and (later["start"], later["active"]) == (T0 + 7200, False)
    assert later["matchers"] == ["kind=~volume|terms", "topic=acme"]

    r = await client.get("/api/v1/silences", headers=auth("view-token"))
    listed = (await r.json())["silences"]
    assert [s["id"] for s in listed] == [later["id"], now["id"], "config-0"]  # newest start first
    assert [s["active"] for s in listed] == [False, True, False]
    r = await client.get("/api/v1/silences?state=active", headers=auth("view-token"))
    assert [s["id"] for s in (await r.json())["silences"]] == [now["id"]]
    assert {s["id"] for s in rig.saved["escalation"]["silences"]} >= {now["id"], later["id"]}

    rig.clock.advance(600)
    for _ in range(2):  # a repeated expiry is answered the same, and counted and logged once
        r = await client.delete(f"/api/v1/silences/{now['id']}", headers=auth("ana-token"))
        gone = (await r.json())["silence"]
        assert r.status == 200 and (gone["end"], gone["active"]) == (T0 + 600, False)
    r = await client.get("/api/v1/silences?state=active", headers=auth("view-token"))
    assert (await r.json())["silences"] == []
    saved = {s["id"]: s for s in rig.saved["escalation"]["silences"]}
    assert saved[now["id"]]["end"] == T0 + 600  # the expiry outlives a restart

    def counted(action: str) -> float | None:
        return rig.registry.get_sample_value(
            "crisiswatch_incident_actions_total", {"action": action, "via": "api"}
        )

    assert (counted("silence"), counted("expire_silence")) == (2.0, 1.0)
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "alerting.service"]
    assert lines[0] == (
        f"silence {now['id']} added by ana: ['topic=acme'] from 2026-01-14T10:00:00.000Z"
        " to 2026-01-14T11:00:00.000Z, comment 'CMS release'"
    )
    assert lines[2] == f"silence {now['id']} expired by ana (author ana): ['topic=acme']"
    assert len(lines) == 3


async def test_a_silence_made_over_http_mutes_paging_until_it_is_deleted(
    live: LiveEnv,
) -> None:
    rig, client = live
    r = await client.post("/api/v1/silences", json=SILENCE, headers=auth("ana-token"))
    sid = (await r.json())["silence"]["id"]
    [acme] = await rig.svc.on_verdict(V("acme", T0, 0.9, 2, onset="open"))
    await rig.svc.on_verdict(V("beta", T0, 0.9, 2, onset="open"))  # not matched: pages
    assert rig.paged("acme") == [] and rig.paged("beta") == ["trigger ana"]
    rig.clock.advance(600)
    await rig.svc.runner.wake_due()
    assert rig.paged("acme") == [] and rig.paged("beta") == ["trigger ana", "trigger lead"]

    r = await client.delete(f"/api/v1/silences/{sid}", headers=auth("ana-token"))
    assert r.status == 200
    assert rig.paged("acme") == ["trigger ana"]  # at once, not at the silence's planned end
    timeline = [x["event"] for x in rig.svc.book.get(acme.incident.id).timeline]
    assert timeline.index("silenced") < timeline.index("unmuted") < timeline.index("level-1 paged")


async def test_concurrent_actions_are_counted_and_logged_once_by_whoever_made_them(
    live: LiveEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: ten resolves at once were counted and logged ten times, and of two responders
    acknowledging at once the log named the one the timeline did not."""
    rig, client = live
    caplog.set_level(logging.INFO, logger="alerting.api")
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 2, onset="open"))
    iid = ev.incident.id

    async def act(action: str, token: str) -> int:
        r = await client.post(f"/api/v1/incidents/{iid}/{action}", headers=auth(token))
        return r.status

    acks = await asyncio.gather(*(act("ack", t) for t in ["bob-token", "ana-token"] * 5))
    assert acks == [200] * 10
    acked_by = (await rig.svc.get(iid) or {})["acknowledged_by"]
    both = await asyncio.gather(
        *(act(a, "ana-token") for _ in range(10) for a in ("resolve", "ack"))
    )
    assert both[::2] == [200] * 10 and set(both[1::2]) <= {200, 409}
    for action in ("acknowledge", "resolve"):
        labels = {"action": action, "via": "api"}
        assert rig.registry.get_sample_value("crisiswatch_incident_actions_total", labels) == 1
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "alerting.api"]
    assert lines == [
        f"acknowledge {iid} by {acked_by!r} via api",
        f"resolve {iid} by 'ana' via api",
    ]


async def test_concurrent_expiries_of_a_silence_are_counted_once(live: LiveEnv) -> None:
    rig, client = live
    r = await client.post("/api/v1/silences", json=SILENCE, headers=auth("ana-token"))
    sid = (await r.json())["silence"]["id"]
    rig.clock.advance(60)
    async with rig.svc._lock:  # busy (paging, saving): all five read the silence, then wait
        deletes = [
            asyncio.create_task(client.delete(f"/api/v1/silences/{sid}", headers=auth("ana-token")))
            for _ in range(5)
        ]
        await asyncio.sleep(0.1)
    assert [r.status for r in await asyncio.gather(*deletes)] == [200] * 5
    labels = {"action": "expire_silence", "via": "api"}
    assert rig.registry.get_sample_value("crisiswatch_incident_actions_total", labels) == 1


async def test_a_newline_in_client_text_cannot_forge_a_log_line(
    live: LiveEnv, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    _, client = live
    caplog.set_level(logging.INFO)
    forged = "2026-01-14 10:00:00 CRITICAL alerting.service: FORGED"
    body = {**SILENCE, "comment": f"x\r\n{forged}"}  # matchers cannot hold a newline
    r = await client.post("/api/v1/silences", json=body, headers=auth("ana-token"))
    assert r.status == 201
    r = await client.delete(f"/api/v1/silences/{(await r.json())['silence']['id']}",
                            headers=auth("ana-token"))  # fmt: skip
    assert r.status == 200
    pd_client, _, _ = env
    pd = pd_body("incident.acknowledged").replace(b"Jane Doe", f"Jane\\n{forged}".encode())
    r = await pd_client.post(
        "/api/v1/webhooks/pagerduty", data=pd, headers={"X-PagerDuty-Signature": pd_sign(pd)}
    )
    assert (await r.json())["applied"] is True
    logged = [rec.getMessage() for rec in caplog.records if rec.name.startswith("alerting.")]
    assert len([m for m in logged if "FORGED" in m]) == 2
    assert not [m for m in logged if "\n" in m or "\r" in m]


async def post_pd(client: TestClient[web.Request, web.Application], body: bytes) -> Any:
    r = await client.post(
        "/api/v1/webhooks/pagerduty", data=body, headers={"X-PagerDuty-Signature": pd_sign(body)}
    )
    assert r.status == 200  # PagerDuty retries anything else
    return await r.json()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def test_pagerduty_echo_of_our_reopen_does_not_resolve_the_repage(
    live: LiveEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """QA t02: a severity rise after an ack re-pages; the PagerDuty notifier resolves the
    acknowledged PagerDuty incident and triggers a new one, and PagerDuty's webhook about that
    resolve resolved our freshly re-paged incident (and ended the detector's episode)."""
    rig, client = live
    caplog.set_level(logging.INFO, logger="alerting.api")
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 3, onset="open"))
    iid = ev.incident.id
    body = pd_body("incident.acknowledged", iid, occurred_at=iso(T0 + 60))
    assert await post_pd(client, body) == {"applied": True, "incident_id": iid}  # a person
    rig.clock.advance(600)
    assert [e.kind for e in await rig.svc.on_verdict(V("acme", T0 + 600, 0.99, 1))] == ["repaged"]
    assert rig.sent[-1].action == "trigger" and rig.sent[-1].reopen
    rig.clock.advance(3)
    echo = pd_body("incident.resolved", iid, agent=SERVICE_AGENT, occurred_at=iso(T0 + 601))
    out = await post_pd(client, echo)
    assert out["applied"] is False and "not made by a person" in out["reason"]
    inc = await rig.svc.get(iid) or {}
    assert (inc["state"], inc["resolved_by"], inc["severity"]) == ("triggered", None, 1)
    assert rig.sent[-1].action == "trigger"  # nothing resolved anywhere
    ignored = [r for r in caplog.records if r.name == "alerting.api" and "not applied" in r.msg]
    assert len(ignored) == 1 and ignored[0].levelno == logging.INFO


async def test_a_late_pagerduty_ack_of_the_previous_page_does_not_ack_the_repage(
    live: LiveEnv,
) -> None:
    """QA t02b: an ack that happened before our re-page (the acknowledgement timed out) is
    about the PagerDuty incident the re-page replaced; only a later ack is about the new one."""
    rig, client = live
    [ev] = await rig.svc.on_verdict(V("acme", T0, 0.9, 3, onset="open"))
    iid = ev.incident.id
    await rig.svc.acknowledge(iid, "ana")
    rig.clock.set(T0 + 1800)
    await rig.svc.tick()
    await rig.svc.runner.wake_due()
    inc = await rig.svc.get(iid) or {}
    assert inc["state"] == "triggered" and rig.sent[-1].reopen
    stale = pd_body("incident.acknowledged", iid, occurred_at=iso(T0 + 5))
    out = await post_pd(client, stale)
    assert out["applied"] is False and "before" in out["reason"]
    assert (await rig.svc.get(iid) or {})["state"] == "triggered"
    late_resolve = pd_body("incident.resolved", iid, occurred_at="2026-01-14T10:29:59Z")
    assert (await post_pd(client, late_resolve))["applied"] is False
    fresh = pd_body("incident.acknowledged", iid, occurred_at=iso(T0 + 1860))
    assert await post_pd(client, fresh) == {"applied": True, "incident_id": iid}
    inc = await rig.svc.get(iid) or {}
    assert (inc["state"], inc["acknowledged_by"]) == ("acknowledged", "pagerduty:Jane Doe")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"until": "tomorrow"}',
         "until: expected an ISO date-time like 2026-01-05T09:00, got 'tomorrow'"),
        ('{"seconds": "600"}', 'seconds: expected a number of seconds (got "600")'),
        ('{"seconds": true}', "seconds: expected a number of seconds (got true)"),
        ('{"seconds": 1e400}', "seconds: expected a number of seconds (got Infinity)"),
        ('{"until": [5]}', "until: expected an ISO date-time or epoch seconds (got [5])"),
    ],
)  # fmt: skip
async def test_snooze_errors_name_the_field_and_value(env: Env, raw: str, error: str) -> None:
    """QA t10: a wrongly typed value was reported as if the field were missing."""
    client, book, _ = env
    r = await client.post(
        "/api/v1/incidents/inc-1/snooze",
        headers={**auth("ana-token"), "Content-Type": "application/json"},
        data=raw,
    )
    assert r.status == 400 and await r.json() == {"error": error} and book.calls == []


async def test_snooze_until_takes_an_iso_time_like_silences(env: Env) -> None:
    client, book, _ = env  # the clock is at epoch 1000
    for until in ("1970-01-01T00:30Z", "1970-01-01T01:30+01:00", "1970-01-01T00:30"):
        r = await client.post(
            "/api/v1/incidents/inc-1/snooze", headers=auth("ana-token"), json={"until": until}
        )
        assert r.status == 200
    assert book.calls == [("snooze", "inc-1", 1800.0, "ana")] * 3
