"""The wall's view model: bounded, ordered, never behind the deltas, one encode per message."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dashboards.view import (
    MAX_INCIDENTS,
    MAX_TILES,
    MAX_VIEWS,
    TILES,
    TooManySelections,
    WallState,
    alarms,
    escalation_view,
    live_view,
    unpack_points,
)
from monitor.hub import Subscription


def point(topic: str, t: float, count: int = 1, **kw: Any) -> dict[str, Any]:
    return {"topic": topic, "t": t, "width": 60.0, "count": count, **kw}


def incident(
    iid: str, state: str = "triggered", severity: int = 2, t: float = 0.0
) -> dict[str, Any]:
    return {
        "kind": "opened",
        "incident": {
            "id": iid,
            "topic": "acme",
            "kind": "volume",
            "state": state,
            "severity": severity,
            "opened_at": t,
            "updated_at": t,
        },
    }


class Wall:
    """A wall watching a state: the frames queued for it, decoded."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub

    def frames(self) -> list[dict[str, Any]]:
        out = []
        for kind, item in self.sub.drain():
            out.append(json.loads(item["text"]) if kind == "delta" else {"marker": kind})
        return out


@contextmanager
def wall(w: WallState, *patterns: str, maxsize: int = 256) -> Iterator[Wall]:
    with w.watch(patterns, maxsize) as (_view, sub):
        yield Wall(sub)


def full_point(topic: str, t: float, score: float = 0.1, **kw: Any) -> dict[str, Any]:
    """A point shaped like `monitor.pipeline.series_point`."""
    return {
        "topic": topic, "t": t, "width": 60.0, "count": 12, "negative": 2, "positive": 3,
        "negative_share": 0.1667, "sentiment": 0.0417, "expected": 10.25,
        "band": [4.5, 16.0], "score": score, "severity": None, "onset": None,
        "active": False, "pages_from": None, **kw,
    }  # fmt: skip


def brands(n: int) -> list[dict[str, Any]]:
    return [{"name": f"b{i:04d}", "title": f"Brand {i}"} for i in range(n)]


def test_series_history_is_bounded_and_replayed_buckets_replace() -> None:
    w = WallState([{"name": "acme", "title": "ACME"}], history=10)
    for i in range(25):
        w.apply("series", point("acme", 60.0 * i, i))
    w.apply("series", point("acme", 60.0 * 24, 99))  # the same bucket again (restart replay)
    pts = w.snapshot()["series"]["acme"]
    assert len(pts) == 10
    assert [p["t"] for p in pts] == sorted({p["t"] for p in pts})
    assert pts[-1]["count"] == 99
    assert w.now_hint == 60.0 * 25


def test_unknown_series_are_capped() -> None:
    w = WallState([])
    for i in range(200):
        w.apply("series", point(f"s{i}", 0.0))
    assert len(w.series) == 64


def test_incidents_bounded_resolved_ones_evicted_first() -> None:
    w = WallState([])
    w.apply("incident", incident("open-old", "triggered", 1, t=0.0))
    for i in range(MAX_INCIDENTS + 20):
        w.apply("incident", incident(f"r{i}", "resolved", 3, t=1.0 + i))
    assert len(w.incidents) == MAX_INCIDENTS
    assert "open-old" in w.incidents  # the oldest, but still open
    assert "r0" not in w.incidents


def test_an_incident_carries_one_line_of_what_drove_it_in_snapshots_and_deltas() -> None:
    w = WallState([])
    msg = incident("a")
    msg["incident"]["explanation"] = {
        "observed": 69,
        "expected": 20.0,
        "fired": ["volume", "terms"],
        "top_terms": [["outage", 3.4], ["störung", 2.4]],
        "top_channels": [["x", 40]],
        "sentiment": {"negative_share": 0.6471, "baseline_share": 0.12, "tail_p": 1e-9},
    }
    with wall(w) as screen:
        w.apply("incident", msg)
        why = (
            "volume 69 vs 20.0 expected (3.5x) · terms: outage, störung · negative 65% vs 12% usual"
        )
        assert w.snapshot()["incidents"][0]["why"] == why
        [frame] = screen.frames()
        assert frame["data"]["incident"]["why"] == why
    w.apply("incident", incident("b"))  # no explanation: no line
    assert "why" not in w.incidents["b"]


def test_snapshot_orders_incidents_and_lists_alarms() -> None:
    w = WallState([])
    w.apply("incident", incident("a", "acknowledged", 1, 5.0))
    w.apply("incident", incident("b", "triggered", 3, 6.0))
    w.apply("incident", incident("c", "triggered", 2, 1.0))
    w.apply("incident", incident("d", "triggered", 1, 2.0))
    snap = w.snapshot()
    assert [i["id"] for i in snap["incidents"]] == ["d", "c", "b", "a"]
    assert snap["alarms"] == ["d", "c"]
    assert alarms(snap["incidents"]) == snap["alarms"]


def test_escalation_from_its_own_topic_or_inside_the_incident() -> None:
    w = WallState([])
    w.apply("incident", incident("i1"))
    w.apply(
        "escalation",
        {"incident_id": "i1", "level": 0, "paged": ["ana"], "next_escalation_at": 300.0},
    )
    [inc] = w.snapshot()["incidents"]
    assert inc["escalation"]["paged"] == [{"user": "ana", "name": "ana"}]
    assert inc["escalation"]["level"] == 1 and inc["escalation"]["next_escalation_at"] == 300.0
    # the incident delta carries the escalation known so far
    with wall(w) as screen:
        w.apply("incident", incident("i1", "acknowledged"))
        [frame] = screen.frames()
    assert frame["data"]["escalation"]["paged"][0]["user"] == "ana"
    # and an incident that embeds its escalation updates it
    inline = incident("i2")
    inline["incident"]["escalation"] = {"wake_at": 10.0, "paged": [{"user": "lead"}]}
    w.apply("incident", inline)
    assert w.escalations["i2"]["next_escalation_at"] == 10.0


def test_escalation_view_level_counts_from_one() -> None:
    assert escalation_view({"incident_id": "x", "level": -1})["level"] is None
    assert escalation_view({"incident_id": "x", "level": 1, "levels": 2})["level"] == 2


def test_frames_have_contiguous_seq_and_are_encoded_once() -> None:
    w = WallState([{"name": "acme"}])
    with w.watch() as (_, one), w.watch() as (_, two):
        for i in range(5):
            w.apply("series", point("acme", 60.0 * i))
        a, b = one.drain(), two.drain()
    assert [item["seq"] for _, item in a] == [1, 2, 3, 4, 5]
    decoded = [json.loads(item["text"]) for _, item in a]
    assert all(d["v"] == 2 and d["type"] == "delta" and d["topic"] == "series" for d in decoded)
    # the same selection: one frame for both walls, not one encode each
    assert all(x[1]["text"] is y[1]["text"] for x, y in zip(a, b, strict=True))


def test_a_wall_queue_is_bounded_and_counts_what_it_dropped() -> None:
    w = WallState([])
    with w.watch((), 8) as (_, sub):
        for i in range(20):
            w.apply("source", {"name": f"s{i}"})
        assert sub.queued == 8 and sub.dropped == 12 and w.dropped == 12
    assert w.walls == 0 and w.views == {}  # the view goes with its last wall


def test_snapshot_frame_is_valid_json_and_tracks_state() -> None:
    w = WallState([{"name": "acme"}])
    w.apply("series", point("acme", 0.0, 3))
    w.apply("source", {"name": "demo", "stale": True})
    w.apply("oncall", {"regions": [{"region": "emea", "user": "ana"}]})
    w.apply("custom", {"x": 1})
    a = json.loads(w.snapshot_frame("connect", 100.0, heartbeat=2.0))
    assert a["v"] == 2 and a["type"] == "snapshot" and a["seq"] == 4 and a["now"] == 100.0
    assert a["reason"] == "connect" and a["heartbeat"] == 2.0
    assert a["data"]["series"]["acme"] == {"n": 1, "cols": {"t": 0.0, "width": 60.0, "count": 3}}
    assert a["data"]["sources"][0]["stale"] is True
    assert a["data"]["oncall"]["regions"][0]["user"] == "ana"
    assert a["data"]["extra"] == {"custom": {"x": 1}}
    w.apply("series", point("acme", 60.0, 7))
    b = json.loads(w.snapshot_frame("dropped", None, dropped=3))
    assert b["seq"] == 5 and b["dropped"] == 3 and b["data"]["series"]["acme"]["n"] == 2
    assert b["now"] == 120.0  # without a clock: the newest time seen in data


def test_live_view_keeps_newest_open_bucket_per_topic() -> None:
    class B:
        def __init__(self, series: str, start: float, count: int) -> None:
            self.series, self.start, self.count, self.negative = series, start, count, 0

    v = live_view(10, 5.0, [B("a", 60, 1), B("a", 0, 9), B("b", 0, 2)])
    assert v["topics"] == {
        "a": {"start": 60, "count": 1, "negative": 0},
        "b": {"start": 0, "count": 2, "negative": 0},
    }
    assert v["processed"] == 10 and v["t"] == 5.0


def test_snapshot_tells_the_wall_how_many_points_deltas_may_keep() -> None:
    # the page trims series fed by deltas to this; a fixed 240 there cut a 24 h chart
    # (history_buckets: 1440) down to 4 h at the first delta after a snapshot
    w = WallState([{"name": "acme"}], history=1440)
    assert w.snapshot()["history"] == 1440
    assert json.loads(w.snapshot_frame("connect", 0.0))["data"]["history"] == 1440


def test_escalations_of_unknown_incidents_beyond_the_bound_do_not_raise() -> None:
    w = WallState([])
    msgs = [{"incident_id": f"x{i}", "level": 0} for i in range(MAX_INCIDENTS + 5)]
    with wall(w) as screen:
        for m in msgs:
            w.apply("escalation", m)  # a listener that raises breaks hub.publish for everyone
        assert len(w.escalations) <= MAX_INCIDENTS + 1
        assert screen.frames()[-1]["data"]["level"] == 1


def test_why_is_what_drove_the_incident_at_its_peak_not_the_calm_after() -> None:
    """A SEV1 opened at 450 vs 34.3 read `volume 31 vs 35.0 expected (0.9x)` minutes later
    under its flashing alarm (QA)."""
    w = WallState([])
    msg = incident("a", severity=1)
    msg["incident"]["peak_explanation"] = {
        "observed": 450,
        "expected": 34.3,
        "top_terms": [["outage", 3.4]],
    }
    msg["incident"]["explanation"] = {"observed": 31, "expected": 35.0}
    with wall(w) as screen:
        w.apply("incident", msg)
        [frame] = screen.frames()
    why = (
        "volume 450 vs 34.3 expected (13.1x) · terms: outage"
        " · now volume 31 vs 35.0 expected (0.9x)"
    )
    assert w.snapshot()["incidents"][0]["why"] == why
    sent = frame["data"]["incident"]
    assert sent["why"] == why and "peak_explanation" not in sent  # the line is all walls need
    # while the peak is the latest there is nothing to add
    msg = incident("b")
    msg["incident"]["peak_explanation"] = msg["incident"]["explanation"] = {
        "observed": 9,
        "expected": 3.0,
    }
    w.apply("incident", msg)
    assert w.incidents["b"]["why"] == "volume 9 vs 3.0 expected (3.0x)"


def test_an_escalation_that_reached_nobody_says_so() -> None:
    w = WallState([])
    w.apply("incident", incident("i1", severity=3))
    w.apply(
        "escalation",
        {"incident_id": "i1", "status": "paging", "level": -1, "paged": [],
         "next_escalation_at": 900.0, "nobody_reachable": True},
    )  # fmt: skip
    [inc] = w.snapshot()["incidents"]
    assert inc["escalation"]["nobody_reachable"] is True
    assert inc["escalation"]["next_escalation_at"] == 900.0  # when it is tried again
    assert escalation_view({"incident_id": "i2", "level": 0})["nobody_reachable"] is False


# --- scale: 2,000 topics, a wall tiles 64 (docs/wall.md, "Many topics") -----------------------
def scaled(n: int, points: int) -> WallState:
    w = WallState(brands(n), history=240)
    for k in range(points):
        for i in range(n):
            w.apply("series", full_point(f"b{i:04d}", 60.0 * k, score=round(0.001 * (i % 97), 4)))
    return w


def test_the_snapshot_is_bounded_at_2000_topics_and_encoded_once_per_version() -> None:
    """Every topic's 240 points went to every wall: 58-66 MB at 2,000 topics (QA)."""
    w = scaled(2000, 120)
    frame = w.snapshot_frame("connect", 0.0)
    assert len(frame.encode()) < 1_000_000, len(frame)
    data = json.loads(frame)["data"]
    assert len(data["topics"]) == MAX_TILES == len(data["series"])
    assert all(s["n"] == 120 for s in data["series"].values())  # each tile's whole history
    assert data["tiles"] == {"configured": 2000, "selected": 2000, "more": 2000 - MAX_TILES}
    with w.watch() as (view, _):
        body = view.body
        w.snapshot_frame("connect", 0.0, view=view)
        w.snapshot_frame("dropped", 0.0, 3, view=view)
        assert view.body is not None and body is None
        cached = view.body[1]
        w.snapshot_frame("requested", 0.0, view=view)
        assert view.body[1] is cached  # 500 walls of one URL: one encode
        w.apply("source", {"name": "demo"})
        w.snapshot_frame("requested", 0.0, view=view)
        assert view.body[1] is not cached  # a new version: encoded again


def test_deltas_and_live_carry_only_the_tiles_of_the_wall() -> None:
    """`live` carried one entry per topic with an open bucket, 2,000, to every wall."""
    w = WallState(brands(2000))
    with wall(w) as screen, w.watch() as (view, _):
        for i in range(2000):
            w.apply("series", full_point(f"b{i:04d}", 0.0))
        w.apply(
            "live",
            {"processed": 9, "t": 1.0,
             "topics": {f"b{i:04d}": {"start": 0.0, "count": 1, "negative": 0}
                        for i in range(2000)}},
        )  # fmt: skip
        frames = screen.frames()
    series = [f for f in frames if f.get("topic") == "series"]
    assert {f["data"]["topic"] for f in series} == set(view.tiles)
    assert len(series) == MAX_TILES
    [live] = [f for f in frames if f.get("topic") == "live"]
    assert sorted(live["data"]["topics"]) == sorted(view.tiles)
    assert live["data"]["processed"] == 9
    assert [f["seq"] for f in frames] == list(range(frames[0]["seq"], frames[0]["seq"] + 65))


def test_up_to_64_topics_a_wall_gets_every_message_as_before() -> None:
    w = WallState(brands(64))
    with wall(w) as screen:
        for i in range(64):
            w.apply("series", full_point(f"b{i:04d}", 0.0))
        w.apply("live", {"processed": 1, "t": 0.0, "topics": {"b0000": {"count": 1}}})
        frames = screen.frames()
    assert [f["seq"] for f in frames] == list(range(1, 66))  # one seq per hub message
    assert w.snapshot()["topics"] == brands(64)


def test_the_tiles_are_the_topics_that_need_attention_in_config_order() -> None:
    w = WallState(brands(100))
    for i in range(100):
        w.apply("series", full_point(f"b{i:04d}", 0.0, score=0.01 * i))
    w.apply("incident", incident("x", severity=2) | {"incident": {
        **incident("x", severity=2)["incident"], "topic": "b0003"}})  # fmt: skip
    tiles = [t["name"] for t in w.snapshot()["topics"]]
    # the open incident first, then the 63 highest scores, shown in config order
    assert tiles == ["b0003", *[f"b{i:04d}" for i in range(37, 100)]]
    assert w.snapshot()["tiles"]["more"] == 36


def test_a_topic_entering_the_tiles_takes_a_tile_in_place_and_the_wall_gets_its_history() -> None:
    w = WallState(brands(100))
    for k in range(30):
        for i in range(100):
            w.apply("series", full_point(f"b{i:04d}", 60.0 * k, score=0.2 if i < 64 else 0.0))
    with wall(w) as screen, w.watch() as (view, _):
        before = list(view.tiles)
        assert before == [f"b{i:04d}" for i in range(64)]
        # a calm topic a little above the others does not take a tile (no churn) ...
        w.apply("series", full_point("b0080", 60.0 * 30, score=0.25))
        assert view.tiles == before and screen.frames() == []  # and its point is not sent
        # ... an incident does, in the place of the calmest tile; the rest stay where they were
        inc = incident("i1", severity=3)
        inc["incident"]["topic"] = "b0080"
        w.apply("incident", inc)
        assert "b0080" in view.tiles and len(view.tiles) == MAX_TILES
        moved = [(a, b) for a, b in zip(before, view.tiles, strict=True) if a != b]
        assert len(moved) == 1 and moved[0][1] == "b0080"
        frames = screen.frames()
        assert frames[0] == {"marker": TILES[0]}  # the pump sends this wall a snapshot
        assert frames[1]["topic"] == "incident"  # and the incident at once, not after it
        snap = json.loads(w.snapshot_frame("tiles", 0.0, view=view))["data"]
        assert snap["series"]["b0080"]["n"] == 31  # its history, not one point
        assert [t["name"] for t in snap["topics"]] == view.tiles
        # from now on its points are sent
        w.apply("series", full_point("b0080", 60.0 * 31))
        assert [f["data"]["topic"] for f in screen.frames()] == ["b0080"]


def test_a_much_higher_score_takes_a_tile() -> None:
    w = WallState(brands(65))
    for i in range(65):
        w.apply("series", full_point(f"b{i:04d}", 0.0, score=0.1))
    with wall(w) as screen, w.watch() as (view, _):
        [out] = [n for n in w.names if n not in view.tiles]
        w.apply("series", full_point(out, 60.0, score=0.95))
        assert out in view.tiles
        assert screen.frames()[0] == {"marker": TILES[0]}


def test_the_url_selects_topics_by_name_and_glob() -> None:
    topics = [{"name": n} for n in ("acme", "globex", "emea-a", "emea-b", "us-x")]
    w = WallState(topics)
    w.apply("series", full_point("us-x", 0.0))
    w.apply("series", full_point("emea-a", 0.0))
    snap = w.snapshot(("globex", "emea-*"))
    assert [t["name"] for t in snap["topics"]] == ["globex", "emea-a", "emea-b"]
    assert snap["tiles"] == {"configured": 5, "selected": 3, "more": 0}
    assert sorted(snap["series"]) == ["emea-a", "emea-b", "globex"]
    assert w.snapshot(("nothing",))["topics"] == []
    # two spellings of one selection share a view (and its encodes)
    with w.watch(("emea-*", "globex")) as (a, _), w.watch(("globex", "emea-a", "emea-b")) as (b, _):
        assert a is b
        with wall(w, "acme") as acme, wall(w, "us-*") as us:
            w.apply("series", full_point("us-x", 60.0))
            assert acme.frames() == [] and [f["data"]["topic"] for f in us.frames()] == ["us-x"]


def test_incidents_of_every_topic_reach_every_wall_with_the_topic_title() -> None:
    w = WallState(brands(100))
    with wall(w, "b0001") as screen:
        inc = incident("i1")
        inc["incident"]["topic"] = "b0099"
        w.apply("incident", inc)
        [frame] = screen.frames()
    assert frame["data"]["incident"]["topic_title"] == "Brand 99"
    snap = w.snapshot(("b0001",))
    assert [i["id"] for i in snap["incidents"]] == ["i1"] and snap["alarms"] == ["i1"]


def test_distinct_selections_are_bounded() -> None:
    w = WallState(brands(MAX_VIEWS + 1))
    with contextlib.ExitStack() as views:
        for i in range(MAX_VIEWS):
            views.enter_context(w.watch((f"b{i:04d}",)))
        assert w.may_watch(("b0000",)) and not w.may_watch((f"b{MAX_VIEWS:04d}",))
        with pytest.raises(TooManySelections), w.watch((f"b{MAX_VIEWS:04d}",)):
            pass
    assert w.views == {}


# --- the checkpoint form of the tiles' history ------------------------------------------------
def test_the_checkpoint_form_is_columns_and_restores_exactly() -> None:
    w = scaled(50, 120)
    w.apply("series", full_point("b0001", 60.0 * 120, severity=2, onset="open", active=True))
    state = w.series_state()
    assert json.loads(json.dumps(state)) == state  # JSON-able
    assert state["form"] == "columns" and state["series"]["b0000"]["cols"]["width"] == 60.0
    old_form = {n: list(b) for n, b in w.series.items() if b}
    new, old = json.dumps(state).encode(), json.dumps(old_form).encode()
    assert len(new) < 0.3 * len(old), (len(new), len(old))
    assert len(zlib.compress(new, 6)) < 0.6 * len(zlib.compress(old, 6))
    again = WallState(brands(50), history=240)
    again.restore_series(json.loads(json.dumps(state)))
    assert {n: list(b) for n, b in again.series.items()} == {
        n: list(b) for n, b in w.series.items()
    }


def test_the_first_checkpoint_form_still_restores() -> None:
    """An upgrade starts from the store the previous version wrote: {topic: [point…]}."""
    points = [full_point("acme", 60.0 * i) for i in range(5)]
    saved = json.loads(json.dumps({"acme": points, "gone": [full_point("gone", 0.0)]}))
    w = WallState([{"name": "acme"}, {"name": "form"}], history=3)
    w.restore_series(saved)
    assert list(w.series["acme"]) == points[-3:] and "gone" not in w.series
    # and a topic named like a field of the new form is a topic of the old one
    w.restore_series({"form": [full_point("form", 0.0)], "series": []})
    assert list(w.series["form"]) == [full_point("form", 0.0)]


def test_unpacking_gives_back_the_points() -> None:
    pts = [full_point("a", 0.0), full_point("a", 60.0, severity=1, active=True, count=0)]
    from dashboards.view import pack_points

    assert unpack_points("a", json.loads(json.dumps(pack_points(pts)))) == pts


def test_a_damaged_entry_of_the_checkpoint_loses_only_that_topics_history() -> None:
    w = WallState([{"name": "a"}, {"name": "b"}, {"name": "c"}])
    w.restore_series(
        {"form": "columns", "series": {
            "a": {"n": 2, "cols": {"t": [0.0]}},  # a column shorter than n
            "b": [1, 2],
            "c": {"n": 1, "cols": {"t": [0.0]}},
        }}
    )  # fmt: skip
    assert [len(w.series[n]) for n in "abc"] == [0, 0, 1]
