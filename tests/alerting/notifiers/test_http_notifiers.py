from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest

from alerting.notification import Notification
from alerting.notifiers import RateLimited, build_notifiers
from alerting.notifiers.alertmanager import AlertmanagerNotifier
from alerting.notifiers.pagerduty import PagerDutyNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.webhook import WebhookNotifier
from monitor.clock import FakeClock
from monitor.config.receivers import DeliveryConfig
from monitor.errors import ConfigError, DeliveryError
from tests.alerting.notifiers.receiver import Answer, Receiver

INCIDENT: dict[str, Any] = {
    "id": "inc-7",
    "topic": "acme",
    "severity": 1,
    "score": 0.973,
    "opened_at": 1_700_000_000.0,
    "drivers": ["volume 6.1x baseline", {"name": "negativity", "detail": "71% negative"}],
    "samples": [
        {
            "text": "acme <app> is down & nobody answers",
            "url": "https://x.example/1",
            "author": {"handle": "@ann"},
        },
        {"text": "same here", "url": None, "author": "@bob"},
    ],
    "state": "triggered",
}
LINKS = {"ack": "http://cw/act/A", "resolve": "http://cw/act/R", "snooze": "http://cw/act/S"}


def note(action: str = "trigger", **kw: Any) -> Notification:
    base: dict[str, Any] = dict(
        id="n-1",
        receiver="r",
        action=action,
        dedup_key="acme/volume",
        incident=INCIDENT,
        created_at=1_700_000_005.0,
        recipient="alice",
        links=LINKS,
    )
    base.update(kw)
    return Notification(**base)


def cfg(*receivers: dict[str, Any]) -> DeliveryConfig:
    return DeliveryConfig.model_validate({"receivers": list(receivers)})


async def test_pagerduty_trigger_ack_resolve_exact_json() -> None:
    clock = FakeClock(1_700_000_010.0)
    async with Receiver(202) as rx, aiohttp.ClientSession() as s:
        c = cfg(
            {
                "name": "pd",
                "type": "pagerduty",
                "url": rx.url("/v2/enqueue"),
                "routing_key_env": "PD_KEY",
                "client_url": "http://cw/",
            }
        )
        n = build_notifiers(c.receivers, s, env={"PD_KEY": "R0UT1NG"}, clock=clock)["pd"]
        assert isinstance(n, PagerDutyNotifier) and "R0UT1NG" not in repr(n)
        await n.send(note())
        await n.send(note("acknowledge", id="n-2"))
        await n.send(note("resolve", id="n-3"))
    assert [r.path for r in rx.requests] == ["/v2/enqueue"] * 3
    assert rx.requests[0].headers["Content-Type"] == "application/json"
    assert rx.requests[0].json() == {
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "dedup_key": "acme/volume",
        "payload": {
            "summary": "Crisis on acme (SEV1, score 0.97) · volume 6.1x baseline",
            "source": "crisiswatch",
            "severity": "critical",
            "timestamp": "2023-11-14T22:13:20.000Z",
            "component": "acme",
            "group": "acme",
            "class": "crisis",
            "custom_details": {
                "incident_id": "inc-7",
                "severity": "SEV1",
                "score": 0.973,
                "drivers": ["volume 6.1x baseline", "negativity: 71% negative"],
                "samples": [
                    {
                        "text": "acme <app> is down & nobody answers",
                        "url": "https://x.example/1",
                        "author": "@ann",
                    },
                    {"text": "same here", "url": None, "author": "@bob"},
                ],
                "recipient": "alice",
            },
        },
        "links": [
            {"href": "http://cw/act/A", "text": "Acknowledge"},
            {"href": "http://cw/act/R", "text": "Resolve"},
            {"href": "http://cw/act/S", "text": "Snooze"},
        ],
        "client": "crisiswatch",
        "client_url": "http://cw/",
    }
    assert rx.requests[1].json() == {
        "routing_key": "R0UT1NG",
        "event_action": "acknowledge",
        "dedup_key": "acme/volume",
    }
    assert rx.requests[2].json() == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": "acme/volume",
    }


async def test_pagerduty_re_page_after_an_ack_resolves_then_triggers() -> None:
    """A trigger for an alert PagerDuty holds acknowledged rings nobody: a re-page (``reopen``)
    resolves it first, so the trigger opens a new alert with the same key."""
    async with Receiver(202) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        await n.send(note(reopen=True))
        await n.send(note(id="n-2"))
    sent = [r.json() for r in rx.requests]
    assert [(b["event_action"], b["dedup_key"]) for b in sent] == [
        ("resolve", "acme/volume"),
        ("trigger", "acme/volume"),
        ("trigger", "acme/volume"),
    ]
    assert sent[0] == {"routing_key": "k", "event_action": "resolve", "dedup_key": "acme/volume"}


@pytest.mark.parametrize("sev,name", [(1, "critical"), (2, "error"), (3, "warning"), (4, "info")])
async def test_pagerduty_severity_mapping(sev: int, name: str) -> None:
    async with Receiver(202) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        await n.send(note(incident={**INCIDENT, "severity": sev}))
    assert rx.requests[0].json()["payload"]["severity"] == name


@pytest.mark.parametrize(
    "answer,recoverable,status",
    [
        (Answer(400, '{"status":"invalid event"}'), False, 400),
        (Answer(403), False, 403),
        (Answer(500), True, 500),
        (Answer(503), True, 503),
    ],
)
async def test_http_errors_carry_recoverable_and_status(
    answer: Answer, recoverable: bool, status: int
) -> None:
    async with Receiver(answer) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        with pytest.raises(DeliveryError) as ei:
            await n.send(note())
    assert (ei.value.recoverable, ei.value.status, ei.value.target) == (recoverable, status, "pd")


async def test_429_is_rate_limited_with_retry_after() -> None:
    answer = Answer(429, "slow down", {"Retry-After": "17"})
    async with Receiver(answer) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        with pytest.raises(RateLimited) as ei:
            await n.send(note())
    assert ei.value.recoverable and ei.value.retry_after == 17.0 and ei.value.status == 429


async def test_connection_refused_is_recoverable() -> None:
    async with Receiver() as rx:
        url = rx.url("/gone")
    async with aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": url, "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        with pytest.raises(DeliveryError) as ei:
            await n.send(note())
    assert ei.value.recoverable and ei.value.status is None
    # where and why, for the log and /healthz (the class name alone left the operator
    # guessing; QA), never the URL's path, where a webhook keeps its secret
    host_port = url.split("//")[1].split("/")[0]
    assert ei.value.reason.startswith(f"ClientConnectorError: cannot connect to {host_port}: ")
    assert "[Errno 111]" in ei.value.reason and "/gone" not in ei.value.reason


async def test_missing_secret_names_the_variable_not_a_value() -> None:
    c = cfg({"name": "pd", "type": "pagerduty", "routing_key_env": "PD_NOPE"})
    async with aiohttp.ClientSession() as s:
        with pytest.raises(
            ConfigError,
            match=r"receivers\.pd\.routing_key_env: environment variable PD_NOPE is not set",
        ):
            build_notifiers(c.receivers, s, env={}, clock=FakeClock())


async def test_alertmanager_v2_firing_then_resolved() -> None:
    clock = FakeClock(1_700_000_060.0)
    async with Receiver(200) as rx, aiohttp.ClientSession() as s:
        c = cfg(
            {
                "name": "am",
                "type": "alertmanager",
                "url": rx.url("/"),
                "repeat_seconds": 30,
                "labels": {"team": "social"},
            }
        )
        n = build_notifiers(c.receivers, s, env={}, clock=clock)["am"]
        assert isinstance(n, AlertmanagerNotifier) and n.repeat_seconds == 30
        await n.send(note())
        clock.advance(90)
        await n.send(note("resolve", id="n-9"))
    assert [r.path for r in rx.requests] == ["/api/v2/alerts", "/api/v2/alerts"]
    labels = {
        "alertname": "CrisiswatchIncident",
        "dedup_key": "acme/volume",
        "topic": "acme",
        "severity": "critical",
        "team": "social",
    }
    annotations = {
        "summary": "Crisis on acme (SEV1, score 0.97) · volume 6.1x baseline",
        "incident_id": "inc-7",
        "drivers": "volume 6.1x baseline; negativity: 71% negative",
        "score": "0.973",
        "ack_url": "http://cw/act/A",
        "resolve_url": "http://cw/act/R",
        "snooze_url": "http://cw/act/S",
    }
    assert rx.requests[0].json() == [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:16:20.000Z",
        }
    ]
    assert rx.requests[1].json() == [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:15:50.000Z",
        }
    ]


async def test_slack_blocks_have_summary_score_drivers_samples_and_ack_link() -> None:
    async with Receiver(200) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "sl", "type": "slack", "url_env": "SLACK_URL", "max_samples": 1})
        n = build_notifiers(
            c.receivers, s, env={"SLACK_URL": rx.url("/services/T/B/X")}, clock=FakeClock()
        )["sl"]
        assert isinstance(n, SlackNotifier) and "services" not in repr(n)
        await n.send(note())
        await n.send(
            note("acknowledge", id="n-2", incident={**INCIDENT, "acknowledged_by": "alice"})
        )
    assert rx.requests[0].path == "/services/T/B/X"
    assert rx.requests[0].json() == {
        "text": "SEV1: Crisis on acme (SEV1, score 0.97) · volume 6.1x baseline (score 0.97)",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": "Crisis on acme (SEV1, score 0.97) · volume 6.1x baseline",
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Severity*\n:rotating_light: SEV1"},
                    {"type": "mrkdwn", "text": "*Score*\n0.97"},
                    {"type": "mrkdwn", "text": "*Topic*\nacme"},
                    {"type": "mrkdwn", "text": "*Incident*\n`inc-7`"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Drivers*\n• volume 6.1x baseline\n• negativity: 71% negative",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ">acme &lt;app&gt; is down &amp; nobody answers\n — @ann <https://x.example/1|open>",
                },
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "url": "http://cw/act/A",
                        "action_id": "crisiswatch_ack",
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Resolve"},
                        "url": "http://cw/act/R",
                        "action_id": "crisiswatch_resolve",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Snooze 1h"},
                        "url": "http://cw/act/S",
                        "action_id": "crisiswatch_snooze",
                    },
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "paging alice"}]},
        ],
    }
    assert rx.requests[1].json() == {
        "text": "acknowledged: Crisis on acme (SEV1, score 0.97)",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":white_check_mark: *Crisis on acme (SEV1, score 0.97)*"
                    " acknowledged by alice",
                },
            }
        ],
    }


async def test_slack_invalid_payload_is_permanent() -> None:
    async with Receiver(Answer(400, "invalid_payload")) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "sl", "type": "slack", "url_env": "U"})
        n = build_notifiers(c.receivers, s, env={"U": rx.url()}, clock=FakeClock())["sl"]
        with pytest.raises(DeliveryError) as ei:
            await n.send(note())
    assert not ei.value.recoverable and "invalid_payload" in ei.value.reason


async def test_webhook_is_signed_over_the_raw_body() -> None:
    clock = FakeClock(1_700_000_123.0)
    async with Receiver(204) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "hook", "type": "webhook", "url": rx.url("/in"), "secret_env": "HOOK_S"})
        n = build_notifiers(c.receivers, s, env={"HOOK_S": "s3cret"}, clock=clock)["hook"]
        assert isinstance(n, WebhookNotifier)
        await n.send(note())
    req = rx.requests[0]
    expected = hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Crisiswatch-Signature"] == f"v1={expected}"
    assert req.headers["X-Crisiswatch-Id"] == "n-1"
    assert req.headers["X-Crisiswatch-Timestamp"] == "1700000123"
    assert json.loads(req.body) == {
        "version": 1,
        "id": "n-1",
        "receiver": "r",
        "action": "trigger",
        "dedup_key": "acme/volume",
        "recipient": "alice",
        "created_at": 1_700_000_005.0,
        "sent_at": 1_700_000_123.0,
        "summary": "Crisis on acme (SEV1, score 0.97) · volume 6.1x baseline",
        "severity": 1,
        "incident": INCIDENT,
        "links": LINKS,
    }


async def test_slack_mentions_the_paged_user_from_contacts() -> None:
    async with Receiver(200) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "sl", "type": "slack", "url_env": "U"})
        contacts = {"alice": {"slack": "<@U024BE7LH>"}}
        n = build_notifiers(
            c.receivers, s, env={"U": rx.url()}, clock=FakeClock(), contacts=contacts
        )["sl"]
        await n.send(note())
    context = rx.requests[0].json()["blocks"][-1]
    assert context["elements"] == [{"type": "mrkdwn", "text": "paging <@U024BE7LH>"}]


async def test_drivers_and_samples_come_from_the_detector_explanation() -> None:
    incident = {
        "id": "acme/volume#3", "key": "acme/volume", "topic": "acme", "kind": "volume",
        "state": "triggered", "severity": 2, "score": 0.9, "opened_at": 0.0,
        "explanation": {
            "observed": 90, "expected": 30.0, "signals": {"volume": 0.9}, "fired": ["volume"],
            "top_terms": [["refund", 4.2]], "top_channels": [["x", 70]],
            "samples": [{"id": "m1", "channel": "x", "author": "@c", "followers": 10,
                         "text": "refund now", "sentiment": -0.8, "url": "https://x/m1"}],
        },
    }  # fmt: skip
    async with Receiver(202) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        await n.send(note(incident=incident, dedup_key="acme/volume#3"))
    details = rx.requests[0].json()["payload"]["custom_details"]
    assert details["drivers"] == [
        "volume 90 vs 30.0 expected (3.0x)", "signal volume 0.90", "terms: refund",
        "channels: x 70"]  # fmt: skip
    assert details["samples"] == [{"text": "refund now", "url": "https://x/m1", "author": "@c"}]


async def test_a_redirect_is_an_error_not_a_delivery() -> None:
    # Following it would turn the POST into a GET without the body (301/302/303); whatever
    # answers that GET with 200 would mark a page delivered that nobody received.
    moved = Answer(301, "moved", {"Location": "/elsewhere"})
    async with Receiver(moved, 200) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "hook", "type": "webhook", "url": rx.url("/in"), "secret_env": "S"})
        n = build_notifiers(c.receivers, s, env={"S": "s"}, clock=FakeClock())["hook"]
        with pytest.raises(DeliveryError) as ei:
            await n.send(note())
    assert [(r.method, r.path) for r in rx.requests] == [("POST", "/in")]
    assert (ei.value.recoverable, ei.value.status) == (False, 301)
    assert "/elsewhere" in ei.value.reason  # the operator sees where the URL should point


async def test_pagerduty_event_stays_under_the_512kb_limit_with_long_samples() -> None:
    # Mention texts may be up to 100,000 characters; PagerDuty answers 400 (never retried,
    # the page is lost) to an event over 512 KB.
    long = {"text": "🔥 " * 50_000, "url": "https://x.example/1", "author": "@ann"}
    incident = {**INCIDENT, "samples": [long] * 5}
    async with Receiver(202) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        await n.send(note(incident=incident))
    assert len(rx.requests[0].body) < 512 * 1024
    details = rx.requests[0].json()["payload"]["custom_details"]
    assert len(details["samples"]) == 5
    assert details["samples"][0]["text"].startswith("🔥 🔥")
    assert details["samples"][0]["url"] == "https://x.example/1"


def test_alertmanager_severity_label_is_the_worst_so_far() -> None:
    from alerting.notifiers.alertmanager import alertmanager_alert

    eased = {**INCIDENT, "severity": 3, "peak_severity": 1}
    for action in ("trigger", "acknowledge", "resolve"):
        a = alertmanager_alert(note(action, incident=eased), now=0.0, repeat_seconds=60.0)
        assert a["labels"]["severity"] == "critical"  # the label set (identity) stays put


@pytest.mark.parametrize("value", ["inf", "1e999", "nan"])
async def test_a_non_finite_retry_after_is_ignored(value: str) -> None:
    # float() reads these; an infinite floor would make the outbox expire the page at once.
    answer = Answer(429, "slow down", {"Retry-After": value})
    async with Receiver(answer) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=FakeClock())["pd"]
        with pytest.raises(RateLimited) as ei:
            await n.send(note())
    assert ei.value.recoverable and ei.value.retry_after is None


@pytest.mark.parametrize(
    "value,expected",
    [("30", 30.0), ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0), ("soon", None)],
)
async def test_503_carries_its_retry_after(value: str, expected: float | None) -> None:
    answer = Answer(503, "maintenance", {"Retry-After": value})
    async with Receiver(answer) as rx, aiohttp.ClientSession() as s:
        c = cfg({"name": "pd", "type": "pagerduty", "url": rx.url(), "routing_key_env": "K"})
        clock = FakeClock(1_700_000_000.0)  # 22:13:20 GMT
        n = build_notifiers(c.receivers, s, env={"K": "k"}, clock=clock)["pd"]
        with pytest.raises(DeliveryError) as ei:
            await n.send(note())
    err = ei.value
    assert (err.recoverable, err.status, err.reason) == (True, 503, "HTTP 503: maintenance")
    assert getattr(err, "retry_after", None) == expected
