"""Slack message bodies: nothing a post or a topic says may become Slack markup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alerting.notification import Action, Notification
from alerting.notifiers.slack import slack_message
from tests.alerting.notifiers.receiver import TITLED

HOSTILE: dict[str, Any] = {
    "id": "inc-1",
    "topic": "acme",
    "title": "<!channel> acme & <@U0ADMIN>",
    "severity": 2,
    "score": 0.9,
    "acknowledged_by": "<!here>",
    "resolved_by": "<!everyone>",
    "samples": [{"text": "hi", "url": "https://x.example/1><!channel|x", "author": "@a"}],
}


def note(action: Action) -> Notification:
    return Notification("n-1", "sl", action, "inc-1", HOSTILE, 0.0)


@pytest.mark.parametrize("action", ["trigger", "acknowledge", "resolve"])
def test_no_special_mention_reaches_slack_unescaped(action: Action) -> None:
    body = slack_message(note(action))
    assert body["text"].count("&lt;!channel&gt; acme &amp; &lt;@U0ADMIN&gt;") == 1
    # mrkdwn everywhere (fallback text included): no mention, no link break-out
    for mention in ("<!channel", "<!here", "<!everyone", "<@U0ADMIN"):
        assert mention not in json.dumps(_mrkdwn(body))


def _mrkdwn(body: dict[str, Any]) -> list[str]:
    out = [body["text"]]
    for b in body["blocks"]:
        texts = [b.get("text"), *b.get("fields", []), *b.get("elements", [])]
        out += [t["text"] for t in texts if isinstance(t, dict) and t.get("type") == "mrkdwn"]
    return out


def test_a_titled_page_says_its_severity_once_in_the_push_text() -> None:
    body = slack_message(Notification("n-1", "sl", "trigger", "i1", TITLED, 0.0))
    assert body["text"] == (
        "SEV2: ACME Corp: volume crisis · volume 253 vs 36.6 expected (6.9x) (score 0.90)"
    )
