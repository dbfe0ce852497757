"""Slack incoming webhook with Block Kit: summary, score, drivers, sample posts, action links.

>>> slack_escape("a < b & c")
'a &lt; b &amp; c'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from alerting.notification import Notification
from alerting.notifiers.base import IncidentView, clip, post
from monitor.clock import Clock
from monitor.config.receivers import SlackReceiver, secret

_BUTTONS = (
    ("ack", "Acknowledge", "primary"),
    ("resolve", "Resolve", None),
    ("snooze", "Snooze 1h", None),
)
_EMOJI = {
    1: ":rotating_light:",
    2: ":red_circle:",
    3: ":large_orange_circle:",
    4: ":large_blue_circle:",
}


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(
    n: Notification, *, max_samples: int = 3, mention: str | None = None
) -> dict[str, Any]:
    """The webhook body for `n`: a plain `text` fallback plus blocks."""
    v = IncidentView.of(n.incident)
    # a follow-up names the incident; the numbers were in the page
    title = clip(v.summary if n.action == "trigger" else v.title, 140)
    if n.action != "trigger":
        who = n.incident.get("acknowledged_by" if n.action == "acknowledge" else "resolved_by")
        verb = "acknowledged" if n.action == "acknowledge" else "resolved"
        line = f":white_check_mark: *{slack_escape(title)}* {verb}" + (
            f" by {slack_escape(str(who))}" if who else ""
        )
        return {
            "text": f"{verb}: {slack_escape(title)}",  # mrkdwn too: it notifies mentions
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}}],
        }
    score = "n/a" if v.score is None else f"{v.score:.2f}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{_EMOJI[v.severity]} SEV{v.severity}"},
                {"type": "mrkdwn", "text": f"*Score*\n{score}"},
                {"type": "mrkdwn", "text": f"*Topic*\n{slack_escape(v.topic)}"},
                {"type": "mrkdwn", "text": f"*Incident*\n`{slack_escape(v.id)}`"},
            ],
        },
    ]
    if v.drivers:
        lines = "\n".join(f"• {slack_escape(d)}" for d in v.drivers[:8])
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Drivers*\n{lines}"}}
        )
    for s in v.samples[:max_samples]:
        quote = slack_escape(clip(s.text.replace("\n", " "), 280))
        by = f" — {slack_escape(s.author)}" if s.author else ""
        # A "|" or ">" in a post's URL would end the link and let the rest be markup.
        link = f" <{slack_escape(str(s.url)).replace('|', '%7C')}|open>" if s.url else ""
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f">{quote}\n{by}{link}".strip()}}
        )
    buttons: list[dict[str, Any]] = []
    for key, label, style in _BUTTONS:
        href = n.links.get(key)
        if href:
            b: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": label},
                "url": href,
                "action_id": f"crisiswatch_{key}",
            }
            if style:
                b["style"] = style
            buttons.append(b)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if n.recipient:
        # A Slack mention (``<@U123>``) is markup on purpose, so it is not escaped.
        who = mention or slack_escape(n.recipient)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"paging {who}"}]}
        )
    headline = slack_escape(clip(v.headline, 140))
    return {"text": f"SEV{v.severity}: {headline} (score {score})", "blocks": blocks}


class SlackNotifier:
    # one message per person: the outbox orders them per recipient, not per incident
    per_recipient = True

    def __init__(
        self,
        cfg: SlackReceiver,
        session: aiohttp.ClientSession,
        *,
        url: str,
        clock: Clock,
        contacts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._cfg, self._session, self._url, self._clock = cfg, session, url, clock
        self._contacts = contacts or {}

    @classmethod
    def from_config(
        cls,
        cfg: SlackReceiver,
        session: aiohttp.ClientSession,
        *,
        env: Mapping[str, str],
        clock: Clock,
        contacts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> SlackNotifier:
        url = secret(env, cfg.url_env, f"receivers.{cfg.name}.url_env")
        return cls(cfg, session, url=url, clock=clock, contacts=contacts)

    def __repr__(self) -> str:  # the webhook URL is a credential
        return f"SlackNotifier({self._cfg.name!r})"

    async def send(self, n: Notification) -> None:
        mention = self._contacts.get(n.recipient or "", {}).get("slack")
        body = slack_message(n, max_samples=self._cfg.max_samples, mention=mention)
        await post(
            self._session,
            self._cfg.name,
            self._url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            timeout=self._cfg.timeout_seconds,
            clock=self._clock,
        )
