"""Incidents: the pure book that turns detector verdicts and human actions into a lifecycle.

An incident is ``triggered -> acknowledged -> resolved``. Verdicts of all channels of a topic
that fire the same crisis kind share one incident (grouping key ``topic/kind``). Every change
returns :class:`IncidentEvent` values for the escalation runner and the wall; nothing here
reads a clock or does I/O, so a timeline test is a list of calls with explicit ``now``.

>>> from types import SimpleNamespace as V
>>> book = IncidentBook()
>>> ev = book.on_verdict(V(series="acme", t=0.0, score=0.9, severity=2, onset="open",
...                        active=True, resolved=False, explanation={"fired": ["volume"]}), 0.0)
>>> [(e.kind, e.incident.key, e.incident.state) for e in ev]
[('opened', 'acme/volume', 'triggered')]
>>> inc = ev[0].incident
>>> [e.kind for e in book.acknowledge(inc.id, "ana", 60.0)]
['acknowledged']
>>> [e.kind for e in book.resolve(inc.id, "ana", 120.0)]
['resolved']
>>> [(x["t"], x["event"]) for x in book.get(inc.id).timeline]
[(0.0, 'opened'), (60.0, 'acknowledged'), (120.0, 'resolved')]
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from alerting.severity import clamp, label, pagerduty_severity, severity_from_score
from monitor.config.alerting import IncidentSettings
from monitor.errors import CrisiswatchError
from monitor.pipeline import VerdictLike

State = Literal["triggered", "acknowledged", "resolved"]
EventKind = Literal[
    "opened", "updated", "repaged", "acknowledged", "resolved", "snoozed", "noted", "retriggered"
]
#: The events that (re)start paging from level 1.
TRIGGERING: frozenset[EventKind] = frozenset({"opened", "repaged", "retriggered"})

DEFAULT_KIND = "crisis"
#: When several detectors fire at once, the kind names the first of these (then alphabetical),
#: so one crisis keeps one key while its explanation changes.
KIND_PRIORITY = ("volume", "sentiment", "terms")


class IncidentError(CrisiswatchError):
    """A human action names an unknown incident or is not allowed in its state."""

    def __init__(self, incident_id: str, reason: str) -> None:
        self.incident_id, self.reason = incident_id, reason
        super().__init__(f"incident {incident_id}: {reason}")


@dataclass(slots=True)
class Incident:
    """One crisis as people handle it. ``to_dict`` is the JSON form (wall, store, payloads)."""

    id: str
    key: str
    topic: str
    kind: str
    state: State
    severity: int
    score: float
    opened_at: float
    updated_at: float
    acked_by: str | None = None
    acked_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    snoozed_until: float | None = None
    explanation: dict[str, Any] = field(default_factory=dict)  # the latest verdict's
    # the explanation at the highest score: what pages say, however late they go out
    peak_explanation: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    peak_severity: int = 4
    peak_score: float = 0.0
    paged_severity: int = 4  # the severity people were last paged (or acked) at
    # when it was last opened, re-paged or re-triggered: an escalation that saw an older one
    # (a crash between the book's save and the runner's) has a page from level 1 owed
    triggered_at: float = 0.0
    last_active_at: float = 0.0
    sources: list[str] = field(default_factory=list)  # series currently feeding this incident
    topic_title: str = ""  # the topic's display name (``topics[].title``), for people

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able snapshot, with derived ``severity_label`` and ``pagerduty_severity``."""
        d = asdict(self)
        d["severity_label"] = label(self.severity)
        d["pagerduty_severity"] = pagerduty_severity(self.severity)
        d["title"] = f"{label(self.severity)} {self.topic_title or self.topic}: {self.kind} crisis"
        d["acknowledged_by"] = self.acked_by  # the name notifiers and the API read
        d["dedup_key"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Incident:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})

    def match_labels(self) -> dict[str, str]:
        """Labels routing, silences and inhibition match on (topic labels first, ours win).

        >>> Incident("i", "a/volume", "a", "volume", "triggered", 2, 0.9, 0, 0,
        ...          labels={"region": "emea"}).match_labels()["severity"]
        'SEV2'
        """
        return match_labels(self.to_dict())


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """Something happened to an incident; ``incident`` is a snapshot taken right after."""

    kind: EventKind
    incident: Incident
    who: str | None = None
    t: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "who": self.who,
            "t": self.t,
            "incident": self.incident.to_dict(),
        }


def match_labels(incident: Mapping[str, Any]) -> dict[str, str]:
    """Matcher labels of a JSON incident snapshot (what escalation events carry).

    >>> match_labels({"topic": "acme", "kind": "volume", "severity": 1, "key": "acme/volume",
    ...               "labels": {"region": "emea", "topic": "ignored"}})["topic"]
    'acme'
    """
    out = {str(k): str(v) for k, v in dict(incident.get("labels") or {}).items()}
    out.update(
        topic=str(incident.get("topic", "")),
        kind=str(incident.get("kind", "")),
        severity=label(int(incident.get("severity", 4))),
        key=str(incident.get("key", "")),
    )
    return out


def topic_of(series: str) -> str:
    """The topic of a series name; channel suffixes (``acme/twitter``, ``acme:rss``) merge.

    >>> topic_of("acme"), topic_of("acme/twitter"), topic_of("acme:rss")
    ('acme', 'acme', 'acme')
    """
    for sep in ("/", ":"):
        series = series.split(sep, 1)[0]
    return series


def kind_of(explanation: Mapping[str, Any]) -> str:
    """The crisis kind from ``explanation["fired"]`` (a name or a list of names).

    >>> kind_of({"fired": ["terms", "sentiment"]}), kind_of({"fired": "terms"}), kind_of({})
    ('sentiment', 'terms', 'crisis')
    """
    fired = explanation.get("fired")
    names = [fired] if isinstance(fired, str) else list(fired or [])
    names = [str(n) for n in names if n]
    if not names:
        return DEFAULT_KIND
    rank = {k: i for i, k in enumerate(KIND_PRIORITY)}
    return min(names, key=lambda n: (rank.get(n, len(rank)), n))


def explanation_drivers(
    expl: Mapping[str, Any], *, signals: bool = True, channels: bool = True
) -> list[str]:
    """Human lines for what drove the score, from a detector explanation (pages show them
    all; the wall, short of room, leaves out the signals and channels).

    >>> for line in explanation_drivers({"observed": 120, "expected": 20.0,
    ...     "signals": {"volume": 0.97, "sentiment": 0.4}, "fired": ["volume"],
    ...     "sentiment": {"negative_share": 0.72, "baseline_share": 0.154},
    ...     "top_terms": [["outage", 9.1]], "top_channels": [["x", 80], ["reddit", 30]]}):
    ...     print(line)
    volume 120 vs 20.0 expected (6.0x)
    signal volume 0.97
    terms: outage
    negative 72% vs 15% usual
    channels: x 80, reddit 30
    >>> explanation_drivers({"observed": 9, "expected": 0.0, "top_terms": [["störung", 4.0]]},
    ...                     signals=False, channels=False)
    ['volume 9 vs 0.0 expected', 'terms: störung']
    """
    out: list[str] = []
    observed, expected = expl.get("observed"), expl.get("expected")
    if isinstance(observed, int | float) and isinstance(expected, int | float):
        ratio = f" ({observed / expected:.1f}x)" if expected > 0 else ""
        out.append(f"volume {observed:.0f} vs {expected:.1f} expected{ratio}")
    scores = expl.get("signals")
    scores = scores if isinstance(scores, Mapping) else {}
    for name in expl.get("fired") or ():
        value = scores.get(name)
        if signals:
            out.append(
                f"signal {name} {value:.2f}" if isinstance(value, float) else f"signal {name}"
            )
    terms = [str(t[0]) for t in expl.get("top_terms") or () if isinstance(t, list | tuple) and t]
    if terms:
        out.append("terms: " + ", ".join(terms[:5]))
    mood = expl.get("sentiment")
    if isinstance(mood, Mapping):
        # the share of negative mentions tells an angry storm from a viral campaign (after
        # the terms: the wall's two lines keep what its tiles do not show)
        share, usual = mood.get("negative_share"), mood.get("baseline_share")
        if isinstance(share, int | float) and isinstance(usual, int | float):
            out.append(f"negative {share:.0%} vs {usual:.0%} usual")
    top = [f"{c[0]} {c[1]}" for c in expl.get("top_channels") or () if isinstance(c, list | tuple)]
    if top and channels:
        out.append("channels: " + ", ".join(top[:4]))
    return out


class IncidentBook:
    """All open and recently resolved incidents. Pure: every method takes ``now``."""

    def __init__(
        self,
        settings: IncidentSettings | None = None,
        topic_labels: Mapping[str, Mapping[str, str]] | None = None,
        topic_titles: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings or IncidentSettings()
        self.topic_labels = {k: dict(v) for k, v in (topic_labels or {}).items()}
        self.topic_titles = dict(topic_titles or {})
        self._incidents: dict[str, Incident] = {}
        self._by_series: dict[str, str] = {}  # series -> incident id it currently feeds
        self._seq = 0

    # --- queries -----------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident:
        try:
            return self._incidents[incident_id]
        except KeyError:
            raise IncidentError(incident_id, "no such incident") from None

    def open_incidents(self) -> list[Incident]:
        return [i for i in self._incidents.values() if i.is_open]

    def all_incidents(self) -> list[Incident]:
        return list(self._incidents.values())

    def find_open(self, key: str) -> Incident | None:
        for inc in self._incidents.values():
            if inc.key == key and inc.is_open:
                return inc
        return None

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`tick` would change something (so a runner can sleep)."""
        s = self.settings
        times: list[float] = []
        for inc in self._incidents.values():
            if not inc.is_open:
                if s.keep_resolved_seconds and inc.resolved_at is not None:
                    times.append(inc.resolved_at + s.keep_resolved_seconds)
                continue
            times.append(inc.last_active_at + s.auto_resolve_seconds)
            if inc.state == "acknowledged":
                if inc.snoozed_until is not None:
                    times.append(inc.snoozed_until)
                elif s.ack_timeout_seconds and inc.acked_at is not None:
                    times.append(inc.acked_at + s.ack_timeout_seconds)
        return min(times) if times else None

    # --- detector input ----------------------------------------------------------------------
    def on_verdict(self, verdict: VerdictLike, now: float) -> list[IncidentEvent]:
        """Open on ``onset == "open"``, update while active, re-page, resolve on ``resolved``."""
        series = verdict.series
        explanation = dict(verdict.explanation or {})
        sev = clamp(
            verdict.severity
            if verdict.severity is not None
            else severity_from_score(verdict.score, self.settings.severity_thresholds)
        )
        detail: dict[str, Any] = {"series": series, "score": round(float(verdict.score), 4)}
        detail["severity"] = label(sev)
        detail["verdict_t"] = verdict.t
        current = self._incidents.get(self._by_series.get(series, ""))

        if verdict.resolved:
            self._by_series.pop(series, None)
            if current is None or not current.is_open:
                return []
            if series in current.sources:
                current.sources.remove(series)
            if current.sources:  # another channel of the same crisis is still active
                return []
            return [self._resolve(current, "detector", now, {"series": series})]

        if verdict.onset in ("open", "repage"):
            key = f"{topic_of(series)}/{kind_of(explanation)}"
            target = current if current is not None and current.is_open else self.find_open(key)
            if target is None:
                return [self._open(key, series, sev, verdict.score, explanation, now, detail)]
            self._by_series[series] = target.id
            if series not in target.sources:  # another channel joins the same crisis
                target.sources.append(series)
                self._log(target, now, "merged", {"series": series})
            force = verdict.onset == "repage"
            return self._update(target, sev, verdict.score, explanation, now, detail, force)

        if verdict.active and current is not None and current.is_open:
            if verdict.severity is None:
                # the detector judged a late or repeated bucket without its gate: its score
                # must neither re-page nor ease the incident
                sev = current.severity
                detail["severity"] = label(sev)
            return self._update(current, sev, verdict.score, explanation, now, detail, False)
        return []

    # --- human actions -----------------------------------------------------------------------
    def acknowledge(self, incident_id: str, who: str, now: float) -> list[IncidentEvent]:
        """Stop the escalation. Idempotent: acknowledging twice returns no event; a resolved
        incident cannot be acknowledged (IncidentError)."""
        inc = self.get(incident_id)
        if inc.state == "resolved":
            raise IncidentError(incident_id, "cannot acknowledge a resolved incident")
        if inc.state != "triggered":
            return []
        inc.state, inc.acked_by, inc.acked_at = "acknowledged", who, now
        inc.paged_severity = min(inc.paged_severity, inc.severity)
        return [self._event("acknowledged", inc, now, who, {"by": who})]

    def resolve(self, incident_id: str, who: str, now: float) -> list[IncidentEvent]:
        """Close by hand. The detector keeps feeding nothing into it; a new onset opens anew."""
        inc = self.get(incident_id)
        if not inc.is_open:
            return []
        for s in inc.sources:
            self._by_series[s] = inc.id  # later verdicts of this crisis must not reopen it
        return [self._resolve(inc, who, now, {"by": who})]

    def snooze(self, incident_id: str, until: float, who: str, now: float) -> list[IncidentEvent]:
        """Acknowledge until ``until``; then it re-triggers (PagerDuty snooze)."""
        inc = self.get(incident_id)
        if not inc.is_open:
            raise IncidentError(incident_id, "cannot snooze a resolved incident")
        if until <= now:
            raise IncidentError(incident_id, f"snooze end {until} is not after now {now}")
        if inc.state == "triggered":
            inc.state, inc.acked_by, inc.acked_at = "acknowledged", who, now
            inc.paged_severity = min(inc.paged_severity, inc.severity)
        inc.snoozed_until = until
        return [self._event("snoozed", inc, now, who, {"by": who, "until": until})]

    def add_note(self, incident_id: str, who: str, text: str, now: float) -> list[IncidentEvent]:
        inc = self.get(incident_id)
        if not text.strip():
            raise IncidentError(incident_id, "empty note")
        inc.notes.append({"t": now, "who": who, "text": text})
        return [self._event("noted", inc, now, who, {"by": who, "text": text})]

    def record(self, incident_id: str, event: str, detail: Mapping[str, Any], now: float) -> None:
        """Append an escalation fact (``level-2 paged``) to the timeline; no event is emitted."""
        inc = self._incidents.get(incident_id)
        if inc is not None:
            self._log(inc, now, event, dict(detail))

    # --- time --------------------------------------------------------------------------------
    def tick(self, now: float) -> list[IncidentEvent]:
        """Snooze expiry and ack timeout re-trigger; calm auto-resolves; old resolved drop out."""
        s = self.settings
        out: list[IncidentEvent] = []
        for inc in list(self._incidents.values()):
            if not inc.is_open:
                keep = s.keep_resolved_seconds
                if inc.resolved_at is not None and now - inc.resolved_at >= keep:
                    del self._incidents[inc.id]
                    self._by_series = {k: v for k, v in self._by_series.items() if v != inc.id}
                continue
            if now - inc.last_active_at >= s.auto_resolve_seconds:
                calm = {"calm_seconds": now - inc.last_active_at}
                out.append(self._resolve(inc, "auto", now, calm))
                continue
            if inc.state != "acknowledged":
                continue
            if inc.snoozed_until is not None:
                if now >= inc.snoozed_until:
                    out.append(self._retrigger(inc, now, "snooze expired"))
            elif (
                s.ack_timeout_seconds
                and inc.acked_at is not None
                and now - inc.acked_at >= s.ack_timeout_seconds
            ):
                out.append(self._retrigger(inc, now, "acknowledgement timed out"))
        return out

    # --- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "seq": self._seq,
            "incidents": [i.to_dict() for i in self._incidents.values()],
            "by_series": dict(self._by_series),
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        settings: IncidentSettings | None = None,
        topic_labels: Mapping[str, Mapping[str, str]] | None = None,
        topic_titles: Mapping[str, str] | None = None,
    ) -> IncidentBook:
        book = cls(settings, topic_labels, topic_titles)
        book._seq = int(state.get("seq", 0))
        for d in state.get("incidents", []):
            inc = Incident.from_dict(d)
            book._incidents[inc.id] = inc
        book._by_series = {
            str(k): str(v) for k, v in state.get("by_series", {}).items() if v in book._incidents
        }
        return book

    # --- internals ---------------------------------------------------------------------------
    def _open(
        self,
        key: str,
        series: str,
        sev: int,
        score: float,
        explanation: dict[str, Any],
        now: float,
        detail: dict[str, Any],
    ) -> IncidentEvent:
        self._seq += 1
        topic, _, kind = key.partition("/")
        inc = Incident(
            id=f"inc-{int(now)}-{self._seq}",
            key=key,
            topic=topic,
            kind=kind,
            state="triggered",
            severity=sev,
            score=float(score),
            opened_at=now,
            updated_at=now,
            explanation=explanation,
            peak_explanation=explanation,
            labels=dict(self.topic_labels.get(topic, {})),
            topic_title=self.topic_titles.get(topic, ""),
            peak_severity=sev,
            peak_score=float(score),
            paged_severity=sev,
            last_active_at=now,
            sources=[series],
        )
        self._incidents[inc.id] = inc
        self._by_series[series] = inc.id
        return self._event("opened", inc, now, None, detail)

    def _update(
        self,
        inc: Incident,
        sev: int,
        score: float,
        explanation: dict[str, Any],
        now: float,
        detail: dict[str, Any],
        force_repage: bool,
    ) -> list[IncidentEvent]:
        old_sev = inc.severity
        changed = sev != inc.severity or float(score) != inc.score or explanation != inc.explanation
        inc.severity, inc.score, inc.explanation = sev, float(score), explanation
        inc.peak_severity = min(inc.peak_severity, sev)
        if float(score) > inc.peak_score:
            inc.peak_score, inc.peak_explanation = float(score), explanation
        inc.last_active_at = now
        jumped = self.settings.repage_on_severity_jump and sev < inc.paged_severity
        if force_repage or jumped:
            # A worse crisis than the one people agreed to handle: page again from level 1.
            detail = {**detail, "from": label(inc.paged_severity), "to": label(sev)}
            inc.paged_severity = min(inc.paged_severity, sev)
            if inc.state == "acknowledged":
                inc.state, inc.acked_by, inc.acked_at, inc.snoozed_until = (
                    "triggered",
                    None,
                    None,
                    None,
                )
            return [self._event("repaged", inc, now, None, detail)]
        if not changed:
            return []
        # Score wobble is not history; a severity change is.
        return [self._event("updated", inc, now, None, detail, log=sev != old_sev)]

    def _resolve(
        self, inc: Incident, who: str, now: float, detail: dict[str, Any]
    ) -> IncidentEvent:
        inc.state, inc.resolved_at, inc.resolved_by, inc.snoozed_until = "resolved", now, who, None
        return self._event("resolved", inc, now, who, detail)

    def _retrigger(self, inc: Incident, now: float, why: str) -> IncidentEvent:
        prev = inc.acked_by
        inc.state, inc.acked_by, inc.acked_at, inc.snoozed_until = "triggered", None, None, None
        return self._event("retriggered", inc, now, None, {"reason": why, "was_acked_by": prev})

    def _event(
        self,
        kind: EventKind,
        inc: Incident,
        now: float,
        who: str | None,
        detail: dict[str, Any],
        *,
        log: bool = True,
    ) -> IncidentEvent:
        inc.updated_at = now
        if kind in TRIGGERING:
            inc.triggered_at = now
        if log:
            self._log(inc, now, kind, detail)
        return IncidentEvent(kind, copy.deepcopy(inc), who, now)

    def _log(self, inc: Incident, now: float, event: str, detail: dict[str, Any]) -> None:
        inc.timeline.append({"t": now, "event": event, "detail": detail})
        overflow = len(inc.timeline) - self.settings.max_timeline
        if overflow > 0:  # keep the opening entry, drop the oldest of the rest
            del inc.timeline[1 : 1 + overflow]


def snapshot_all(incidents: Iterable[Incident]) -> list[dict[str, Any]]:
    """JSON list of incidents, newest first (for the wall and the REST API)."""
    return [i.to_dict() for i in sorted(incidents, key=lambda i: -i.opened_at)]
