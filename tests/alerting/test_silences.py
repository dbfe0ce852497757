"""Silences: matching, windows, expiry, validation, persistence, config."""

from __future__ import annotations

import json

import pytest

from alerting.silences import Silence, SilenceBook, SilenceError
from monitor.config import parse_config
from monitor.errors import ConfigError


def test_window_is_half_open_and_all_matchers_must_hold() -> None:
    s = Silence.new("s", ["topic=acme", "severity=~SEV[34]"], 100, 200, "ana", "deploy")
    book = SilenceBook([s])
    assert book.matching({"topic": "acme", "severity": "SEV3"}, 99) == []
    assert book.matching({"topic": "acme", "severity": "SEV3"}, 100) == [s]
    assert book.matching({"topic": "acme", "severity": "SEV1"}, 150) == []
    assert book.matching({"topic": "acme", "severity": "SEV4"}, 200) == []


def test_expire_ends_a_silence_now() -> None:
    book = SilenceBook([Silence.new("s", ["topic=acme"], 0, 1000, "ana", "deploy")])
    ended = book.expire("s", 300)
    assert ended.end == 300 and book.matching({"topic": "acme"}, 300) == []
    assert book.expire("s", 500).end == 300  # expiring twice keeps the first end
    with pytest.raises(SilenceError) as err:
        book.expire("nope", 1)
    assert err.value.silence_id == "nope"


@pytest.mark.parametrize(
    ("matchers", "start", "end", "author", "comment"),
    [
        ([], 0, 10, "a", "c"),
        (["topic=~("], 0, 10, "a", "c"),
        (["topic=a"], 10, 10, "a", "c"),
        (["topic=a"], 0, 10, " ", "c"),
        (["topic=a"], 0, 10, "a", ""),
    ],
)
def test_invalid_silences_are_refused(
    matchers: list[str], start: float, end: float, author: str, comment: str
) -> None:
    with pytest.raises(SilenceError):
        Silence.new("x", matchers, start, end, author, comment)


def test_state_round_trip_and_prune() -> None:
    book = SilenceBook(
        [
            Silence.new("old", ["topic=a"], 0, 10, "ana", "x"),
            Silence.new("new", ["topic=b", "kind!=terms"], 5, 100_000, "ben", "y"),
        ]
    )
    again = SilenceBook.from_state(json.loads(json.dumps(book.to_state())))
    assert again.to_state() == book.to_state()
    again.prune(now=10 + 7 * 86400.0)
    assert [s.id for s in again.all()] == ["new"]


def test_config_silences() -> None:
    cfg = parse_config(
        {
            "topics": [],
            "alerting": {
                "silences": [
                    {
                        "matchers": ["topic=acme"],
                        "start": "2026-02-01T22:00Z",
                        "end": "2026-02-02T02:00Z",
                        "author": "ana",
                        "comment": "CMS migration",
                    }
                ]
            },
        }
    )
    book = SilenceBook.from_config(cfg.alerting.silences)
    [s] = book.all()
    assert s.id == "config-0" and s.end - s.start == 4 * 3600
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "topics": [],
                "alerting": {
                    "silences": [
                        {
                            "matchers": ["topic=a"],
                            "start": "x",
                            "end": "y",
                            "author": "a",
                            "comment": "c",
                        }
                    ]
                },
            }
        )
    assert err.value.path == "alerting.silences[0].start"


def test_expiring_a_pending_silence_survives_a_restart() -> None:
    book = SilenceBook([Silence.new("s", ["topic=acme"], 1000, 2000, "ana", "next week")])
    ended = book.expire("s", 500)
    assert not ended.active(500) and not ended.active(1500)
    again = SilenceBook.from_state(json.loads(json.dumps(book.to_state())))
    assert again.to_state() == book.to_state()
    assert again.matching({"topic": "acme"}, 1500) == []


@pytest.mark.parametrize("value", ['"quoted"', " padded ", "'x'", ""])
def test_matcher_values_survive_a_restart(value: str) -> None:
    s = Silence.new("s", [f"comment='{value}'" if value else "comment="], 0, 10, "a", "c")
    assert s.matches({"comment": value}, 1)
    [again] = SilenceBook.from_state(json.loads(json.dumps([s.to_dict()]))).all()
    assert again.matchers == s.matchers and again.matches({"comment": value}, 1)
