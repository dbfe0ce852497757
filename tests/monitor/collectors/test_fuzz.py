"""Thousands of generated bad inputs through every collector's decoding path: each one either
becomes a valid mention or a DecodeError with a known reason — never another exception."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.collectors.jetstream import parse_frame
from monitor.collectors.mastodon import parse_event
from monitor.collectors.meta import Rejected, meta_events
from monitor.collectors.mqtt import MqttSource
from monitor.collectors.replay import csv_row_to_obj
from monitor.config.sources import MqttSourceConfig
from monitor.decode import REASONS, decode_mention, encode_mention
from monitor.errors import DecodeError
from monitor.model import Mention

from .conftest import make_harness

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)


def valid(m: Mention) -> None:
    assert math.isfinite(m.created_at)
    assert isinstance(m.text, str) and isinstance(m.id, str) and m.id
    # whatever a collector produces must survive the wire format
    assert decode_mention(encode_mention(m)) == m


def near(template: dict[str, Any], paths: list[list[str]]) -> st.SearchStrategy[object]:
    """The template with one nested field replaced by an arbitrary value."""

    @st.composite
    def build(draw: st.DrawFn) -> object:
        obj = json.loads(json.dumps(template))
        path = draw(st.sampled_from(paths))
        node = obj
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = draw(values)
        return obj

    return build()


JET = {
    "did": "did:plc:a",
    "time_us": 1725911162329308,
    "kind": "commit",
    "commit": {
        "operation": "create",
        "collection": "app.bsky.feed.post",
        "rkey": "3l",
        "record": {
            "text": "x",
            "createdAt": "2024-09-09T19:46:02Z",
            "langs": ["en"],
            "reply": {"parent": {"uri": "at://p"}},
        },
    },
}
JET_PATHS = [
    ["did"],
    ["time_us"],
    ["kind"],
    ["commit"],
    ["commit", "operation"],
    ["commit", "rkey"],
    ["commit", "record"],
    ["commit", "record", "text"],
    ["commit", "record", "createdAt"],
    ["commit", "record", "langs"],
    ["commit", "record", "reply"],
]
STATUS: dict[str, Any] = {
    "id": "1",
    "created_at": "2024-05-01T12:00:00Z",
    "content": "<p>x</p>",
    "in_reply_to_id": None,
    "visibility": "public",
    "language": "en",
    "url": "https://m/1",
    "spoiler_text": "",
    "favourites_count": 1,
    "account": {"id": "9", "acct": "a", "followers_count": 3, "fields": []},
}
STATUS_PATHS = [[k] for k in STATUS] + [["account", k] for k in STATUS["account"]]
META: dict[str, Any] = {
    "object": "page",
    "entry": [
        {
            "id": "1",
            "time": 1714564800,
            "changes": [
                {
                    "field": "feed",
                    "value": {
                        "item": "comment",
                        "verb": "add",
                        "comment_id": "c",
                        "post_id": "p",
                        "parent_id": "p",
                        "message": "m",
                        "from": {"id": "u", "name": "n"},
                        "created_time": 1714564790,
                    },
                }
            ],
            "messaging": [
                {
                    "sender": {"id": "s"},
                    "timestamp": 1714564799000,
                    "message": {"mid": "m1", "text": "t"},
                }
            ],
        }
    ],
}
META_PATHS: list[list[Any]] = [
    ["object"],
    ["entry"],
    ["entry", 0],
    ["entry", 0, "time"],
    ["entry", 0, "changes"],
    ["entry", 0, "messaging"],
]
META_PATHS += [
    ["entry", 0, "changes", 0, "value", k] for k in META["entry"][0]["changes"][0]["value"]
]
META_PATHS += [["entry", 0, "messaging", 0, k] for k in ("sender", "timestamp", "message")]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(values, near(JET, JET_PATHS)))
def test_jetstream_frames(frame: object) -> None:
    try:
        ev = parse_frame(frame)
    except DecodeError as e:
        assert e.reason in REASONS
    else:
        if ev.mention is not None:
            valid(ev.mention)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(values, near(STATUS, STATUS_PATHS)))
def test_mastodon_frames(status: object) -> None:
    for frame in (
        {"event": "update", "payload": json.dumps(status)},
        {"event": "delete", "payload": status},
    ):
        try:
            ev = parse_event(frame)
        except DecodeError as e:
            assert e.reason in REASONS
        else:
            if ev.mention is not None:
                valid(ev.mention)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(values, near(META, META_PATHS)))
def test_meta_bodies(body: object) -> None:
    for out in meta_events(body):
        if isinstance(out, Mention):
            valid(out)
        elif isinstance(out, Rejected):
            assert out.error.reason in REASONS


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "created_at",
                "text",
                "author_id",
                "author_followers",
                "author_verified",
                "kind",
                "metric_likes",
                "lang",
            ]
        ),
        st.text(max_size=12),
    )
)
def test_csv_rows(row: dict[str, str]) -> None:
    try:
        valid(decode_mention(csv_row_to_obj(row), source="replay"))
    except DecodeError as e:
        assert e.reason in REASONS


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.builds(lambda v: json.dumps(v).encode(), values)))
def test_mqtt_payloads_are_counted_per_reason(payload: bytes) -> None:
    h = make_harness()
    src = MqttSource(MqttSourceConfig(max_payload_bytes=256), h.ctx)
    m = src.decode(payload)
    if m is None:
        (letter,) = h.letters.items
        assert letter[1] in REASONS
        assert (
            h.metric("crisiswatch_collector_dead_letters_total", source="mqtt", reason=letter[1])
            == 1
        )
    else:
        valid(m)
