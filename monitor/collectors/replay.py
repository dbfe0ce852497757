"""Replay of recorded mentions (JSONL in the mention schema, or CSV) in event time.

Pacing follows the event-time gaps between mentions: each is released ``gap / speed`` after
the newest one before it (``speed=None``: as fast as possible), but never more than
:data:`MAX_WAIT_SECONDS` after it: a longer gap (a night, a line dated years off) is cut to
that, and pacing goes on from there. Out-of-order lines are emitted at once, never by
waiting backwards. Bad lines are dead-lettered with their line number. Also a tool:
``python -m monitor.collectors.replay FILE... [--speed X | --fast] [--max-wait S]`` prints
the paced stream as NDJSON, ready for ``curl --data-binary @-`` or ``mosquitto_pub -l``.

CSV columns: ``id, created_at, text`` and ``author_id`` are required; optional ``source,
channel, author_handle, author_followers, author_verified, lang, url, kind, in_reply_to,
country`` and any ``metric_<name>`` (integer) columns. Files are UTF-8; a leading BOM (Excel's
"CSV UTF-8") is ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, AnyStr, Final, NoReturn

from monitor.clock import Clock, SystemClock
from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Intake
from monitor.config.sources import ReplayConfig
from monitor.decode import MAX_BYTES, decode_json_bytes, decode_mention, encode_mention
from monitor.errors import DecodeError
from monitor.model import Mention

Line = tuple[int, bytes, Mention | DecodeError]

MAX_WAIT_SECONDS: Final = 30.0
"""The longest one gap between mentions makes the replay wait (seconds of its clock). Half
the default stale floor (60 s), so a gap in a recording never shows as a stale source."""

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
_BOM = b"\xef\xbb\xbf"
# A line is read at most this long: one mention at its size limit plus room for the
# whitespace around it; anything longer is skipped unread.
_LINE_LIMIT = MAX_BYTES + 1024
_KEEP = 64 * 1024  # what a dead letter keeps of an oversized line (the sink's own limit)
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def _num(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def csv_row_to_obj(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row -> a mention-schema object (string cells typed).

    >>> csv_row_to_obj({"id": "7", "created_at": "1714564800", "text": "hi", "author_id": "a",
    ...                 "author_followers": "12", "metric_likes": "3", "lang": ""})["author"]
    {'id': 'a', 'handle': None, 'followers': 12, 'verified': False}
    """

    def cell(k: str) -> str | None:
        v = row.get(k)
        return v if v not in (None, "") else None

    followers_raw = cell("author_followers")
    followers: object = None
    if followers_raw is not None:
        try:
            followers = int(followers_raw)
        except ValueError:
            followers = followers_raw  # the decoder names it: wrong_type
    verified_raw = (cell("author_verified") or "").lower()
    verified: object = (
        True if verified_raw in _TRUE else False if verified_raw in _FALSE else verified_raw
    )
    metrics: dict[str, object] = {}
    for k, v in row.items():
        if k and k.startswith("metric_") and v not in (None, ""):
            try:
                metrics[k[7:]] = int(v)
            except ValueError:
                metrics[k[7:]] = v
    obj: dict[str, Any] = {
        "id": cell("id"),
        "text": row.get("text"),
        "created_at": _num(c) if (c := cell("created_at")) is not None else None,
        "author": {
            "id": cell("author_id"),
            "handle": cell("author_handle"),
            "followers": followers,
            "verified": verified,
        },
    }
    for k in ("source", "channel", "lang", "url", "kind", "in_reply_to", "country"):
        if (value := cell(k)) is not None:
            obj[k] = value
    if metrics:
        obj["metrics"] = metrics
    return obj


def bounded_lines(
    f: IO[AnyStr], limit: int, ends: tuple[AnyStr, ...]
) -> Iterator[tuple[AnyStr, int]]:
    """(line, its full length) for each line of `f`. A line longer than `limit` comes as its
    first ``limit + 1`` items only: the rest is read in chunks and dropped, never held whole.

    >>> import io
    >>> list(bounded_lines(io.BytesIO(b"ab\\nlong line\\nc"), 4, (b"\\n",)))
    [(b'ab\\n', 3), (b'long ', 10), (b'c', 1)]
    """
    while line := f.readline(limit + 1):
        size = len(line)
        if size > limit and not line.endswith(ends):
            while (rest := f.readline(64 * 1024)) and not rest.endswith(ends):
                size += len(rest)
            size += len(rest)
        yield line, size


def undecodable(row: dict[Any, Any]) -> str | None:
    """Where a CSV row read with ``errors="surrogateescape"`` held bytes that are not UTF-8.

    >>> undecodable({"id": "1", "text": "caf\\udce9"}), undecodable({"id": "1", None: ["x"]})
    ("byte 0xe9 in column 'text'", None)
    """
    for k, v in row.items():
        for cell in (k, *(v if isinstance(v, list) else [v])):
            if isinstance(cell, str) and (m := _ESCAPED.search(cell)):
                return f"byte 0x{ord(m.group()) - 0xDC00:02x} in column {k!r}"
    return None


def read_lines(path: Path, *, source: str) -> Iterator[Line]:
    """(line number, raw bytes, mention or DecodeError) for each record of a JSONL/CSV file.

    A file that cannot be read is one ``malformed_feed`` error (line 0), not an exception:
    the other files of the replay still play.
    """
    n = 0
    try:
        if path.suffix.lower() == ".csv":
            yield from _csv_lines(path, source=source)
            return
        with path.open("rb") as fb:
            for n, (line, size) in enumerate(bounded_lines(fb, _LINE_LIMIT, (b"\n",)), 1):
                if size > len(line):
                    err = DecodeError("oversize", f"{size} bytes > {MAX_BYTES}")
                    yield n, line[:_KEEP], err
                    continue
                line = (line.removeprefix(_BOM) if n == 1 else line).strip()
                if not line:
                    continue
                try:
                    m: Mention | DecodeError = decode_json_bytes(line, source=source)
                except DecodeError as err:
                    m = err
                yield n, line, m
    except OSError as exc:
        yield n, b"", DecodeError("malformed_feed", f"cannot read: {type(exc).__name__}: {exc}")


def _csv_lines(path: Path, *, source: str) -> Iterator[Line]:
    # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, which would become part of the first
    # column's name. surrogateescape: a byte that is not UTF-8 costs its row, found below.
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        oversize: list[Line] = []

        def lines() -> Iterator[str]:
            for n, (line, size) in enumerate(bounded_lines(f, _LINE_LIMIT, ("\n", "\r")), 1):
                if size > len(line):
                    raw = line[:_KEEP].encode("utf-8", "surrogateescape")
                    err = DecodeError("oversize", f"line of {size} characters > {_LINE_LIMIT}")
                    oversize.append((n, raw, err))
                    line = "\n"  # no record, and the reader's line count stays right
                yield line

        reader = csv.DictReader(lines())
        while True:
            try:
                row = next(reader)
            except StopIteration:
                yield from oversize
                return
            except csv.Error as exc:
                # e.g. a cell beyond csv.field_size_limit(): that record is lost, the rest
                # of the file is not (the reader goes on at the next line). The reader
                # raises before it counts the line it failed on, hence + 1.
                yield from oversize
                oversize.clear()
                yield reader.line_num + 1, b"", DecodeError("malformed_feed", f"csv: {exc}")
                continue
            yield from oversize
            oversize.clear()
            raw = json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogateescape")
            m: Mention | DecodeError
            if (where := undecodable(row)) is not None:
                m = DecodeError("invalid_utf8", where)
            else:
                try:
                    m = decode_mention(csv_row_to_obj(row), source=source)
                except DecodeError as err:
                    m = err
            yield reader.line_num, raw, m


@dataclass(frozen=True, slots=True)
class Pace:
    """A replay's schedule: event time `t0` was due at clock time `w0`; `newest` is the newest
    event time on it; `stray` the (event, clock) time of a line far behind it, if the last was."""

    t0: float
    w0: float
    newest: float
    stray: tuple[float, float] | None = None


def pace(
    p: Pace | None, t: float, now: float, speed: float, max_wait: float = MAX_WAIT_SECONDS
) -> tuple[Pace, float]:
    """The schedule after a mention of event time `t` at clock time `now`, and how long to
    wait before emitting it (``0 <= wait <= max_wait``).

    >>> p, w = pace(None, 1000.0, now=0.0, speed=2.0); w
    0.0
    >>> p, w = pace(p, 1020.0, now=0.0, speed=2.0); w  # 20 s of event time at 2x
    10.0
    >>> p, w = pace(p, 1010.0, now=10.0, speed=2.0); w  # out of order: at once
    0.0
    >>> p, w = pace(p, 9e9, now=10.0, speed=2.0); w  # dated years ahead: capped
    30.0
    >>> p, w = pace(p, 1030.0, now=40.0, speed=2.0); w  # far behind: at once, maybe a stray
    0.0
    >>> p, w = pace(p, 1034.0, now=40.0, speed=2.0); w  # ...but the next is near it: go on
    2.0
    """
    if p is None:
        return Pace(t, now, t), 0.0
    ahead = (t - p.newest) / speed  # clock seconds after the newest mention's slot
    if ahead < -max_wait:
        if p.stray is not None and abs(t - p.stray[0]) / speed <= max_wait:
            # two lines in a row far behind and near each other: the schedule was the outlier
            # (e.g. a first line dated years ahead), so it goes on from the first of them
            return pace(Pace(p.stray[0], p.stray[1], p.stray[0]), t, now, speed, max_wait)
        # one line far behind may be a stray (an item hours late): it must not reset pacing
        return replace(p, stray=(t, now)), 0.0
    if ahead <= 0:
        return replace(p, stray=None), 0.0
    if ahead > max_wait:
        # a gap too long to sit through: wait max_wait after the newest one's slot, and
        # anchor there, so the mentions after the gap keep their own spacing
        w0 = p.w0 + (p.newest - p.t0) / speed + max_wait
        return Pace(t, w0, t), min(max_wait, max(0.0, w0 - now))
    # measured from the anchor, not from the last emission: time spent downstream between
    # mentions does not add up to drift
    due = p.w0 + (t - p.t0) / speed
    return Pace(p.t0, p.w0, t), min(max_wait, max(0.0, due - now))


class ReplaySource:
    """Mentions from files, paced in event time by the injected clock."""

    def __init__(
        self, cfg: ReplayConfig, ctx: SourceContext, *, max_wait: float = MAX_WAIT_SECONDS
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self.max_wait = max_wait
        self._intake = Intake(cfg.name, "replay", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health

    @property
    def done(self) -> bool:
        """Played every file (and does not loop)."""
        return self.health.finished

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        paths = [Path(p) for p in self.cfg.paths]
        self.health.finished = False
        self.health.stale_after = self.cfg.stale_after_seconds
        first: float | None = None
        last = 0.0
        rnd = 0
        while True:
            async for m in paced(
                paths,
                clock,
                self.cfg.speed,
                source=self.name,
                on_error=self._reject,
                max_wait=self.max_wait,
            ):
                if rnd == 0:
                    first = m.created_at if first is None else min(first, m.created_at)
                    last = max(last, m.created_at)
                else:
                    # a looped round is new data: fresh ids, times moved past the last round
                    span = last - (first or 0.0) + 1.0
                    m = replace(m, id=f"{m.id}~{rnd}", created_at=m.created_at + rnd * span)
                if self._intake.accept(m):
                    self._intake.set_connected(True)
                    yield m
            if not self.cfg.loop or first is None:
                # played out: its silence from now on is the end of the recording, not a
                # fault (/healthz 503 and STALE DATA on the wall, for good, otherwise)
                self.health.finished = True
                self.health.stale_after = math.inf
                self._intake.set_connected(False)
                return
            rnd += 1

    def _reject(self, path: Path, line: int, raw: bytes, err: DecodeError) -> None:
        self._intake.reject(err.reason, f"{path.name}:{line}: {err.detail}", raw)


OnError = Callable[[Path, int, bytes, DecodeError], None]


async def paced(
    paths: list[Path],
    clock: Clock,
    speed: float | None,
    *,
    source: str = "replay",
    on_error: OnError | None = None,
    max_wait: float = MAX_WAIT_SECONDS,
) -> AsyncGenerator[Mention, None]:
    """Mentions from `paths` in file order, each released as :func:`pace` schedules it."""
    schedule: Pace | None = None
    read = 0
    for path in paths:
        for n, raw, m in read_lines(path, source=source):
            read += 1
            if read % 500 == 0:
                # reading is synchronous: a long run of bad lines (nothing to yield, nothing
                # to wait for) must not hold the event loop the rest of the service runs on
                await asyncio.sleep(0)
            if isinstance(m, DecodeError):
                if on_error is not None:
                    on_error(path, n, raw, m)
                continue
            if speed is not None:
                schedule, wait = pace(schedule, m.created_at, clock.monotonic(), speed, max_wait)
                if wait > 0:
                    await clock.sleep(wait)
            yield m


def main(argv: list[str] | None = None) -> int:
    """Print the paced stream as NDJSON (encode_mention format); bad lines go to stderr."""
    ap = argparse.ArgumentParser(
        prog="python -m monitor.collectors.replay", description=__doc__.split("\n")[0]
    )
    ap.add_argument("files", nargs="+", type=Path)
    g = ap.add_mutually_exclusive_group()
    g.add_argument(
        "--speed", type=float, default=1.0, help="event time runs this many times faster"
    )
    g.add_argument("--fast", action="store_true", help="as fast as possible")
    ap.add_argument("--source", default="replay", help="source for records that have none")
    ap.add_argument(
        "--max-wait",
        type=float,
        default=MAX_WAIT_SECONDS,
        metavar="SECONDS",
        help="longest wait for one gap between mentions (default: %(default)s)",
    )
    args = ap.parse_args(argv)

    def refuse(reason: str) -> NoReturn:
        # one line, without argparse's usage block: the value is wrong, not the syntax
        ap.exit(2, f"{ap.prog}: error: {reason}\n")

    if not args.max_wait >= 0:  # also refuses nan
        refuse(f"--max-wait must be a number of seconds >= 0 (got {args.max_wait})")
    if not (math.isfinite(args.speed) and args.speed > 0):  # pacing divides by it
        refuse(f"--speed must be a positive number (got {args.speed})")
    for path in args.files:
        # the stream goes on past a file it cannot read (a service keeps playing the rest);
        # a file named on the command line that is not there is a typo to say at once
        if not path.exists():
            refuse(f"{path}: no such file")
        if path.is_dir():
            refuse(f"{path}: is a directory")
        if not os.access(path, os.R_OK):
            refuse(f"{path}: not readable (permission denied)")
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)

    def err(path: Path, line: int, raw: bytes, e: DecodeError) -> None:
        print(f"{path}:{line}: {e.reason}: {e.detail}", file=sys.stderr)

    async def run() -> None:
        speed = None if args.fast else args.speed
        stream = paced(
            args.files,
            SystemClock(),
            speed,
            source=args.source,
            on_error=err,
            max_wait=args.max_wait,
        )
        async for m in stream:
            out.write(json.dumps(encode_mention(m), ensure_ascii=False) + "\n")

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, BrokenPipeError):
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
