from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from alerting.api import api_routes
from alerting.links import LinkClaim, LinkSigner
from monitor.clock import FakeClock
from monitor.config.receivers import ApiConfig
from monitor.errors import ConfigError, CrisiswatchError


class IncidentRefused(CrisiswatchError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


ENV = {"TOK_ANA": "ana-token", "TOK_VIEW": "view-token", "PD_WEBHOOK": "pd-secret"}
CONFIG = ApiConfig.model_validate(
    {
        "tokens": [
            {"name": "ana", "token_env": "TOK_ANA", "roles": ["responder"]},
            {"name": "wallboard", "token_env": "TOK_VIEW", "roles": ["viewer"]},
        ],
        "pagerduty_webhook_secret_env": "PD_WEBHOOK",
        "max_snooze_seconds": 86400,
    }
)


class Book:
    """An in-memory IncidentActions that records every call."""

    def __init__(self) -> None:
        self.incidents: dict[str, dict[str, Any]] = {
            "inc-1": {"id": "inc-1", "key": "acme/volume", "state": "triggered",
                      "title": "Crisis on <acme>"},
            "inc-0": {"id": "inc-0", "key": "acme/volume", "state": "resolved"},
        }  # fmt: skip
        self.calls: list[tuple[Any, ...]] = []

    def _set(self, i: str, state: str, call: tuple[Any, ...]) -> dict[str, Any] | None:
        self.calls.append(call)
        if i not in self.incidents:
            return None
        if self.incidents[i]["state"] == "resolved" and state != "resolved":
            raise IncidentRefused("incident is resolved")
        self.incidents[i] = {**self.incidents[i], "state": state}
        return self.incidents[i]

    async def acknowledge(self, incident_id: str, who: str) -> dict[str, Any] | None:
        return self._set(incident_id, "acknowledged", ("ack", incident_id, who))

    async def resolve(self, incident_id: str, who: str) -> dict[str, Any] | None:
        return self._set(incident_id, "resolved", ("resolve", incident_id, who))

    async def snooze(self, incident_id: str, until: float, who: str) -> dict[str, Any] | None:
        return self._set(incident_id, "snoozed", ("snooze", incident_id, until, who))

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        return self.incidents.get(incident_id)

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
    r = await client.post(
        "/api/v1/incidents/inc-1/snooze", headers=auth("ana-token"), json={"seconds": 600}
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


def pd_body(event_type: str, key: str = "acme/volume") -> bytes:
    return json.dumps(
        {
            "event": {
                "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-11-27T08:00:00.000Z",
                "agent": {"html_url": "https://x.pagerduty.com/users/P1", "id": "P1",
                          "summary": "Jane Doe", "type": "user_reference"},
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
