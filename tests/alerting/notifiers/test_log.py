"""The ``log`` receiver, and the shipped demo config paging through it."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from alerting.escalation import EscalationState, Notify, Plan, Trigger, step
from alerting.notification import Notification
from alerting.notifiers import build_notifiers
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.config.receivers import LogReceiver

ROOT = Path(__file__).resolve().parents[3]


async def test_a_log_receiver_writes_one_line_per_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(
            [LogReceiver(name="console", type="log")], session, env={}, clock=FakeClock(0.0)
        )
    inc = {"id": "inc-7", "topic": "acme", "severity": 1, "score": 0.97}
    with caplog.at_level(logging.WARNING, logger="crisiswatch.pages"):
        await notifiers["console"].send(
            Notification("inc-7/1", "console", "trigger", "inc-7", inc, 0.0, recipient="ana")
        )
    assert caplog.messages == [
        "trigger to ana via console: Crisis on acme (SEV1, score 0.97) [inc-7]"
    ]


def test_the_shipped_demo_pages_its_on_call_person_through_the_console() -> None:
    """`make run` has no external receiver, yet a crisis must page someone, not nobody."""
    cfg = load_config(ROOT / "config" / "default.yaml")
    state = EscalationState.new("inc-1", Plan.from_config(cfg.alerting))
    incident = {"id": "inc-1", "topic": "acme", "severity": 2, "state": "triggered", "labels": {}}
    _, commands = step(state, Trigger(incident), 1_700_000_000.0)
    pages = [c.notification for c in commands if isinstance(c, Notify)]
    assert pages and {p.receiver for p in pages} == {"console"}
    assert all(p.recipient for p in pages)


@pytest.mark.parametrize(
    ("kind", "carries"),
    [
        ("volume", "volume 253 vs 36.6 expected (6.9x)"),
        ("sentiment", "negative 74% vs 15% usual"),
        ("terms", "terms: outage, störung"),
    ],
)
async def test_a_page_line_says_how_bad_by_its_own_kind(
    caplog: pytest.LogCaptureFixture, kind: str, carries: str
) -> None:
    """A push or a log line shows the summary only: it carries the kind's own evidence."""
    async with aiohttp.ClientSession() as session:
        notifiers = build_notifiers(
            [LogReceiver(name="console", type="log")], session, env={}, clock=FakeClock(0.0)
        )
    inc = {
        "id": "inc-8",
        "topic": "acme",
        "kind": kind,
        "title": f"SEV2 ACME Corp: {kind} crisis",
        "severity": 2,
        "explanation": {
            "observed": 253,
            "expected": 36.6,
            "signals": {"volume": 0.5, "sentiment": 1.0, "terms": 0.74},
            "fired": ["volume", "sentiment", "terms"],
            "sentiment": {"negative_share": 0.74, "baseline_share": 0.15},
            "top_terms": [["outage", 3.7], ["störung", 2.5]],
            "top_channels": [["x", 86]],
        },
    }
    with caplog.at_level(logging.WARNING, logger="crisiswatch.pages"):
        await notifiers["console"].send(
            Notification("inc-8/1", "console", "trigger", "inc-8", inc, 0.0, recipient="ana")
        )
    assert caplog.messages == [
        f"trigger to ana via console: SEV2 ACME Corp: {kind} crisis · {carries} [inc-8]"
    ]
