"""Routing tree, matchers and inhibition."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.inhibition import InhibitRule, inhibitor, mute_of
from alerting.routing import Matcher, Router
from alerting.silences import Silence, SilenceBook
from monitor.config import parse_config
from monitor.config.alerting import InhibitRuleConfig, RouteConfig
from monitor.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("topic=acme", {"topic": "acme"}, True),
        ("topic=acme", {"topic": "acme2"}, False),
        ("topic!=acme", {"topic": "beta"}, True),
        ("topic!=acme", {}, True),
        ("severity=~SEV1|SEV2", {"severity": "SEV2"}, True),
        ("severity=~SEV1|SEV2", {"severity": "SEV12"}, False),  # anchored like Alertmanager
        ("region!~us-.*", {"region": "us-east"}, False),
        ("region!~us-.*", {"region": "eu"}, True),
        ("region=", {}, True),  # a missing label is the empty string
        ('team="social media"', {"team": "social media"}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


def tree(d: dict[str, Any]) -> Router:
    return Router.from_config(RouteConfig.model_validate(d))


def test_first_matching_child_wins_and_children_refine() -> None:
    r = tree(
        {
            "policy": "default",
            "receivers": ["wall"],
            "routes": [
                {
                    "matchers": ["topic=acme"],
                    "policy": "acme",
                    "routes": [{"matchers": ["severity=SEV1"], "receivers": ["exec-sms"]}],
                },
                {"matchers": ["severity=SEV1"], "policy": "major"},
            ],
        }
    )
    d = r.route({"topic": "acme", "severity": "SEV1"})
    assert (d.policy, d.receivers, d.paths) == (
        "acme",
        ("exec-sms",),
        ("route.routes[0].routes[0]",),
    )
    d = r.route({"topic": "acme", "severity": "SEV3"})
    assert (d.policy, d.receivers) == ("acme", ("wall",))  # inherited receivers
    assert r.route({"topic": "beta", "severity": "SEV1"}).policy == "major"
    assert r.route({"topic": "beta", "severity": "SEV4"}).paths == ("route",)


def test_continue_collects_receivers_of_later_siblings() -> None:
    r = tree(
        {
            "policy": "default",
            "routes": [
                {"matchers": ["region=emea"], "receivers": ["slack-emea"], "continue": True},
                {
                    "matchers": ["severity=~SEV[12]"],
                    "policy": "major",
                    "receivers": ["slack-major"],
                },
                {"receivers": ["never"]},
            ],
        }
    )
    d = r.route({"region": "emea", "severity": "SEV2"})
    assert d.policy == "default"  # the first match decides the policy
    assert d.receivers == ("slack-emea", "slack-major")
    assert r.route({"region": "amer", "severity": "SEV4"}).receivers == ("never",)


def test_route_errors_name_the_path() -> None:
    bad = {"topics": [], "alerting": {"route": {"policy": "default", "routes": [{"policy": "x"}]}}}
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    assert err.value.path == "alerting.route.routes[0].policy"
    with pytest.raises(ConfigError) as err:
        parse_config({"topics": [], "alerting": {"route": {"matchers": ["a=~("]}}})
    assert err.value.path == "alerting.route.matchers[0]"


def inc(iid: str, sev: int, topic: str = "acme", state: str = "triggered") -> dict[str, Any]:
    return {"id": iid, "topic": topic, "kind": "volume", "severity": sev, "state": state}


def test_sev1_inhibits_lower_severities_of_the_same_topic_only() -> None:
    rules = [InhibitRule.from_config(InhibitRuleConfig())]
    sev1, sev2, other = inc("a", 1), inc("b", 2), inc("c", 3, topic="beta")
    everything = [sev1, sev2, other]
    assert inhibitor(sev2, everything, rules) == "a"
    assert inhibitor(other, everything, rules) is None  # other topic
    assert inhibitor(sev1, everything, rules) is None  # never itself / a SEV1
    resolved = inc("a", 1, state="resolved")
    assert inhibitor(sev2, [resolved, sev2], rules) is None


def test_silence_beats_inhibition_and_carries_its_end() -> None:
    rules = [InhibitRule.from_config(InhibitRuleConfig())]
    silences = SilenceBook([Silence.new("s", ["topic=acme"], 0, 100, "ana", "deploy")])
    m = mute_of(inc("b", 2), [inc("a", 1), inc("b", 2)], silences, rules, 50)
    assert m is not None and (m.kind, m.by, m.until) == ("silenced", "s", 100.0)
    m = mute_of(inc("b", 2), [inc("a", 1), inc("b", 2)], silences, rules, 100)
    assert m is not None and (m.kind, m.by) == ("inhibited", "a")
    assert mute_of(inc("b", 2), [inc("b", 2)], silences, [], 100) is None
