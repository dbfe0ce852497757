"""Incident lifecycle as timelines on explicit times (the book is pure)."""

from __future__ import annotations

import json

import pytest

from alerting.incidents import IncidentBook, IncidentError, IncidentEvent
from alerting.notifiers.base import IncidentView
from monitor.config.alerting import IncidentSettings
from tests.alerting.fakes import V


def kinds(events: list[IncidentEvent]) -> list[str]:
    return [e.kind for e in events]


def open_one(book: IncidentBook, t: float = 0.0, sev: int = 3, series: str = "acme") -> str:
    ev = book.on_verdict(V(series, t, 0.75, sev, onset="open"), t)
    assert kinds(ev) == ["opened"]
    return ev[0].incident.id


def test_open_update_resolve_timeline() -> None:
    book = IncidentBook()
    # at t=0 crisis opens
    iid = open_one(book)
    inc = book.get(iid)
    assert (inc.state, inc.key, inc.topic, inc.kind, inc.severity) == (
        "triggered",
        "acme/volume",
        "acme",
        "volume",
        3,
    )
    # at t=60 same severity, higher score: one "updated" event, not a timeline entry
    assert kinds(book.on_verdict(V("acme", 60, 0.78, 3), 60)) == ["updated"]
    assert book.get(iid).score == 0.78
    # at t=120 nothing changed: no event at all
    assert book.on_verdict(V("acme", 120, 0.78, 3), 120) == []
    # at t=180 detector resolves
    ev = book.on_verdict(V("acme", 180, 0.1, None, active=False, resolved=True), 180)
    assert kinds(ev) == ["resolved"]
    assert ev[0].incident.resolved_by == "detector"
    assert [x["event"] for x in book.get(iid).timeline] == ["opened", "resolved"]
    assert book.open_incidents() == []


def test_a_page_sent_late_still_says_how_bad_it_got() -> None:
    """The explanation follows the latest verdict (the wall); the peak one stays for pages.
    A page held through quiet hours went out saying "negative 6% vs 37% usual"."""

    def mood(share: float) -> dict[str, object]:
        return {
            "fired": ["sentiment"],
            "sentiment": {"negative_share": share, "baseline_share": 0.37},
        }

    book = IncidentBook(topic_titles={"acme": "ACME Corp"})
    ev = book.on_verdict(V("acme", 0, 0.7, 4, onset="open", explanation=mood(0.78)), 0)
    iid = ev[0].incident.id
    book.on_verdict(V("acme", 60, 0.8, 4, explanation=mood(0.81)), 60)  # the peak
    book.on_verdict(V("acme", 3600, 0.2, 4, explanation=mood(0.06)), 3600)  # calming down
    inc = book.get(iid).to_dict()
    assert inc["explanation"]["sentiment"]["negative_share"] == 0.06
    assert inc["peak_explanation"]["sentiment"]["negative_share"] == 0.81
    assert IncidentView.of(inc).summary == (
        "SEV4 ACME Corp: sentiment crisis · negative 81% vs 37% usual"
    )
    # an incident stored before the peak was kept pages with the latest explanation
    del inc["peak_explanation"]
    assert IncidentView.of(inc).summary.endswith("negative 6% vs 37% usual")


def test_people_read_the_topic_title_the_config_gives() -> None:
    book = IncidentBook(topic_titles={"acme": "ACME Corp"})
    acme, globex = open_one(book), open_one(book, series="globex")
    assert book.get(acme).to_dict()["title"] == "SEV3 ACME Corp: volume crisis"
    assert book.get(globex).to_dict()["title"] == "SEV3 globex: volume crisis"  # no title set
    again = IncidentBook.from_state(json.loads(json.dumps(book.to_state())))
    assert again.get(acme).to_dict()["title"] == "SEV3 ACME Corp: volume crisis"


def test_grouping_merges_channels_and_separates_kinds() -> None:
    book = IncidentBook()
    iid = open_one(book, series="acme/twitter")
    ev = book.on_verdict(V("acme/rss", 10, 0.75, 3, onset="open"), 10)
    assert ev == []  # same key and nothing new: merged silently, no second incident
    assert len(book.open_incidents()) == 1
    assert book.get(iid).sources == ["acme/twitter", "acme/rss"]
    # a sentiment crisis on the same topic is a different incident
    sent = V("acme:sent", 20, 0.8, 3, onset="open", explanation={"fired": ["sentiment"]})
    ev = book.on_verdict(sent, 20)
    assert kinds(ev) == ["opened"] and ev[0].incident.key == "acme/sentiment"
    # one channel calms down: the merged incident stays open until the last one resolves
    assert book.on_verdict(V("acme/rss", 30, 0.1, None, active=False, resolved=True), 30) == []
    assert book.get(iid).is_open
    ev = book.on_verdict(V("acme/twitter", 40, 0.1, None, active=False, resolved=True), 40)
    assert kinds(ev) == ["resolved"] and ev[0].incident.id == iid


def test_repage_when_severity_jumps_while_acknowledged() -> None:
    book = IncidentBook()
    iid = open_one(book, sev=3)
    assert kinds(book.acknowledge(iid, "ana", 30)) == ["acknowledged"]
    # at t=60 the same severity again: no page
    assert kinds(book.on_verdict(V("acme", 60, 0.76, 3), 60)) == ["updated"]
    # at t=120 SEV3 -> SEV2: re-page, back to triggered, ack cleared
    ev = book.on_verdict(V("acme", 120, 0.9, 2), 120)
    assert kinds(ev) == ["repaged"]
    inc = ev[0].incident
    assert (inc.state, inc.acked_by, inc.severity) == ("triggered", None, 2)
    assert inc.timeline[-1]["detail"]["from"] == "SEV3"
    # falling back to SEV3 and rising to SEV2 again does not page twice
    book.on_verdict(V("acme", 180, 0.75, 3), 180)
    assert kinds(book.on_verdict(V("acme", 240, 0.9, 2), 240)) == ["updated"]


def test_a_late_bucket_judged_without_its_gate_neither_repages_nor_eases() -> None:
    """The detector scores a late or repeated bucket but passes no severity (its gate did
    not step): a high score there must not re-page past the gate's repage limit, nor a low
    one lower the incident's severity."""
    book = IncidentBook()
    iid = open_one(book, sev=3)
    book.acknowledge(iid, "ana", 30)
    assert kinds(book.on_verdict(V("acme", 40, 0.99, None), 60)) == ["updated"]
    assert (book.get(iid).state, book.get(iid).severity) == ("acknowledged", 3)
    book.on_verdict(V("acme", 50, 0.05, None), 70)
    assert book.get(iid).severity == 3


def test_detector_repage_onset_forces_a_page() -> None:
    book = IncidentBook()
    iid = open_one(book)
    book.acknowledge(iid, "ana", 10)
    ev = book.on_verdict(V("acme", 20, 0.75, 3, onset="repage"), 20)
    assert kinds(ev) == ["repaged"] and ev[0].incident.state == "triggered"


def test_severity_jump_can_be_disabled() -> None:
    book = IncidentBook(IncidentSettings(repage_on_severity_jump=False))
    iid = open_one(book)
    book.acknowledge(iid, "ana", 10)
    assert kinds(book.on_verdict(V("acme", 20, 0.99, 1), 20)) == ["updated"]
    assert book.get(iid).state == "acknowledged"


def test_ack_timeout_retriggers() -> None:
    book = IncidentBook(IncidentSettings(ack_timeout_seconds=1800))
    iid = open_one(book)
    book.acknowledge(iid, "ana", 100)
    assert book.next_deadline() == 1900
    assert book.tick(1899) == []
    ev = book.tick(1900)
    assert kinds(ev) == ["retriggered"]
    assert ev[0].incident.state == "triggered" and ev[0].incident.acked_by is None
    assert book.get(iid).timeline[-1]["detail"]["was_acked_by"] == "ana"


def test_snooze_and_expiry() -> None:
    book = IncidentBook(IncidentSettings(ack_timeout_seconds=60))
    iid = open_one(book)
    ev = book.snooze(iid, until=3600, who="ben", now=10)
    assert kinds(ev) == ["snoozed"]
    assert (ev[0].incident.state, ev[0].incident.acked_by) == ("acknowledged", "ben")
    # the snooze, not the shorter ack timeout, decides
    assert book.tick(600) == []
    assert kinds(book.tick(3600)) == ["retriggered"]
    with pytest.raises(IncidentError):
        book.snooze(iid, until=3000, who="ben", now=3600)


def test_sev1_breaks_snooze() -> None:
    book = IncidentBook()
    iid = open_one(book, sev=3)
    book.snooze(iid, until=10_000, who="ben", now=10)
    ev = book.on_verdict(V("acme", 20, 0.99, 1), 20)
    assert kinds(ev) == ["repaged"] and ev[0].incident.snoozed_until is None


def test_auto_resolve_after_calm_and_retention() -> None:
    book = IncidentBook(IncidentSettings(auto_resolve_seconds=600, keep_resolved_seconds=3600))
    iid = open_one(book)
    book.on_verdict(V("acme", 300, 0.8, 3), 300)  # still active at t=300
    assert book.tick(800) == []
    ev = book.tick(900)
    assert kinds(ev) == ["resolved"] and ev[0].incident.resolved_by == "auto"
    assert book.get(iid).state == "resolved"
    book.tick(4499)
    assert book.get(iid)
    book.tick(4500)
    with pytest.raises(IncidentError):
        book.get(iid)


def test_manual_resolve_sticks_until_detector_reopens() -> None:
    book = IncidentBook()
    iid = open_one(book)
    assert kinds(book.resolve(iid, "ana", 50)) == ["resolved"]
    assert book.resolve(iid, "ana", 51) == []  # idempotent
    # the detector still says active: nothing reopens
    assert book.on_verdict(V("acme", 60, 0.8, 3), 60) == []
    # detector resolves, then a new onset is a new incident
    assert book.on_verdict(V("acme", 70, 0.1, None, active=False, resolved=True), 70) == []
    ev = book.on_verdict(V("acme", 80, 0.8, 3, onset="open"), 80)
    assert kinds(ev) == ["opened"] and ev[0].incident.id != iid


def test_notes_and_errors() -> None:
    book = IncidentBook()
    iid = open_one(book)
    ev = book.add_note(iid, "ana", "statement drafted", 5)
    assert kinds(ev) == ["noted"] and ev[0].incident.notes[0]["text"] == "statement drafted"
    with pytest.raises(IncidentError) as err:
        book.acknowledge("nope", "ana", 1)
    assert err.value.incident_id == "nope"
    with pytest.raises(IncidentError):
        book.add_note(iid, "ana", "  ", 6)
    assert book.acknowledge(iid, "ana", 7) and book.acknowledge(iid, "ben", 8) == []
    book.resolve(iid, "ana", 9)
    assert book.resolve(iid, "ben", 10) == []  # resolving again: harmless, no event
    with pytest.raises(IncidentError, match="cannot acknowledge a resolved incident"):
        book.acknowledge(iid, "ben", 11)


def test_severity_from_score_when_verdict_has_none() -> None:
    book = IncidentBook()
    ev = book.on_verdict(V("acme", 0, 0.96, None, onset="open"), 0)
    assert ev[0].incident.severity == 1
    assert ev[0].incident.to_dict()["pagerduty_severity"] == "critical"


def test_topic_labels_and_match_labels() -> None:
    book = IncidentBook(topic_labels={"acme": {"region": "emea"}})
    iid = open_one(book)
    assert book.get(iid).match_labels() == {
        "region": "emea",
        "topic": "acme",
        "kind": "volume",
        "severity": "SEV3",
        "key": "acme/volume",
    }


def test_state_round_trip_is_json_and_resumes() -> None:
    book = IncidentBook(IncidentSettings(ack_timeout_seconds=100))
    iid = open_one(book)
    book.acknowledge(iid, "ana", 10)
    state = json.loads(json.dumps(book.to_state()))
    again = IncidentBook.from_state(state, IncidentSettings(ack_timeout_seconds=100))
    assert again.get(iid).to_dict() == book.get(iid).to_dict()
    # the restored book continues: updates reach the same incident, timeouts still fire
    assert kinds(again.on_verdict(V("acme", 50, 0.9, 3), 50)) == ["updated"]
    assert kinds(again.tick(110)) == ["retriggered"]
    nxt = again.on_verdict(V("beta", 120, 0.8, 3, onset="open"), 120)
    assert nxt[0].incident.id not in {iid}


def test_snapshots_are_independent() -> None:
    book = IncidentBook()
    ev = book.on_verdict(V("acme", 0, 0.75, 3, onset="open"), 0)
    book.acknowledge(ev[0].incident.id, "ana", 1)
    assert ev[0].incident.state == "triggered"  # the event kept its moment
