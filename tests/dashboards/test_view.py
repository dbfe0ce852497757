"""The wall's view model: bounded, ordered, never behind the deltas, one encode per message."""

from __future__ import annotations

import json
from typing import Any

from dashboards.view import MAX_INCIDENTS, WallState, alarms, escalation_view, live_view


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
    w.apply("incident", msg)
    why = "volume 69 vs 20.0 expected (3.5x) · terms: outage, störung · negative 65% vs 12% usual"
    assert w.snapshot()["incidents"][0]["why"] == why
    frame = w.frame(msg)
    assert frame is not None and json.loads(frame[1])["data"]["incident"]["why"] == why
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
    msg = incident("i1", "acknowledged")
    w.apply("incident", msg)
    frame = w.frame(msg)
    assert frame is not None
    assert json.loads(frame[1])["data"]["escalation"]["paged"][0]["user"] == "ana"
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
    msgs = [point("acme", 60.0 * i) for i in range(5)]
    for m in msgs:
        w.apply("series", m)
    frames = [w.frame(m) for m in msgs]
    assert [f[0] for f in frames if f] == [1, 2, 3, 4, 5]
    decoded = [json.loads(f[1]) for f in frames if f]
    assert all(d["v"] == 1 and d["type"] == "delta" and d["topic"] == "series" for d in decoded)
    assert frames[0] is not None and w.frame(msgs[0]) == frames[0]  # cached, not re-encoded
    assert w.frame(point("acme", 0.0)) is None  # an equal but different message is unknown


def test_frame_cache_is_bounded() -> None:
    w = WallState([], frame_cache=8)
    msgs = [{"name": f"s{i}"} for i in range(20)]
    for m in msgs:
        w.apply("source", m)
    assert w.frame(msgs[0]) is None and w.frame(msgs[-1]) is not None
    assert len(w._frames) == 8


def test_snapshot_frame_is_valid_json_and_tracks_state() -> None:
    w = WallState([{"name": "acme"}])
    w.apply("series", point("acme", 0.0, 3))
    w.apply("source", {"name": "demo", "stale": True})
    w.apply("oncall", {"regions": [{"region": "emea", "user": "ana"}]})
    w.apply("custom", {"x": 1})
    a = json.loads(w.snapshot_frame("connect", 100.0, heartbeat=2.0))
    assert a["type"] == "snapshot" and a["seq"] == 4 and a["now"] == 100.0
    assert a["reason"] == "connect" and a["heartbeat"] == 2.0
    assert a["data"]["series"]["acme"][0]["count"] == 3
    assert a["data"]["sources"][0]["stale"] is True
    assert a["data"]["oncall"]["regions"][0]["user"] == "ana"
    assert a["data"]["extra"] == {"custom": {"x": 1}}
    w.apply("series", point("acme", 60.0, 7))
    b = json.loads(w.snapshot_frame("dropped", None, dropped=3))
    assert b["seq"] == 5 and b["dropped"] == 3 and len(b["data"]["series"]["acme"]) == 2
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
    for m in msgs:
        w.apply("escalation", m)  # a listener that raises breaks hub.publish for everyone
    assert len(w.escalations) <= MAX_INCIDENTS + 1
    frame = w.frame(msgs[-1])
    assert frame is not None and json.loads(frame[1])["data"]["level"] == 1


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
    w.apply("incident", msg)
    why = (
        "volume 450 vs 34.3 expected (13.1x) · terms: outage"
        " · now volume 31 vs 35.0 expected (0.9x)"
    )
    assert w.snapshot()["incidents"][0]["why"] == why
    frame = w.frame(msg)
    assert frame is not None
    sent = json.loads(frame[1])["data"]["incident"]
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
