"""The wall's view model: pure state built from hub messages, and the frames sent to walls.

`WallState.apply(topic, msg)` is a hub listener: it runs synchronously on every publish, so a
snapshot taken at any moment is never behind the deltas that follow it. Walls watch a *view*:
the topics their URL selects (``?topics=``; all without one), of which at most `MAX_TILES` are
tiled. Each view numbers its own frames, sends a wall only what its tiles show (a series point
of another topic is not even queued), and encodes each frame and its snapshot body once for all
its walls, so 500 walls with the same URL cost one encode.

>>> w = WallState([{"name": "acme", "title": "ACME"}], history=3)
>>> with w.watch() as (view, sub):
...     for i in range(5):
...         w.apply("series", {"topic": "acme", "t": 60.0 * i, "width": 60.0, "count": i})
...     kind, item = sub.drain()[-1]
>>> [p["count"] for p in w.snapshot()["series"]["acme"]], view.seq
([2, 3, 4], 5)
>>> kind, item["seq"], item["text"][:48]
('delta', 5, '{"v":2,"type":"delta","seq":5,"topic":"series","')
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from alerting.incidents import explanation_drivers
from monitor.hub import Message, Subscription

PROTOCOL_VERSION = 2
#: Versions served: 1 to a client that does not ask for another (pages from before version 2,
#: scripts); its snapshot's series are lists of points, three times the bytes of columns.
PROTOCOLS = (1, 2)
#: Topics the wall keeps as "latest value wins" (the rest: series, incident, source, escalation).
LATEST_TOPICS = ("oncall", "live")
MAX_INCIDENTS = 200
MAX_SERIES = 64  # unconfigured series (a misbehaving publisher) kept beside the configured ones
#: Tiles a wall shows: the page lays out at most this many legibly (docs/wall.md, densities).
MAX_TILES = 64
#: Distinct selections watched at once; each costs a little on every hub message.
MAX_VIEWS = 32
#: How much higher a topic's crisis score must be to take a calmer topic's tile: near-equal
#: scores would otherwise swap tiles every bucket.
SCORE_MARGIN = 0.1
NO_INCIDENT = 5  # the "severity" of a topic without an open incident: after SEV4
#: The queue item that tells a wall's pump its view's tiles changed (it needs a snapshot).
TILES: Message = ("tiles", {})
#: (severity of the worst open incident, NO_INCIDENT without one; latest crisis score)
Rank = tuple[int, float]

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


def parse_selection(raw: str | None) -> tuple[str, ...]:
    """The patterns of ``?topics=``: comma-separated topic names or globs, unique, in order.

    >>> parse_selection(" acme, emea-*,,acme "), parse_selection(None), parse_selection(" , ")
    (('acme', 'emea-*'), (), ())
    """
    out: dict[str, None] = {}
    for part in (raw or "").split(","):
        if part := part.strip():
            out[part] = None
    return tuple(out)


def select_topics(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The topics of `names` a selection matches, in their (config) order; none given: all.

    A pattern is a topic name or a glob: ``*`` any run of characters, ``?`` one (topic names
    are ``[A-Za-z0-9_.-]``, so nothing else is special).

    >>> select_topics(["acme", "emea-a", "emea-b", "us-x"], ["emea-*", "acme", "nope"])
    ['acme', 'emea-a', 'emea-b']
    >>> select_topics(["a.b", "axb"], ["a.b"]), select_topics(["acme"], [])
    (['a.b'], ['acme'])
    """
    if not patterns:
        return list(names)
    globs = (re.escape(p).replace(r"\*", ".*").replace(r"\?", ".") for p in patterns)
    rx = re.compile("|".join(globs))
    return [n for n in names if rx.fullmatch(n)]


def urgency(rank: Rank) -> tuple[int, float]:
    """Sort key, most urgent first: the worst open incident, then the highest crisis score.

    >>> sorted([(5, 0.9), (2, 0.1), (5, 0.2), (1, 0.0)], key=urgency)
    [(1, 0.0), (2, 0.1), (5, 0.9), (5, 0.2)]
    """
    return rank[0], -rank[1]


def choose_tiles(candidates: Sequence[str], rank: Callable[[str], Rank], limit: int) -> list[str]:
    """The topics a wall tiles: every candidate up to `limit`; beyond, the `limit` most urgent.

    Either way in the candidates' (config) order: a tile's place does not follow its rank, so
    tiles do not move as scores change.

    >>> rank = {"a": (5, 0.1), "b": (2, 0.0), "c": (5, 0.9), "d": (5, 0.2)}.__getitem__
    >>> choose_tiles("abcd", rank, 4), choose_tiles("abcd", rank, 2)
    (['a', 'b', 'c', 'd'], ['b', 'c'])
    """
    if len(candidates) <= limit:
        return list(candidates)
    order = sorted(range(len(candidates)), key=lambda i: (urgency(rank(candidates[i])), i))
    return [candidates[i] for i in sorted(order[:limit])]


def displaces(new: Rank, old: Rank, margin: float = SCORE_MARGIN) -> bool:
    """Does a topic ranked `new` take the tile of one ranked `old`?

    A worse open incident always does; a higher crisis score only by more than `margin`.

    >>> displaces((2, 0.0), (5, 0.9)), displaces((5, 0.5), (5, 0.45))
    (True, False)
    >>> displaces((5, 0.6), (5, 0.45)), displaces((5, 0.9), (3, 0.0))
    (True, False)
    """
    if new[0] != old[0]:
        return new[0] < old[0]
    return new[1] > old[1] + margin


def pack_points(points: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Series points as columns, the form of snapshots and checkpoints (field names once, not
    once a point: a third of the size). A field with the same scalar in every point is stored
    once; ``topic`` is left out (the points are stored under it).

    >>> pack_points([{"topic": "a", "t": 0.0, "count": 1, "band": [0, 2], "onset": None},
    ...              {"topic": "a", "t": 60.0, "count": 3, "band": [1, 4], "onset": None}])
    {'n': 2, 'cols': {'t': [0.0, 60.0], 'count': [1, 3], 'band': [[0, 2], [1, 4]], 'onset': None}}
    """
    rows = list(points)
    fields = list(dict.fromkeys(k for p in rows[:1] for k in p if k != "topic"))
    try:  # the points of one series share their fields: transpose them at C speed
        values = list(zip(*map(itemgetter(*fields), rows), strict=True)) if len(fields) > 1 else []
    except (KeyError, TypeError):
        values = []
    if len(values) != len(fields):  # fields differ between points (or one field): one by one
        fields = list(dict.fromkeys(k for p in rows for k in p if k != "topic"))
        values = [tuple(p.get(f) for p in rows) for f in fields]
    cols: dict[str, Any] = {}
    for f, col in zip(fields, values, strict=True):
        first = col[0]
        # one value for all: only a scalar, and only of one type (False == 0 == 0.0)
        same = isinstance(first, str | int | float | bool | None) and col.count(first) == len(col)
        cols[f] = first if same and len(set(map(type, col))) == 1 else list(col)
    return {"n": len(rows), "cols": cols}


def unpack_points(topic: str, packed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The points `pack_points` packed (a field a point lacked comes back as None).

    >>> unpack_points("a", {"n": 2, "cols": {"t": [0.0, 60.0], "width": 60.0}})
    [{'topic': 'a', 't': 0.0, 'width': 60.0}, {'topic': 'a', 't': 60.0, 'width': 60.0}]
    """
    n, cols = int(packed["n"]), packed["cols"]
    out: list[dict[str, Any]] = [{"topic": topic} for _ in range(n)]
    for f, col in cols.items():
        if isinstance(col, list):
            for p, v in zip(out, col, strict=True):
                p[f] = v
        else:
            for p in out:
                p[f] = col
    return out


#: ``series_state()``'s form: columns (`pack_points`). The first form, {topic: [point…]}, is
#: still restored: an upgrade starts from the store the previous version wrote.
CHECKPOINT_FORM = "columns"


class TooManySelections(Exception):
    """`MAX_VIEWS` distinct selections are watched already."""


def parse_version(raw: str | None) -> int:
    """The protocol a client asked for (``/ws?v=2``); version 1 without (or with another).

    >>> parse_version("2"), parse_version(None), parse_version("7")
    (2, 1, 1)
    """
    return int(raw) if raw in {str(v) for v in PROTOCOLS} else 1


class View:
    """The walls watching one selection in one protocol version: which topics it tiles, the seq
    of its frames, its walls' queues and its snapshot body (encoded once per state version for
    all of them)."""

    def __init__(self, key: tuple[str, ...], tiles: list[str], seq: int, version: int) -> None:
        self.key = key  # the selected topics, config order
        self.version = version
        self.id = (version, key)
        self.selected = frozenset(key)
        self.tiles = tiles
        self.tiled = set(tiles)
        # Starts at the state's count, so with one view that tiles everything (up to 64 topics
        # and no selection) the seq is what it always was: one per hub message.
        self.seq = seq
        self.subs: set[Subscription] = set()
        self.weakest: tuple[int, Rank] | None = None  # (tile index, rank); None: to be found
        self.body: tuple[int, str] | None = None  # (seq, encoded snapshot data)

    @property
    def more(self) -> int:
        """Selected topics without a tile."""
        return len(self.key) - len(self.tiles)

    def offer(self, item: Message) -> None:
        for sub in self.subs:
            sub.offer(item)


class WallState:
    """What a newly connected wall needs: recent series per topic, incidents, escalations,
    sources, on-call and the live counter; and the views walls watch. Bounded in every
    dimension: a snapshot holds at most `MAX_TILES` topics' series, whatever the config."""

    def __init__(self, topics: list[dict[str, Any]], history: int = 240) -> None:
        self.topics = topics
        self.history = history
        self._topic = {str(t["name"]): t for t in topics}
        self.names = list(self._topic)
        self.series: dict[str, deque[dict[str, Any]]] = {
            name: deque(maxlen=history) for name in self.names
        }
        self.incidents: dict[str, dict[str, Any]] = {}
        self.escalations: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.latest: dict[str, Any] = {}
        self.seq = 0  # hub messages applied (each view numbers its own frames)
        self.now_hint: float | None = None  # newest time seen in any message
        self.views: dict[tuple[int, tuple[str, ...]], View] = {}  # (version, topics)
        self._selections: dict[tuple[str, ...], tuple[str, ...]] = {}  # patterns -> topics
        self._open: dict[str, int] = {}  # topic -> severity of its worst open incident

    # --- applying hub messages ------------------------------------------------------------
    def apply(self, topic: str, msg: dict[str, Any]) -> None:
        """Fold one hub message into the state and queue its frame for the walls that show it
        (a hub listener)."""
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
        if self.views:
            self._fan_out(topic, msg)

    def _hint(self, t: Any) -> None:
        if isinstance(t, int | float) and (self.now_hint is None or t > self.now_hint):
            self.now_hint = float(t)

    def _series(self, msg: dict[str, Any]) -> None:
        name = str(msg["topic"])
        buf = self.series.get(name)
        if buf is None:
            if len(self.series) >= len(self.names) + MAX_SERIES:
                return
            buf = self.series[name] = deque(maxlen=self.history)
        if buf and msg["t"] <= buf[-1]["t"]:  # a replayed bucket replaces, never duplicates
            while buf and buf[-1]["t"] >= msg["t"]:
                buf.pop()
        buf.append(msg)
        self._hint(msg["t"] + msg.get("width", 0.0))

    def series_state(self) -> dict[str, Any]:
        """The tiles' recent points of every topic, for the checkpoint (a restart used to start
        them empty), as columns: the per-point objects took 68 MB of JSON at 2,000 topics."""
        return {
            "form": CHECKPOINT_FORM,
            "series": {name: pack_points(buf) for name, buf in self.series.items() if buf},
        }

    def series_state_json(self, per_part: int = 100) -> Iterator[str]:
        """:meth:`series_state` as JSON text, `per_part` topics a piece: packing 2,000 topics'
        points took seconds, which a caller in an event loop spreads between its turns.

        >>> w = WallState([{"name": "acme"}], history=2)
        >>> w.apply("series", {"topic": "acme", "t": 0.0, "count": 3})
        >>> json.loads("".join(w.series_state_json())) == w.series_state()
        True
        """
        names = [name for name, buf in self.series.items() if buf]
        yield f'{{"form": {json.dumps(CHECKPOINT_FORM)}, "series": {{'
        for i in range(0, len(names), per_part):
            part = names[i : i + per_part]
            text = ", ".join(
                f"{json.dumps(n)}: {json.dumps(pack_points(self.series[n]))}" for n in part
            )
            yield (", " if i else "") + text
        yield "}}"

    def restore_series(self, saved: Mapping[str, Any]) -> None:
        """Points a previous run kept, for the topics still configured, at most ``history``
        each; of either form (`series_state`, or the first: {topic: [point…]}).

        >>> w = WallState([{"name": "acme"}], history=2)
        >>> w.restore_series({"acme": [{"topic": "acme", "t": 60.0 * i} for i in range(3)],
        ...                   "gone": [{}]})
        >>> [p["t"] for p in w.series["acme"]], "gone" in w.series
        ([60.0, 120.0], False)
        >>> again = WallState([{"name": "acme"}], history=2)
        >>> again.restore_series(w.series_state())
        >>> list(again.series["acme"]) == list(w.series["acme"])
        True
        """
        packed = saved.get("series")
        if saved.get("form") == CHECKPOINT_FORM and isinstance(packed, Mapping):
            saved = {}
            for name, cols in packed.items():
                try:
                    saved[name] = unpack_points(name, cols) if name in self.series else None
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue  # a damaged entry costs that tile its history, not the start
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
        # a wall tiles 64 topics at most and its snapshot names only those: the incident panel
        # shows incidents of every topic, so each carries its topic's title
        if (t := self._topic.get(str(inc.get("topic")))) is not None:
            inc["topic_title"] = t.get("title") or t["name"]
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
        self._open = {}
        for i in self.incidents.values():
            if i.get("state") != "resolved":
                name, sev = str(i.get("topic")), int(i.get("severity", 4))
                self._open[name] = min(sev, self._open.get(name, NO_INCIDENT))

    def _trim_escalations(self) -> None:
        if len(self.escalations) > MAX_INCIDENTS:
            for iid in [k for k in self.escalations if k not in self.incidents]:
                del self.escalations[iid]

    # --- views: what each selection tiles, and its frames -----------------------------------
    def rank(self, name: str) -> Rank:
        """How much a topic needs a tile: its worst open incident, then its latest score."""
        buf = self.series.get(name)
        score = buf[-1].get("score") if buf else None
        return self._open.get(name, NO_INCIDENT), float(score) if score is not None else 0.0

    def selection(self, patterns: Sequence[str] = ()) -> tuple[str, ...]:
        """The configured topics `patterns` select (`select_topics`), cached: 500 walls that
        connect with one URL match it once."""
        key = tuple(patterns)
        got = self._selections.get(key)
        if got is None:
            if len(self._selections) >= 4 * MAX_VIEWS:  # any URL can ask: keep it bounded
                self._selections.clear()
            got = self._selections[key] = tuple(select_topics(self.names, key))
        return got

    def view(self, patterns: Sequence[str] = (), version: int = PROTOCOL_VERSION) -> View:
        """The view walls with this selection watch, or a new one (not yet watched)."""
        key = self.selection(patterns)
        got = self.views.get((version, key))
        return got or View(key, choose_tiles(key, self.rank, MAX_TILES), self.seq, version)

    def may_watch(self, patterns: Sequence[str] = (), version: int = PROTOCOL_VERSION) -> bool:
        """False when this selection would be one view too many (`MAX_VIEWS`)."""
        return len(self.views) < MAX_VIEWS or (version, self.selection(patterns)) in self.views

    @contextmanager
    def watch(
        self,
        patterns: Sequence[str] = (),
        maxsize: int = 256,
        on_drop: Callable[[], None] | None = None,
        version: int = PROTOCOL_VERSION,
    ) -> Iterator[tuple[View, Subscription]]:
        """A wall's bounded drop-oldest queue of frames for its selection; its view lives as
        long as a wall watches it. Raises `TooManySelections` beyond `MAX_VIEWS`."""
        if not self.may_watch(patterns, version):
            raise TooManySelections(f"{MAX_VIEWS} selections are watched already")
        view = self.view(patterns, version)
        self.views[view.id] = view
        sub = Subscription(maxsize, on_drop)
        view.subs.add(sub)
        try:
            yield view, sub
        finally:
            view.subs.discard(sub)
            if not view.subs and self.views.get(view.id) is view:
                del self.views[view.id]

    @property
    def walls(self) -> int:
        """Queues watching (walls connected)."""
        return sum(len(v.subs) for v in self.views.values())

    @property
    def dropped(self) -> int:
        """Frames dropped so far for the walls connected now (their queues overflowed)."""
        return sum(s.dropped for v in self.views.values() for s in v.subs)

    def _fan_out(self, topic: str, msg: dict[str, Any]) -> None:
        """Queue the message's frame for each view that shows it; retile a view first when
        a topic it does not tile now needs the tile more than the calmest one it does."""
        data: str | None = None  # the message's JSON: encoded once, whichever views send it
        name = str(msg.get("topic")) if topic == "series" else None
        for view in self.views.values():
            if topic == "incident":
                view.weakest = None  # any topic's rank may have changed
                outside = [n for n in self._open if n in view.selected and n not in view.tiled]
                self._contend(view, outside)
            elif name is not None:
                if name in view.tiled:
                    view.weakest = None
                elif name in view.selected:
                    self._contend(view, [name])
                if name not in view.tiled:
                    continue  # not on this wall: no frame, not even a queued one
            if topic == "live":
                text = encode(self._live(view, msg))
            else:
                if data is None:
                    data = encode(self._data(topic, msg))
                text = data
            view.seq += 1
            head = encode({"v": view.version, "type": "delta", "seq": view.seq, "topic": topic})
            view.offer(("delta", {"seq": view.seq, "text": head[:-1] + ',"data":' + text + "}"}))

    def _contend(self, view: View, contenders: list[str]) -> None:
        """Give each contender (most urgent first) the tile of the least urgent topic tiled,
        if it `displaces` it, in that tile's place; the walls then need a snapshot (`TILES`)."""
        changed = False
        for name in sorted(contenders, key=lambda n: urgency(self.rank(n))):
            if view.weakest is None:
                view.weakest = max(
                    ((i, self.rank(n)) for i, n in enumerate(view.tiles)),
                    key=lambda x: urgency(x[1]),
                )
            i, weakest = view.weakest
            if not displaces(self.rank(name), weakest):
                break
            view.tiled.discard(view.tiles[i])
            view.tiles[i] = name
            view.tiled.add(name)
            view.weakest = None
            changed = True
        if changed:
            view.body = None
            view.offer(TILES)

    def _data(self, topic: str, msg: dict[str, Any]) -> dict[str, Any]:
        """A delta's `data`: the message as walls need it."""
        if topic == "escalation":
            # not from self.escalations: over the bound, one of an unknown incident is trimmed
            # at once, and a hub listener that raises would take the publisher down with it
            return escalation_view(msg)
        if topic == "incident":
            iid = str(msg["incident"]["id"])
            inc = self.incidents.get(iid, msg["incident"])  # with its "why" line
            return {**msg, "incident": inc, "escalation": self.escalations.get(iid)}
        return msg

    @staticmethod
    def _live(view: View, live: Mapping[str, Any]) -> dict[str, Any]:
        """The ``live`` message with the open buckets of this view's tiles only (it has one
        for every topic with mentions: 2,000 entries, every quarter second, to every wall)."""
        topics = live.get("topics") or {}
        return {**live, "topics": {n: topics[n] for n in view.tiles if n in topics}}

    # --- reading ------------------------------------------------------------------------------
    def incident_list(self) -> list[dict[str, Any]]:
        """Incidents in panel order, each with its escalation (or None) attached."""
        return [
            {**i, "escalation": self.escalations.get(str(i["id"]))}
            for i in sorted(self.incidents.values(), key=incident_rank)
        ]

    def snapshot(
        self, patterns: Sequence[str] = (), *, view: View | None = None, packed: bool = False
    ) -> dict[str, Any]:
        """What a wall of this selection (or `view`) is sent: its tiles' topics and series, and
        every incident; `packed`: series as columns, as on the wire."""
        view = view or self.view(patterns)
        incidents = self.incident_list()
        live = self.latest.get("live")
        return {
            "topics": [self._topic[n] for n in view.tiles],
            # the page says how many selected topics have no tile ("+N more topics")
            "tiles": {"configured": len(self.names), "selected": len(view.key), "more": view.more},
            "history": self.history,  # the wall keeps as many points per series from deltas
            "series": {
                n: pack_points(self.series[n]) if packed else list(self.series[n])
                for n in view.tiles
            },
            "incidents": incidents,
            "alarms": alarms(incidents),
            "sources": sorted(self.sources.values(), key=lambda s: str(s["name"])),
            "oncall": self.latest.get("oncall"),
            "live": None if live is None else self._live(view, live),
            "extra": {k: v for k, v in self.latest.items() if k not in LATEST_TOPICS},
        }

    # --- frames (protocol v2, docs/wall.md) -----------------------------------------------
    def snapshot_frame(
        self,
        reason: str,
        now: float | None,
        dropped: int = 0,
        heartbeat: float = 2.0,
        view: View | None = None,
    ) -> str:
        """A snapshot frame for the walls of `view` (default: no selection); the (large) data
        part is encoded once per version of the view."""
        view = view or self.view()
        if view.body is None or view.body[0] != view.seq:
            packed = view.version >= 2  # version 1: the series as lists of points
            view.body = (view.seq, encode(self.snapshot(view=view, packed=packed)))
        head = encode(
            {
                "v": view.version,
                "type": "snapshot",
                "seq": view.seq,
                "now": self.now_hint if now is None else now,
                "reason": reason,
                "dropped": dropped,
                "heartbeat": heartbeat,
            }
        )
        return head[:-1] + ',"data":' + view.body[1] + "}"

    def heartbeat_frame(self, now: float | None, seq: int, version: int = PROTOCOL_VERSION) -> str:
        """The service clock and the seq of the last frame this client was sent (a self-check).

        >>> WallState([]).heartbeat_frame(12.5, 7)
        '{"v":2,"type":"heartbeat","seq":7,"now":12.5}'
        """
        t = self.now_hint if now is None else now
        return encode({"v": version, "type": "heartbeat", "seq": seq, "now": t})
