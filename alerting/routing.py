"""Routing: label matchers and the Alertmanager-like tree that picks a policy and receivers.

An incident's labels are its topic's labels plus ``topic``, ``kind``, ``severity`` (``SEV1``..)
and ``key``. A route matches when all its matchers do; the first matching child refines it
(unless a child sets ``continue``, then later siblings are tried too); a route with no matching
child is itself a result. ``policy`` and ``receivers`` are inherited downwards when left empty.

>>> from monitor.config.alerting import RouteConfig
>>> tree = Router.from_config(RouteConfig.model_validate({"policy": "default", "routes": [
...     {"matchers": ["severity=SEV1"], "policy": "sev1", "receivers": ["slack"]},
...     {"matchers": ["topic=~acme|beta"], "receivers": ["email"]}]}))
>>> tree.route({"severity": "SEV1", "topic": "acme"})
RouteDecision(policy='sev1', receivers=('slack',), paths=('route.routes[0]',))
>>> tree.route({"severity": "SEV3", "topic": "beta"}).receivers
('email',)
>>> tree.route({"severity": "SEV3", "topic": "gamma"}).paths
('route',)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.config.alerting import MatchOp, RouteConfig, parse_matcher


@dataclass(frozen=True, slots=True)
class Matcher:
    """One ``name op value`` test. Regexes match the whole value; a missing label is ``""``.

    >>> Matcher.parse("region!=us").matches({})
    True
    >>> Matcher.parse("severity=~SEV[12]").matches({"severity": "SEV12"})
    False
    """

    name: str
    op: MatchOp
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        return cls(*parse_matcher(text))

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        # Quote a value that parse_matcher would otherwise trim or unquote (persisted silences
        # are stored as these strings and must mean the same after a restart).
        v = self.value
        if v != v.strip() or (len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'"):
            v = f'"{v}"'
        return f"{self.name}{self.op}{v}"


def compile_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(t) for t in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """All matchers hold (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    policy: str
    receivers: tuple[str, ...]
    paths: tuple[str, ...]  # which routes matched, for the timeline and for debugging


@dataclass(frozen=True, slots=True)
class Router:
    """A compiled route node; ``policy``/``receivers`` already include inherited values."""

    path: str
    matchers: tuple[Matcher, ...]
    policy: str
    receivers: tuple[str, ...]
    continue_: bool
    routes: tuple[Router, ...]

    @classmethod
    def from_config(
        cls,
        cfg: RouteConfig,
        path: str = "route",
        policy: str = "default",
        receivers: tuple[str, ...] = (),
    ) -> Router:
        pol = cfg.policy or policy
        recv = tuple(cfg.receivers) or receivers
        children = tuple(
            cls.from_config(c, f"{path}.routes[{i}]", pol, recv) for i, c in enumerate(cfg.routes)
        )
        return cls(path, compile_matchers(cfg.matchers), pol, recv, cfg.continue_, children)

    def _children(self, labels: Mapping[str, str]) -> list[Router]:
        found: list[Router] = []
        for child in self.routes:
            hit = child._match(labels)
            if hit:
                found += hit
                if not child.continue_:
                    break
        return found

    def _match(self, labels: Mapping[str, str]) -> list[Router]:
        if not matches_all(self.matchers, labels):
            return []
        return self._children(labels) or [self]

    def route(self, labels: Mapping[str, str]) -> RouteDecision:
        """The policy of the first matching route and the receivers of all of them.

        The root always matches (its matchers are ignored) so nothing goes unrouted.
        """
        hits = self._children(labels) or [self]
        receivers = tuple(dict.fromkeys(r for h in hits for r in h.receivers))
        return RouteDecision(hits[0].policy, receivers, tuple(h.path for h in hits))
