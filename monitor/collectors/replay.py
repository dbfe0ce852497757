"""Replay of recorded mentions (JSONL in the mention schema, or CSV) in event time.

Pacing: the first mention is emitted at once; mention *i* is emitted when the clock has moved
``(t_i - t_0) / speed`` since then (``speed=None``: as fast as possible). Out-of-order lines
are emitted immediately, never by waiting backwards. Bad lines are dead-lettered with their
line number. Also a tool: ``python -m monitor.collectors.replay FILE... [--speed X | --fast]``
prints the paced stream as NDJSON, ready for ``curl --data-binary @-`` or ``mosquitto_pub -l``.

CSV columns: ``id, created_at, text`` and ``author_id`` are required; optional ``source,
channel, author_handle, author_followers, author_verified, lang, url, kind, in_reply_to,
country`` and any ``metric_<name>`` (integer) columns.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.collectors.base import SourceContext, SourceHealth
from monitor.collectors.common import Intake
from monitor.config.sources import ReplayConfig
from monitor.decode import decode_json_bytes, decode_mention, encode_mention
from monitor.errors import DecodeError
from monitor.model import Mention

Line = tuple[int, bytes, Mention | DecodeError]

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})


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
            for n, line in enumerate(fb, start=1):
                line = line.strip()
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
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # e.g. a cell beyond csv.field_size_limit(): that record is lost, the rest
                # of the file is not (the reader goes on at the next line). The reader
                # raises before it counts the line it failed on, hence + 1.
                err = DecodeError("malformed_feed", f"csv: {exc}")
                yield reader.line_num + 1, b"", err
                continue
            raw = json.dumps(row, ensure_ascii=False).encode("utf-8", "replace")
            try:
                m: Mention | DecodeError = decode_mention(csv_row_to_obj(row), source=source)
            except DecodeError as err:
                m = err
            yield reader.line_num, raw, m


def delay(t0: float, w0: float, t: float, now: float, speed: float | None) -> float:
    """How long to wait before emitting an event of time `t` (never negative).

    >>> delay(t0=100.0, w0=0.0, t=160.0, now=10.0, speed=2.0)
    20.0
    >>> delay(100.0, 0.0, 90.0, 10.0, 2.0), delay(100.0, 0.0, 1e9, 0.0, None)
    (0.0, 0.0)
    """
    if speed is None:
        return 0.0
    return max(0.0, w0 + (t - t0) / speed - now)


class ReplaySource:
    """Mentions from files, paced in event time by the injected clock."""

    def __init__(self, cfg: ReplayConfig, ctx: SourceContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self._intake = Intake(cfg.name, "replay", ctx, stale_after=cfg.stale_after_seconds)
        self.health: SourceHealth = self._intake.health
        self.done = False

    async def stream(self) -> AsyncGenerator[Mention, None]:
        clock = self.ctx.clock
        paths = [Path(p) for p in self.cfg.paths]
        first: float | None = None
        last = 0.0
        rnd = 0
        while True:
            async for m in paced(
                paths, clock, self.cfg.speed, source=self.name, on_error=self._reject
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
                self.done = True
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
) -> AsyncGenerator[Mention, None]:
    """Mentions from `paths` in file order, each released at its event-time offset / speed."""
    t0: float | None = None
    w0 = clock.monotonic()
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
            if t0 is None:
                t0, w0 = m.created_at, clock.monotonic()
            wait = delay(t0, w0, m.created_at, clock.monotonic(), speed)
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
    args = ap.parse_args(argv)
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)

    def err(path: Path, line: int, raw: bytes, e: DecodeError) -> None:
        print(f"{path}:{line}: {e.reason}: {e.detail}", file=sys.stderr)

    async def run() -> None:
        speed = None if args.fast else args.speed
        async for m in paced(args.files, SystemClock(), speed, source=args.source, on_error=err):
            out.write(json.dumps(encode_mention(m), ensure_ascii=False) + "\n")

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, BrokenPipeError):
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
