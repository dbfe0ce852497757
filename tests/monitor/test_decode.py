"""The mention schema: decode, encode, every failure reason, and never anything but DecodeError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import REASONS, decode_json_bytes, decode_mention, encode_mention
from monitor.errors import DecodeError
from monitor.model import Author, Mention

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "mention-schema.json"

GOOD: dict[str, Any] = {
    "id": "42",
    "source": "http",
    "channel": "x",
    "text": "acme is down again",
    "created_at": "2024-05-01T12:00:00Z",
    "author": {"id": "u1", "handle": "@ann", "followers": 120, "verified": True},
    "lang": "en",
    "url": "https://x.com/ann/status/42",
    "kind": "reply",
    "in_reply_to": "41",
    "metrics": {"likes": 3, "shares": 1},
}


def test_full_mention_roundtrips() -> None:
    m = decode_mention(GOOD)
    assert m.author == Author(id="u1", handle="@ann", followers=120, verified=True)
    assert m.metrics == (("likes", 3), ("shares", 1))
    assert m.kind == "reply" and m.in_reply_to == "41"
    assert decode_mention(encode_mention(m)) == m
    assert decode_json_bytes(json.dumps(encode_mention(m)).encode()) == m


def test_source_argument_fills_in_but_does_not_override() -> None:
    body = {k: v for k, v in GOOD.items() if k != "source"}
    assert decode_mention(body, source="mqtt").source == "mqtt"
    assert decode_mention(GOOD, source="mqtt").source == "http"
    with pytest.raises(DecodeError) as e:
        decode_mention(body)
    assert e.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"id": None}, "missing_field"),
        ({"id": 42}, "wrong_type"),
        ({"id": ""}, "invalid_value"),
        ({"text": None}, "missing_field"),
        ({"text": ["a"]}, "wrong_type"),
        ({"created_at": "yesterday"}, "invalid_value"),
        ({"created_at": "2024-05-01T12:00:00"}, "invalid_value"),
        ({"created_at": 1e15}, "invalid_value"),
        ({"created_at": True}, "wrong_type"),
        ({"author": "ann"}, "wrong_type"),
        ({"author": None}, "missing_field"),
        ({"author": {"handle": "@a"}}, "missing_field"),
        ({"author": {"id": "a", "followers": -1}}, "invalid_value"),
        ({"author": {"id": "a", "followers": "many"}}, "wrong_type"),
        ({"author": {"id": "a", "verified": "yes"}}, "wrong_type"),
        ({"author": {"id": "a", "karma": 1}}, "unknown_field"),
        ({"kind": "tweet"}, "invalid_value"),
        ({"metrics": {"likes": 1.5}}, "wrong_type"),
        ({"metrics": [1]}, "wrong_type"),
        ({"source": "has space"}, "invalid_value"),
        ({"schema_version": 2}, "unsupported_version"),
        ({"colour": "red"}, "unknown_field"),
    ],
)
def test_each_failure_has_its_reason(patch: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_mention({**GOOD, **patch})
    assert e.value.reason == reason
    assert reason in REASONS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc3\x28", "invalid_utf8"),
        (b'{"id": "1",', "malformed_json"),
        (b"[1]", "not_object"),
        (b"null", "not_object"),
        (b"[" * 100_000, "malformed_json"),
        (b" " * 300_000, "oversize"),
    ],
)
def test_byte_level_failures(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_json_bytes(raw)
    assert e.value.reason == reason


def test_schema_file_matches_the_decoder() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["properties"]["schema_version"]["const"] == 1
    assert set(schema["required"]) == {"id", "text", "created_at", "author"}
    assert set(schema["properties"]) >= set(encode_mention(decode_mention(GOOD)))
    assert schema["additionalProperties"] is False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn) -> object:
    """A valid mention with fields dropped, retyped or added: near misses find the edges."""
    obj: dict[str, Any] = dict(GOOD)
    for key in draw(st.lists(st.sampled_from([*GOOD, "author.id", "extra"]), max_size=3)):
        action = draw(st.sampled_from(["drop", "retype"]))
        if key == "author.id":
            obj["author"] = {**GOOD["author"], "id": draw(json_values)}
        elif action == "drop":
            obj.pop(key, None)
        else:
            obj[key] = draw(json_values)
    return obj


@settings(max_examples=1500, deadline=None)
@given(st.one_of(json_values, mutated()))
def test_any_json_value_decodes_or_raises_decode_error(value: object) -> None:
    try:
        m = decode_mention(value, source="fuzz")
    except DecodeError as e:
        assert e.reason in REASONS
    else:
        assert isinstance(m, Mention)
        assert decode_mention(encode_mention(m)) == m


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    try:
        decode_json_bytes(raw, source="fuzz", max_bytes=300)
    except DecodeError as e:
        assert e.reason in REASONS


def test_lone_surrogates_become_replacement_characters() -> None:
    # Valid JSON ("\ud83d" is a legal escape) from a client that cut an emoji in half; left
    # in, such a string cannot be encoded as UTF-8 later (an e-mail page with it as a sample
    # post fails to build), so the decoder keeps the mention and replaces the half character.
    raw = (
        b'{"id": "s\\udc00", "source": "http", "text": "acme down \\ud83d", "created_at": 1,'
        b' "author": {"id": "u", "handle": "@\\ud800ann"}}'
    )
    m = decode_json_bytes(raw)
    assert m.text == "acme down \ufffd"
    assert m.id == "s\ufffd" and m.author.handle == "@\ufffdann"
    assert json.dumps(encode_mention(m), ensure_ascii=False).encode("utf-8")
    # a proper pair is one character and stays as it is
    pair = decode_json_bytes(raw.replace(b"\\ud83d", b"\\ud83d\\ude00"))
    assert pair.text == "acme down \U0001f600"


def test_epoch_milliseconds_are_named_in_the_error() -> None:
    with pytest.raises(DecodeError) as e:
        decode_mention({**GOOD, "created_at": 1_714_564_800_000})
    assert e.value.reason == "invalid_value"
    assert "milliseconds" in e.value.detail


def test_seconds_just_past_2100_get_no_milliseconds_hint() -> None:
    with pytest.raises(DecodeError) as e:
        decode_mention({**GOOD, "created_at": 4_102_444_801})
    assert e.value.detail == "created_at: out of range"


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-W18-3T12:00Z",
        "20240501T120000Z",
        "2024-05-01T1200Z",
        "2024-05-01T12:00:00+0200",  # the review's: offsets and a comma fraction got through
        "2024-05-01T12:00:00+02",
        "2024-05-01T12:00:00,5Z",
    ],
)
def test_only_rfc3339_timestamps_are_read(stamp: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_mention({**GOOD, "created_at": stamp})
    assert e.value.reason == "invalid_value"
    assert e.value.detail == "created_at: not an RFC 3339 timestamp"


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01 12:00:00+00:00",
        "2024-05-01T14:00+02:00",
        "2024-05-01T12:00:00.000000Z",
    ],
)
def test_rfc3339_and_its_leniencies_are_read(stamp: str) -> None:
    assert decode_mention({**GOOD, "created_at": stamp}).created_at == 1_714_564_800.0


def test_an_unknown_key_with_a_lone_surrogate_is_named_cleanly() -> None:
    # QA: the 422 was right, but the detail kept the raw key and could not be stored
    raw = b'{"id": "u1", "text": "t", "created_at": 1, "author": {"id": "a", "\\ud800": 1}}'
    for doc in (raw, raw.replace(b'"text"', b'"\\udc00x": 1, "text"')):
        with pytest.raises(DecodeError) as e:
            decode_json_bytes(doc, source="http")
        assert e.value.reason == "unknown_field"
        assert "\ufffd" in e.value.detail and e.value.detail.encode("utf-8")


def test_a_byte_order_mark_is_ignored() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps(GOOD).encode()
    assert decode_json_bytes(raw) == decode_mention(GOOD)
    # a document of exactly max_bytes stays within the limit with its mark
    assert decode_json_bytes(raw, max_bytes=len(raw) - 3) == decode_mention(GOOD)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/x",
        "/relative/path",
        "ftp://files.example/x",
        "https://",
        "http:///no-host",
        "https://[::1",
    ],
)
def test_a_url_that_is_not_http_is_dropped_and_the_mention_kept(url: str) -> None:
    """A `javascript:` url was served in /api and /ws samples and linked by the Slack and
    PagerDuty notifiers (QA). The post still counts: only its link goes."""
    m = decode_mention({**GOOD, "url": url})
    assert m.url is None and m.text == GOOD["text"]


@pytest.mark.parametrize(
    "url", ["https://x.com/ann/status/42", "HTTP://Example.com/a?b=1#c", "http://[::1]:8080/p"]
)
def test_an_http_url_is_kept_as_sent(url: str) -> None:
    assert decode_mention({**GOOD, "url": url}).url == url
