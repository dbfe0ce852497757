"""The mention wire format (docs/mention-schema.json, version 1): decode, validate, encode.

Pure functions. Every failure raises :class:`~monitor.errors.DecodeError` whose ``reason`` is one
of :data:`REASONS`, so collectors can dead-letter it and count it per (source, reason).

>>> m = decode_mention({"id": "1", "source": "http", "channel": "x", "text": "hi",
...                     "created_at": "2024-05-01T12:00:00Z",
...                     "author": {"id": "a1", "handle": "@a", "followers": 3}})
>>> m.key, m.created_at, m.author.followers
(('http', '1'), 1714564800.0, 3)
>>> decode_mention(encode_mention(m)) == m
True
>>> decode_json_bytes(b'{"id": 1}')
Traceback (most recent call last):
...
monitor.errors.DecodeError: wrong_type: id: expected string, got int
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from monitor.errors import DecodeError
from monitor.model import Author, Kind, Mention

SCHEMA_VERSION: Final = 1
SCHEMA_ID: Final = "https://crisiswatch.dev/schemas/mention-1.json"
MAX_BYTES: Final = 256 * 1024  # one mention; generous for long reviews, small enough to refuse junk
MAX_TEXT: Final = 100_000
KINDS: Final[tuple[Kind, ...]] = ("post", "reply", "comment", "dm", "review")

#: Every reason a decode can fail with; also the label values of the dead-letter counter.
REASONS: Final = (
    "oversize",
    "invalid_utf8",
    "malformed_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "unknown_field",
    "unknown_source",
    "unsupported_version",
    "malformed_feed",
    "decoder_error",  # a collector's decoder raised something unforeseen (a bug, kept as data)
)

_BOM: Final = b"\xef\xbb\xbf"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 3339 whole (a trailing Z is already +00:00), with its leniencies: a space or t for the T,
# seconds optional, the offset left for its own error; keeps out the other ISO 8601 forms
# fromisoformat takes (week dates 2024-W18-3, compact 20240501T120000Z, 12:00 as 1200, offsets
# +0200 or +02, a comma before the fraction)
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d)?", re.ASCII
)
_TOP_FIELDS: Final = frozenset(
    {
        "schema_version",
        "id",
        "source",
        "channel",
        "url",
        "author",
        "text",
        "lang",
        "created_at",
        "kind",
        "in_reply_to",
        "country",
        "metrics",
    }
)
_AUTHOR_FIELDS: Final = frozenset({"id", "handle", "followers", "verified"})
_EARLIEST: Final = 0.0  # 1970; anything before is a units mistake
_LATEST: Final = 4102444800.0  # 2100-01-01
_MILLIS: Final = 1e11  # seconds past this are year 5138: such a number is epoch milliseconds


def _type_name(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _scrub(s: str) -> str:
    # json.loads turns a lone "\ud83d" escape (an emoji cut in half upstream) into a lone
    # surrogate: legal JSON, but no UTF-8 encoder downstream accepts it (an e-mail page
    # quoting the post fails to build). Keep the mention, replace the half character.
    return s if s.isascii() else _SURROGATE.sub("\ufffd", s)


def _str(
    obj: Mapping[str, Any], key: str, path: str, *, required: bool, max_len: int = 4096
) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise DecodeError("missing_field", path)
        return ""
    v = obj[key]
    if not isinstance(v, str):
        raise DecodeError("wrong_type", f"{path}: expected string, got {_type_name(v)}")
    if len(v) > max_len:
        raise DecodeError("invalid_value", f"{path}: longer than {max_len} characters")
    return _scrub(v)


def _opt_str(obj: Mapping[str, Any], key: str, max_len: int = 4096) -> str | None:
    return _str(obj, key, key, required=False, max_len=max_len) or None


def web_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL with a host, else None.

    A mention's link is shown on the wall and in the API and linked by notifiers (Slack,
    PagerDuty): a ``javascript:`` or ``data:`` one would run where it is clicked. Only the link
    goes, not the mention: the post still counts, and its sender meant no harm more often than
    not (a relative link, an app scheme). Kept exactly as sent otherwise.

    >>> web_url("https://x.com/a/status/1"), web_url("javascript:alert(1)"), web_url("//h/p")
    ('https://x.com/a/status/1', None, None)
    """
    if url is None:
        return None
    try:
        parsed = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        return None
    # urlsplit lowercases the scheme and strips leading blanks and C0 controls (as browsers do,
    # so " javascript:" and "java\tscript:" are that scheme): judged as a browser would see it
    ok = parsed.scheme in ("http", "https") and parsed.hostname and url.isprintable()
    return url if ok else None


def _int(v: object, path: str) -> int:
    # bool is an int subclass in Python but never a count in JSON
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise DecodeError("wrong_type", f"{path}: expected integer, got {_type_name(v)}")
    if isinstance(v, float) and not v.is_integer():
        raise DecodeError("wrong_type", f"{path}: expected integer, got {v!r}")
    n = int(v)
    if n < 0 or n > 2**53:
        raise DecodeError("invalid_value", f"{path}: out of range ({n})")
    return n


def parse_time(v: object, path: str = "created_at") -> float:
    """Epoch seconds (number) or an RFC 3339 string with offset -> epoch seconds.

    Lenient where senders commonly are: a space or ``t`` for the ``T``, seconds left out,
    ``z``; other ISO 8601 forms (week dates, compact ``20240501T120000Z``) are refused.

    >>> parse_time("2024-05-01T12:00:00.5+02:00")
    1714557600.5
    >>> parse_time(1714557600)
    1714557600.0
    >>> parse_time("2024-05-01 12:00")
    Traceback (most recent call last):
    ...
    monitor.errors.DecodeError: invalid_value: created_at: timestamp without a UTC offset
    >>> parse_time("2024-W18-3T12:00Z")
    Traceback (most recent call last):
    ...
    monitor.errors.DecodeError: invalid_value: created_at: not an RFC 3339 timestamp
    """
    if isinstance(v, bool) or v is None:
        raise DecodeError("wrong_type", f"{path}: expected timestamp, got {_type_name(v)}")
    if isinstance(v, int | float):
        t = float(v)
    elif isinstance(v, str):
        s = v.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        try:
            if not _RFC3339.fullmatch(s):
                raise ValueError(s)
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise DecodeError("invalid_value", f"{path}: not an RFC 3339 timestamp") from None
        if dt.tzinfo is None:
            raise DecodeError("invalid_value", f"{path}: timestamp without a UTC offset")
        t = dt.timestamp()
    else:
        raise DecodeError("wrong_type", f"{path}: expected timestamp, got {_type_name(v)}")
    if not math.isfinite(t) or not _EARLIEST <= t <= _LATEST:
        if isinstance(v, int | float) and _MILLIS < t <= _LATEST * 1000:
            raise DecodeError(
                "invalid_value", f"{path}: out of range (epoch milliseconds? send seconds)"
            )
        raise DecodeError("invalid_value", f"{path}: out of range")
    return t


def format_time(t: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with milliseconds.

    >>> format_time(1714564800.25)
    '2024-05-01T12:00:00.250Z'
    """
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _author(v: object) -> Author:
    if v is None:
        raise DecodeError("missing_field", "author")
    if not isinstance(v, Mapping):
        raise DecodeError("wrong_type", f"author: expected object, got {_type_name(v)}")
    extra = set(v) - _AUTHOR_FIELDS
    if extra:
        raise DecodeError("unknown_field", f"author.{_scrub(sorted(map(str, extra))[0][:64])}")
    aid = _str(v, "id", "author.id", required=True, max_len=256)
    handle = _str(v, "handle", "author.handle", required=False, max_len=256) or aid
    followers = 0 if v.get("followers") is None else _int(v["followers"], "author.followers")
    verified = v.get("verified", False)
    if verified is None:
        verified = False
    if not isinstance(verified, bool):
        raise DecodeError(
            "wrong_type", f"author.verified: expected boolean, got {_type_name(verified)}"
        )
    return Author(id=aid, handle=handle, followers=followers, verified=verified)


def _metrics(v: object) -> tuple[tuple[str, int], ...]:
    if v is None:
        return ()
    if not isinstance(v, Mapping):
        raise DecodeError("wrong_type", f"metrics: expected object, got {_type_name(v)}")
    if len(v) > 32:
        raise DecodeError("invalid_value", "metrics: more than 32 entries")
    out = []
    for k, n in v.items():
        if not isinstance(k, str) or not _NAME.match(k):
            raise DecodeError("invalid_value", f"metrics: bad name {str(k)[:40]!r}")
        out.append((k, _int(n, f"metrics.{k}")))
    return tuple(sorted(out))


def decode_mention(obj: object, *, source: str | None = None) -> Mention:
    """Validate one decoded JSON value against the mention schema.

    `source`, when given, is the collector's name: it fills a missing ``source`` field (a
    present one wins, so one ingest endpoint can carry several sources).
    """
    if not isinstance(obj, Mapping):
        raise DecodeError("not_object", f"expected object, got {_type_name(obj)}")
    extra = set(obj) - _TOP_FIELDS
    if extra:
        # a key is cleaned like a value: the detail goes to the store and the log as UTF-8
        raise DecodeError("unknown_field", _scrub(sorted(map(str, extra))[0][:64]))
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise DecodeError("unsupported_version", f"schema_version {str(version)[:20]}")
    mid = _str(obj, "id", "id", required=True, max_len=512)
    if not mid:
        raise DecodeError("invalid_value", "id: empty")
    src = _str(obj, "source", "source", required=False, max_len=64) or source
    if not src:
        raise DecodeError("missing_field", "source")
    if not _NAME.match(src):
        raise DecodeError("invalid_value", f"source: bad name {src[:40]!r}")
    channel = _str(obj, "channel", "channel", required=False, max_len=64) or src
    if not _NAME.match(channel):
        raise DecodeError("invalid_value", f"channel: bad name {channel[:40]!r}")
    text = _str(obj, "text", "text", required=True, max_len=MAX_TEXT)
    if "created_at" not in obj or obj["created_at"] is None:
        raise DecodeError("missing_field", "created_at")
    created = parse_time(obj["created_at"])
    kind = obj.get("kind", "post")
    if kind is None:
        kind = "post"
    if not isinstance(kind, str):
        raise DecodeError("wrong_type", f"kind: expected string, got {_type_name(kind)}")
    if kind not in KINDS:
        raise DecodeError("invalid_value", f"kind: {kind[:20]!r} not one of {', '.join(KINDS)}")
    return Mention(
        id=mid,
        source=src,
        channel=channel,
        text=text,
        created_at=created,
        author=_author(obj.get("author")),
        lang=_opt_str(obj, "lang", 16),
        url=web_url(_opt_str(obj, "url", 2048)),
        kind=kind,
        in_reply_to=_opt_str(obj, "in_reply_to", 512),
        country=_opt_str(obj, "country", 8),
        metrics=_metrics(obj.get("metrics")),
    )


def loads(raw: bytes, *, max_bytes: int = MAX_BYTES) -> object:
    """Bytes -> JSON value, with the byte-level failure reasons.

    >>> loads(b'\\xef\\xbb\\xbf{"a": 1}')
    {'a': 1}
    >>> loads(b'\\xff')
    Traceback (most recent call last):
    ...
    monitor.errors.DecodeError: invalid_utf8: byte 0xff at position 0
    """
    # RFC 8259 lets a parser ignore a byte order mark; Windows tools write one. Stripped here,
    # so every path that reads one document (HTTP, MQTT, webhook, replay line) agrees
    raw = raw.removeprefix(_BOM)
    if len(raw) > max_bytes:
        raise DecodeError("oversize", f"{len(raw)} bytes > {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            "invalid_utf8", f"byte 0x{raw[exc.start]:02x} at position {exc.start}"
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise DecodeError("malformed_json", "nested too deeply") from None
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:80]
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        raise DecodeError("malformed_json", f"{msg} at position {pos}") from None


def decode_json_bytes(
    raw: bytes, *, source: str | None = None, max_bytes: int = MAX_BYTES
) -> Mention:
    """One JSON document (bytes) -> a :class:`Mention`, or :class:`DecodeError`."""
    return decode_mention(loads(raw, max_bytes=max_bytes), source=source)


def check_mention(m: Mention) -> Mention:
    """Hold a mention a collector built from a foreign format (Jetstream, Mastodon, Meta, RSS)
    to the same schema as everything else; raises DecodeError naming the offending field.

    >>> check_mention(Mention(id="1", source="s", channel="x", text="t", created_at=-5.0,
    ...                       author=Author(id="a", handle="a")))
    Traceback (most recent call last):
    ...
    monitor.errors.DecodeError: invalid_value: created_at: out of range
    >>> m = Mention(id="1", source="s", channel="x", text="t", created_at=5.0,
    ...             author=Author(id="a", handle="a"), url="javascript:alert(1)")
    >>> check_mention(m).url is None  # the link goes, the mention stays
    True
    """
    return decode_mention(encode_mention(m))


def encode_mention(m: Mention) -> dict[str, Any]:
    """A :class:`Mention` as its schema'd JSON object (``created_at`` as epoch seconds).

    >>> encode_mention(Mention(id="1", source="s", channel="x", text="t", created_at=5.0,
    ...                        author=Author(id="a", handle="@a")))["author"]
    {'id': 'a', 'handle': '@a', 'followers': 0, 'verified': False}
    """
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": m.id,
        "source": m.source,
        "channel": m.channel,
        "text": m.text,
        "created_at": m.created_at,
        "author": {
            "id": m.author.id,
            "handle": m.author.handle,
            "followers": m.author.followers,
            "verified": m.author.verified,
        },
        "kind": m.kind,
    }
    for key, value in (
        ("lang", m.lang),
        ("url", m.url),
        ("in_reply_to", m.in_reply_to),
        ("country", m.country),
    ):
        if value is not None:
            out[key] = value
    if m.metrics:
        out["metrics"] = dict(m.metrics)
    return out
