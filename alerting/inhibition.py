"""Inhibition and the one mute decision escalation asks before it pages.

A SEV1 incident mutes lower-severity incidents of the same topic (default rule), so the
responder hears about the crisis once, at its worst. Silences mute too. Both are pure
functions of the incident, the other open incidents, the silences and ``now``.

>>> rules = [InhibitRule.from_config(InhibitRuleConfig())]
>>> sev1 = {"id": "a", "topic": "acme", "kind": "volume", "severity": 1, "state": "triggered"}
>>> sev3 = {"id": "b", "topic": "acme", "kind": "terms", "severity": 3, "state": "triggered"}
>>> mute_of(sev3, [sev1, sev3], SilenceBook(), rules, 0.0)
Mute(kind='inhibited', by='a', until=None)
>>> mute_of(sev1, [sev1, sev3], SilenceBook(), rules, 0.0) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alerting.incidents import match_labels
from alerting.routing import Matcher, compile_matchers, matches_all
from alerting.silences import SilenceBook
from monitor.config.alerting import InhibitRuleConfig


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: InhibitRuleConfig) -> InhibitRule:
        return cls(
            compile_matchers(cfg.source_matchers),
            compile_matchers(cfg.target_matchers),
            tuple(cfg.equal),
        )


@dataclass(frozen=True, slots=True)
class Mute:
    """Why an incident pages nobody right now; ``until`` is known for silences."""

    kind: Literal["silenced", "inhibited"]
    by: str  # silence id or inhibiting incident id
    until: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "by": self.by, "until": self.until}


def may_inhibit(
    source: Mapping[str, str], target: Mapping[str, str], rules: Iterable[InhibitRule]
) -> bool:
    """Whether an incident labelled `source` could mute one labelled `target` under `rules`
    (the labels of :func:`match_labels`): a cheap filter before :func:`mute_of`.

    >>> rule = InhibitRule.from_config(InhibitRuleConfig())
    >>> sev1 = {"topic": "acme", "severity": "SEV1"}
    >>> may_inhibit(sev1, {"topic": "acme", "severity": "SEV3"}, [rule])
    True
    >>> may_inhibit(sev1, {"topic": "globex", "severity": "SEV3"}, [rule])
    False
    """
    return any(
        matches_all(r.source, source)
        and matches_all(r.target, target)
        and all(source.get(k, "") == target.get(k, "") for k in r.equal)
        for r in rules
    )


def inhibitor(
    incident: Mapping[str, Any],
    open_incidents: Iterable[Mapping[str, Any]],
    rules: Iterable[InhibitRule],
) -> str | None:
    """The id of an open incident that inhibits ``incident``, if any.

    As in Alertmanager, an incident that matches both sides of a rule is not inhibited by
    others that do too: with ``SEV1|SEV2`` muting ``SEV2|SEV3|SEV4``, two SEV2s of one topic
    muted each other and neither paged.

    >>> rule = InhibitRule.from_config(InhibitRuleConfig(
    ...     source_matchers=["severity=~SEV[12]"], target_matchers=["severity=~SEV[234]"]))
    >>> a = {"id": "a", "topic": "acme", "kind": "volume", "severity": 2, "state": "triggered"}
    >>> b = {**a, "id": "b", "kind": "terms"}
    >>> c = {**a, "id": "c", "severity": 3}
    >>> [inhibitor(x, [a, b, c], [rule]) for x in (a, b, c)]
    [None, None, 'a']
    """
    labels = match_labels(incident)
    others = [
        (o, match_labels(o))
        for o in open_incidents
        if o.get("id") != incident.get("id") and o.get("state") != "resolved"
    ]
    for rule in rules:
        if not matches_all(rule.target, labels):
            continue
        both_sides = matches_all(rule.source, labels)
        for other, ol in others:
            if (
                matches_all(rule.source, ol)
                and all(ol.get(k, "") == labels.get(k, "") for k in rule.equal)
                and not (both_sides and matches_all(rule.target, ol))
            ):
                return str(other.get("id"))
    return None


def mute_of(
    incident: Mapping[str, Any],
    open_incidents: Iterable[Mapping[str, Any]],
    silences: SilenceBook,
    rules: Iterable[InhibitRule],
    now: float,
) -> Mute | None:
    """Silences first (they carry an end), then inhibition."""
    hits = silences.matching(match_labels(incident), now)
    if hits:
        last = max(hits, key=lambda s: s.end)
        return Mute("silenced", last.id, last.end)
    by = inhibitor(incident, open_incidents, rules)
    return Mute("inhibited", by, None) if by is not None else None
