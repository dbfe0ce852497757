"""The wall's view model: pure state built from hub messages, and the frames sent to walls.

`WallState.apply(topic, msg)` is a hub listener: it runs synchronously on every publish, before
any client queue sees the message, so a snapshot taken at any moment is never behind the deltas
that follow it. Every applied message gets the next sequence number; its frame (the JSON text a
wall receives) is encoded once here and shared by every client, so 500 walls cost one encode.

>>> w = WallState([{"name": "acme", "title": "ACME"}], history=3)
>>> for i in range(5):
...     w.apply("series", {"topic": "acme", "t": 60.0 * i, "width": 60.0, "count": i})
>>> [p["count"] for p in w.snapshot()["series"]["acme"]], w.seq
([2, 3, 4], 5)
>>> seq, frame = w.frame(w.last_message)
>>> seq, frame[:48]
(5, '{"v":1,"type":"delta","seq":5,"topic":"series","')
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from alerting.incidents import explanation_drivers

PROTOCOL_VERSION = 1
#: Topics the wall keeps as "latest value wins" (the rest: series, incident, source, escalation).
LATEST_TOPICS = ("oncall", "live")
MAX_INCIDENTS = 200
MAX_SERIES = 64  # topics come from config; this only bounds a misbehaving publisher
FRAME_CACHE = 4096  # must be >= the largest client queue (see wall_routes)

SEVERITY_ORDER = {1: 0, 2: 1, 3: 2, 4: 3}
STATE_ORDER = {"triggered": 0, "acknowledged": 1, "resolved": 2}


def encode(obj: Mapping[str, Any]) -> str:
    """Compact JSON (what goes on the wire).

    >>> encode({"a": [1, 2.5], "b": None})
    '{"a":[1,2.5],"b":null}'
    """
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)


def incident_rank(inc: Mapping[str, Any]) -> tuple[int, int, float]:
    """Sort key of the incident panel: open before acked before resolved, worst first, newest.

    >>> incs = [{"id": "a", "state": "resolved", "severity": 1, "opened_at": 9},
    ...         {"id": "b", "state": "triggered", "severity": 3, "opened_at": 5},
    ...         {"id": "c", "state": "triggered", "severity": 1, "opened_at": 1},
    ...         {"id": "d", "state": "acknowledged", "severity": 1, "opened_at": 7}]
    >>> [i["id"] for i in sorted(incs, key=incident_rank)]
    ['c', 'b', 'd', 'a']
    """
    return (
        STATE_ORDER.get(str(inc.get("state")), 3),
        SEVERITY_ORDER.get(int(inc.get("severity", 4)), 4),
        -float(inc.get("opened_at", 0.0)),
    )


def alarms(incidents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of incidents the wall must not let anyone miss: triggered (unacked) SEV1 and SEV2.

    A silenced or inhibited one pages nobody, so it does not flash either (a maintenance
    window's SEV2 flashed "NOT ACKED"; QA, tenth session).

    >>> alarms([{"id": "x", "state": "triggered", "severity": 2},
    ...         {"id": "y", "state": "acknowledged", "severity": 1},
    ...         {"id": "z", "state": "triggered", "severity": 3},
    ...         {"id": "m", "state": "triggered", "severity": 1,
    ...          "escalation": {"status": "muted"}}])
    ['x']
    """
    return [
        str(i["id"])
        for i in sorted(incidents, key=incident_rank)
        if i.get("state") == "triggered"
        and int(i.get("severity", 4)) <= 2
        and (i.get("escalation") or {}).get("status") != "muted"
    ]


def escalation_view(msg: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise an escalation message into what the incident panel shows.

    Accepts ``next_escalation_at`` or the escalation state's ``wake_at``; ``paged`` items may be
    user names or ``{"user", "name"}`` objects.

    >>> escalation_view({"incident_id": "i1", "status": "paging", "level": 0, "wake_at": 300.0,
    ...                  "paged": ["ana", {"user": "lead", "name": "Team lead"}]})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'incident_id': 'i1', 'status': 'paging', 'level': 1, 'levels': None,
     'paged': [{'user': 'ana', 'name': 'ana'}, {'user': 'lead', 'name': 'Team lead'}],
     'paged_before': [], 'next_escalation_at': 300.0, 'next_targets': [], 'mute': None,
     'nobody_reachable': False}
    """
    level = msg.get("level")
    nxt = msg.get("next_escalation_at", msg.get("wake_at"))
    return {
        "incident_id": str(msg["incident_id"]),
        "status": msg.get("status"),
        # the escalation state counts levels from 0; people count from 1
        "level": None if level is None or int(level) < 0 else int(level) + 1,
        "levels": msg.get("levels"),
        "paged": _people(msg.get("paged")),
        # everyone it paged: an exhausted escalation's last level may have paged nobody
        "paged_before": _people(msg.get("paged_before")),
        "next_escalation_at": None if nxt is None else float(nxt),
        "next_targets": [str(x) for x in msg.get("next_targets") or []],
        "mute": msg.get("mute"),
        # paging, yet nobody paged: the wall says so instead of counting down to an escalation
        "nobody_reachable": bool(msg.get("nobody_reachable")),
    }


def _people(items: Any) -> list[dict[str, str]]:
    """``{"user", "name"}`` for each user name or such object in ``items``."""
    out = []
    for p in items or []:
        if isinstance(p, Mapping):
            user = str(p.get("user") or p.get("name") or "?")
            out.append({"user": user, "name": str(p.get("name") or user)})
        else:
            out.append({"user": str(p), "name": str(p)})
    return out


def why_line(inc: Mapping[str, Any]) -> str | None:
    """What drove the incident, short enough for the panel: the explanation at its peak (the
    latest one of a SEV1 can read as calm minutes later), then, when it differs, the volume now.

    >>> why_line({"peak_explanation": {"observed": 450, "expected": 34.3},
    ...           "explanation": {"observed": 31, "expected": 35.0}})
    'volume 450 vs 34.3 expected (13.1x) · now volume 31 vs 35.0 expected (0.9x)'
    >>> why_line({"explanation": {"observed": 31, "expected": 35.0}})
    'volume 31 vs 35.0 expected (0.9x)'
    """

    def drivers(expl: Any) -> list[str]:
        if not isinstance(expl, Mapping):
            return []
        return explanation_drivers(expl, signals=False, channels=False)

    latest, peak = inc.get("explanation"), inc.get("peak_explanation")
    if not isinstance(latest, Mapping) and not isinstance(peak, Mapping):
        return None
    lines = drivers(peak) or drivers(latest)
    now = drivers(latest)[:1]
    if peak and latest != peak and now and now[0] not in lines:
        lines.append("now " + now[0])
    return " · ".join(lines)


def live_view(
    processed: int, newest_event_time: float | None, open_buckets: Iterable[Any] = ()
) -> dict[str, Any]:
    """The ``live`` message: what was ingested so far, before any bucket closes.

    `open_buckets` are `monitor.model.Bucket` values (anything with series/start/count/negative).

    >>> from types import SimpleNamespace as B
    >>> live_view(42, 120.0, [B(series="acme", start=60.0, count=3, negative=1),
    ...                       B(series="acme", start=120.0, count=2, negative=0)])
    {'processed': 42, 't': 120.0, 'topics': {'acme': {'start': 120.0, 'count': 2, 'negative': 0}}}
    """
    topics: dict[str, dict[str, Any]] = {}
    for b in open_buckets:
        cur = topics.get(b.series)
        if cur is None or b.start > cur["start"]:  # only the newest open bucket per topic
            topics[b.series] = {"start": b.start, "count": b.count, "negative": b.negative}
    return {"processed": processed, "t": newest_event_time, "topics": topics}


class WallState:
    """What a newly connected wall needs: recent series per topic, incidents, escalations,
    sources, on-call and the live counter. Bounded in every dimension."""

    def __init__(
        self, topics: list[dict[str, Any]], history: int = 240, frame_cache: int = FRAME_CACHE
    ) -> None:
        self.topics = topics
        self.history = history
        self.series: dict[str, deque[dict[str, Any]]] = {
            t["name"]: deque(maxlen=history) for t in topics
        }
        self.incidents: dict[str, dict[str, Any]] = {}
        self.escalations: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.latest: dict[str, Any] = {}
        self.seq = 0
        self.now_hint: float | None = None  # newest time seen in any message
        self.last_message: dict[str, Any] = {}
        self._frames: OrderedDict[int, tuple[dict[str, Any], int, str]] = OrderedDict()
        self.frame_cache = frame_cache
        self._snapshot: tuple[int, str] | None = None

    # --- applying hub messages ------------------------------------------------------------
    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        """Fold one hub message into the state and encode its delta frame (a hub listener)."""
        if topic == "series":
            self._series(msg)
        elif topic == "incident":
            self._incident(msg["incident"])
        elif topic == "escalation":
            esc = escalation_view(msg)
            self.escalations[esc["incident_id"]] = esc
            self._trim_escalations()
        elif topic == "source":
            self.sources[str(msg["name"])] = msg
        else:
            self.latest[topic] = msg
        self.seq += 1
        self.last_message = msg
        self._frames[id(msg)] = (msg, self.seq, self._delta(topic, msg))
        if len(self._frames) > self.frame_cache:
            self._frames.popitem(last=False)

    def _hint(self, t: Any) -> None:
        if isinstance(t, int | float) and (self.now_hint is None or t > self.now_hint):
            self.now_hint = float(t)

    def _series(self, msg: dict[str, Any]) -> None:
        name = str(msg["topic"])
        buf = self.series.get(name)
        if buf is None:
            if len(self.series) >= MAX_SERIES:
                return
            buf = self.series[name] = deque(maxlen=self.history)
        if buf and msg["t"] <= buf[-1]["t"]:  # a replayed bucket replaces, never duplicates
            while buf and buf[-1]["t"] >= msg["t"]:
                buf.pop()
        buf.append(msg)
        self._hint(msg["t"] + msg.get("width", 0.0))

    def series_state(self) -> dict[str, list[dict[str, Any]]]:
        """The tiles' recent points, for the checkpoint (a restart used to start them empty)."""
        return {name: list(buf) for name, buf in self.series.items() if buf}

    def restore_series(self, saved: Mapping[str, Any]) -> None:
        """Points a previous run kept, for the topics still shown, at most ``history`` each.

        >>> w = WallState([{"name": "acme"}], history=2)
        >>> w.restore_series({"acme": [{"t": 0.0}, {"t": 60.0}, {"t": 120.0}], "gone": [{}]})
        >>> [p["t"] for p in w.series["acme"]], "gone" in w.series
        ([60.0, 120.0], False)
        """
        for name, points in saved.items():
            buf = self.series.get(name)
            if buf is not None and isinstance(points, list):
                buf.extend(p for p in points[-self.history :] if isinstance(p, dict))

    def _incident(self, inc: dict[str, Any]) -> None:
        why = why_line(inc)
        # the peak explanation is only for this line: every score change goes to every wall
        inc = {k: v for k, v in inc.items() if k != "peak_explanation"}
        if why is not None:
            inc["why"] = why
        self.incidents[str(inc["id"])] = inc
        self._hint(inc.get("updated_at"))
        if "escalation" in inc and isinstance(inc["escalation"], Mapping):
            esc = escalation_view({"incident_id": inc["id"], **inc["escalation"]})
            self.escalations[esc["incident_id"]] = esc
        while len(self.incidents) > MAX_INCIDENTS:
            # resolved ones age out first, then the least recently updated
            victim = min(
                self.incidents.values(),
                key=lambda i: (i.get("state") != "resolved", i.get("updated_at", 0.0)),
            )
            self.incidents.pop(str(victim["id"]), None)
        self._trim_escalations()

    def _trim_escalations(self) -> None:
        if len(self.escalations) > MAX_INCIDENTS:
            for iid in [k for k in self.escalations if k not in self.incidents]:
                del self.escalations[iid]

    # --- reading ------------------------------------------------------------------------------
    def incident_list(self) -> list[dict[str, Any]]:
        """Incidents in panel order, each with its escalation (or None) attached."""
        return [
            {**i, "escalation": self.escalations.get(str(i["id"]))}
            for i in sorted(self.incidents.values(), key=incident_rank)
        ]

    def snapshot(self) -> dict[str, Any]:
        incidents = self.incident_list()
        return {
            "topics": self.topics,
            "history": self.history,  # the wall keeps as many points per series from deltas
            "series": {k: list(v) for k, v in self.series.items()},
            "incidents": incidents,
            "alarms": alarms(incidents),
            "sources": sorted(self.sources.values(), key=lambda s: str(s["name"])),
            "oncall": self.latest.get("oncall"),
            "live": self.latest.get("live"),
            "extra": {k: v for k, v in self.latest.items() if k not in LATEST_TOPICS},
        }

    # --- frames (protocol v1, docs/wall.md) -----------------------------------------------
    def _delta(self, topic: str, msg: dict[str, Any]) -> str:
        if topic == "escalation":
            # not from self.escalations: over the bound, one of an unknown incident is trimmed
            # at once, and a hub listener that raises would take the publisher down with it
            msg = escalation_view(msg)
        elif topic == "incident":
            iid = str(msg["incident"]["id"])
            inc = self.incidents.get(iid, msg["incident"])  # with its "why" line
            msg = {**msg, "incident": inc, "escalation": self.escalations.get(iid)}
        return encode(
            {"v": PROTOCOL_VERSION, "type": "delta", "seq": self.seq, "topic": topic, "data": msg}
        )

    def frame(self, msg: dict[str, Any]) -> tuple[int, str] | None:
        """(seq, delta frame) encoded when `msg` was applied; None if it aged out of the cache
        (the client is then so far behind that it needs a snapshot anyway)."""
        hit = self._frames.get(id(msg))
        # the identity check guards against a recycled id() of a message already evicted
        return (hit[1], hit[2]) if hit is not None and hit[0] is msg else None

    def snapshot_frame(
        self, reason: str, now: float | None, dropped: int = 0, heartbeat: float = 2.0
    ) -> str:
        """A snapshot frame; the (large) data part is encoded once per state version."""
        if self._snapshot is None or self._snapshot[0] != self.seq:
            self._snapshot = (self.seq, encode(self.snapshot()))
        head = encode(
            {
                "v": PROTOCOL_VERSION,
                "type": "snapshot",
                "seq": self.seq,
                "now": self.now_hint if now is None else now,
                "reason": reason,
                "dropped": dropped,
                "heartbeat": heartbeat,
            }
        )
        return head[:-1] + ',"data":' + self._snapshot[1] + "}"

    def heartbeat_frame(self, now: float | None, seq: int) -> str:
        """The service clock and the seq of the last frame this client was sent (a self-check).

        >>> WallState([]).heartbeat_frame(12.5, 7)
        '{"v":1,"type":"heartbeat","seq":7,"now":12.5}'
        """
        t = self.now_hint if now is None else now
        return encode({"v": PROTOCOL_VERSION, "type": "heartbeat", "seq": seq, "now": t})
