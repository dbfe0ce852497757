"""Backtest: NAB-format CSVs through the live :class:`DetectionStage`, in event time.

Each input row becomes one bucket of the series named after the file; the stage that
serves production judges it; the output row carries the crisis score and ``alert = 1``
exactly where the service would open or re-page an incident. With labels, NAB scores are
printed (see :mod:`detectors.nab`).
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from detectors.nab import PROFILES, FileScore, median_delay, normalized, score_file
from detectors.stage import MAX_GAP_FILL, DetectionStage
from monitor.config.detection import DetectionConfig
from monitor.errors import CrisiswatchError
from monitor.model import Bucket


class BacktestInputError(CrisiswatchError):
    """An input file or the labels file cannot be used; names the file and the line."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path, self.reason, self.line = path, reason, line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


@dataclass(slots=True)
class Series:
    """One NAB file: raw timestamp and value text (echoed back verbatim) and parsed values."""

    name: str
    stamps: list[str]
    raw_values: list[str]
    t: array[float]  # 8 bytes a row, not 32 (a million-row file)
    values: array[float]


def parse_time(text: str) -> float:
    """NAB timestamp (no zone: UTC; with an offset: honoured) to epoch seconds.

    An export in local time carries its offset, which changes at DST: dropping it would
    repeat an hour in autumn (its rows judged late) and skip one in spring.

    >>> parse_time("2015-02-26 21:42:53"), parse_time("2015-02-26 21:42:53.000000")
    (1424986973.0, 1424986973.0)
    >>> parse_time("2015-02-26T22:42:53+01:00"), parse_time("2015-02-26T21:42:53Z")
    (1424986973.0, 1424986973.0)
    """
    dt = datetime.fromisoformat(text.strip())
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


# a count per bucket; far above any real topic, far below where the model's squares overflow
MAX_VALUE = 1e12


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters: an error is one line a person reads,
    and a quote left open can make one field of a whole file.

    >>> shown("12"), shown("9" * 100, limit=10)
    ("'12'", "'999999999... (102 characters)")
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_row(row: list[str], path: str, lineno: int) -> tuple[float, float]:
    """One ``timestamp,value`` row as (epoch seconds, value); the error says which field.

    >>> parse_row(["2015-02-26 21:42:53", "12"], "a.csv", 2)
    (1424986973.0, 12.0)
    >>> parse_row(["2015-02-26 21:42:53", "nan"], "a.csv", 7)
    Traceback (most recent call last):
    ...
    detectors.backtest.BacktestInputError: a.csv:7: value 'nan' must be finite and within ±1e+12
    """
    for field, text in zip(("timestamp", "value"), row, strict=False):
        if "\n" in text or "\r" in text:
            # both are echoed into the output verbatim, where a line break splits the row;
            # the usual cause is a quote left open, which swallows the lines after it
            reason = f"{field} {shown(text)} spans lines (a quote left open?)"
            raise BacktestInputError(path, reason, lineno)
    if len(row) < 2:
        raise BacktestInputError(path, f"expected 'timestamp,value', got {shown(row)}", lineno)
    try:
        t = parse_time(row[0])
    except ValueError:
        reason = f"timestamp {shown(row[0])} is not an ISO 8601 time"
        raise BacktestInputError(path, reason, lineno) from None
    try:
        v = float(row[1])
    except ValueError:
        raise BacktestInputError(path, f"value {shown(row[1])} is not a number", lineno) from None
    if not abs(v) <= MAX_VALUE:  # NaN fails this too
        raise BacktestInputError(
            path, f"value {shown(row[1])} must be finite and within ±{MAX_VALUE:g}", lineno
        )
    return t, v


def read_series(path: Path) -> Series:
    """Read ``timestamp,value`` rows; raises :class:`BacktestInputError` on bad input."""
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a BOM the header check would see
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BacktestInputError(str(path), f"cannot read: {exc.strerror}") from None
    s = Series(path.name, [], [], array("d"), array("d"))
    start = 1  # the line the record being read starts on: a quoted value may span lines
    try:
        with fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
                raise BacktestInputError(str(path), "expected header 'timestamp,value'", 1)
            start = reader.line_num + 1
            for row in reader:
                if row:
                    t, v = parse_row(row, str(path), start)
                    # repeated or backward stamps occur in NAB (clock artefacts); they are
                    # kept and the stage judges them as late buckets (scored, never learned
                    # or paged)
                    s.stamps.append(row[0])
                    s.raw_values.append(row[1])
                    s.t.append(t)
                    s.values.append(v)
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise BacktestInputError(str(path), f"not UTF-8 text at byte {exc.start}") from None
    except csv.Error as exc:
        # e.g. a quote left open, whose value runs on past the csv module's field limit
        reason = f"not CSV from here on: {exc}"
        raise BacktestInputError(str(path), reason, start) from None
    except OSError as exc:  # opened, then failed (an I/O error, a directory)
        raise BacktestInputError(str(path), f"cannot read: {exc.strerror}") from None
    return s


def bucket_width(s: Series) -> float:
    """The series' typical step (NAB realTweets: 300 s)."""
    diffs = [b - a for a, b in zip(s.t, s.t[1:], strict=False)]
    width = statistics.median(diffs) if diffs else 300.0
    if width <= 0.0:
        # mostly repeated (or backward) stamps: the width is the typical step forward
        steps = [d for d in diffs if d > 0.0]
        if not steps:
            raise BacktestInputError(s.name, "timestamps never increase: no bucket width")
        width = statistics.median(steps)
    return width


def to_buckets(s: Series) -> Iterator[Bucket]:
    """Rows as buckets of the series' typical step (`bucket_width`), one at a time (a list of
    a million held 0.7 GB).

    Values are mention counts; non-count series (e.g. temperatures) are rounded and
    clipped at zero because a bucket holds a count.
    """
    width = bucket_width(s)
    for t, v in zip(s.t, s.values, strict=True):
        yield Bucket(s.name, t, width, count=max(0, round(v)))


def gaps(t: Sequence[float], width: float) -> tuple[int, float]:
    """How many steps between rows skip buckets, and the longest such step (seconds).

    The stage learns a skipped bucket as zero mentions (live, an absent bucket means nobody
    posted); for a series that was not sampled there (a sensor off, a crawler down) that
    is a misreading the output would not show, so the backtest says so.

    >>> gaps([0.0, 300.0, 600.0, 2400.0, 2700.0, 9000.0], 300.0)
    (2, 6300.0)
    >>> gaps([0.0, 300.0, 300.0, 600.0], 300.0)
    (0, 0.0)
    """
    n, longest = 0, 0.0
    for a, b in itertools.pairwise(t):
        if b - a >= 1.5 * width:
            n += 1
            longest = max(longest, b - a)
    return n, longest


#: A file this long or longer reports its progress every tenth of its rows.
PROGRESS_FROM_ROWS = 200_000


def run_series(
    stage: DetectionStage, s: Series, progress: TextIO | None = None
) -> tuple[list[float], list[int]]:
    """Feed one series through ``stage`` bucket by bucket; returns (scores, alerts). A long
    file says how far it is on ``progress`` (a million rows take half a minute or more)."""
    scores: list[float] = []
    alerts: list[int] = []
    n = len(s.t)
    step = -(-n // 10) if progress is not None and n >= PROGRESS_FROM_ROWS else 0
    for i, b in enumerate(to_buckets(s), 1):
        (v,) = stage.observe_many([b])
        scores.append(v.score)
        alerts.append(1 if v.onset is not None else 0)
        if step and i % step == 0 and i < n:
            print(f"{s.name}: {i:,} of {n:,} rows", file=progress, flush=True)
    return scores, alerts


def load_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """NAB ``combined_windows.json``: relative file path -> [[start, end], ...]."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BacktestInputError(str(path), f"cannot read labels: {exc}") from None
    if not isinstance(data, dict):
        raise BacktestInputError(str(path), "labels must be an object of file -> windows")
    out: dict[str, list[tuple[float, float]]] = {}
    for k, v in data.items():
        try:
            out[k] = [(parse_time(a), parse_time(b)) for a, b in v]
        except (TypeError, ValueError, AttributeError):
            raise BacktestInputError(
                str(path), f"{k}: expected a list of [start, end] timestamps, got {v!r}"[:200]
            ) from None
        for a, b in out[k]:
            if b < a:  # scored as it stood, it changed the result instead of failing
                raise BacktestInputError(str(path), f"{k}: a window ends before it starts")
    return out


def labelled(
    path: Path, labels: dict[str, list[tuple[float, float]]]
) -> list[tuple[float, float]] | None:
    """The windows (in time) labels give ``path``: by ``dir/name``, else by a unique name."""
    wins = labels.get(f"{path.parent.name}/{path.name}")
    if wins is None:
        matches = [v for k, v in labels.items() if Path(k).name == path.name]
        if len(matches) != 1:
            return None
        wins = matches[0]
    return wins


def windows_for(
    path: Path, s: Series, labels: dict[str, list[tuple[float, float]]]
) -> list[tuple[int, int]] | None:
    """Row-index windows of ``path`` (see :func:`labelled`), None if unlabelled."""
    wins = labelled(path, labels)
    if wins is None:
        return None
    index: dict[float, int] = {}
    for i, t in enumerate(s.t):
        index.setdefault(t, i)
    out = []
    for a, b in wins:
        for end, t in (("start", a), ("end", b)):
            if t not in index:  # e.g. a file cut short, or another export's step
                window = " .. ".join(
                    datetime.fromtimestamp(x, UTC).strftime("%Y-%m-%d %H:%M:%S") for x in (a, b)
                )
                reason = f"label window {window}: its {end} does not match a row timestamp"
                raise BacktestInputError(str(path), reason)
        out.append((index[a], index[b]))
    return out


def write_output(out: Path, s: Series, scores: list[float], alerts: list[int]) -> None:
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for row in zip(s.stamps, s.raw_values, scores, alerts, strict=True):
            w.writerow([row[0], row[1], f"{row[2]:.6f}", row[3]])


def run_backtest(
    inputs: Sequence[Path],
    out_dir: Path,
    config: DetectionConfig,
    labels: Path | None,
    log: TextIO,
) -> int:
    """Backtest every input; exit code 0 on success, 2 on unusable input, 1 when a result
    cannot be written (a full disk)."""
    try:
        # the nearest part of the path that exists must be a folder (--out a.csv/sub too)
        there = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
        if there is not None and not there.is_dir():
            raise BacktestInputError(f"--out {out_dir}", f"{there} is not a directory")
        label_map = load_windows(labels) if labels is not None else None
        if label_map is not None and not any(labelled(p, label_map) is not None for p in inputs):
            # before anything is written: a wrong labels file must not pass for "scored
            # nothing, all well", nor leave outputs behind as if the run had worked
            print(f"error: {labels}: labels none of the inputs (keys are dir/file.csv)", file=log)
            return 2
        # every input and its labels checked before anything is written: a bad third file
        # used to leave the first two results behind as if the run had worked
        series = [read_series(path) for path in inputs]
        windows = [
            windows_for(path, s, label_map) if label_map is not None else None
            for path, s in zip(inputs, series, strict=True)
        ]
        for s in series:
            bucket_width(s)  # raises for stamps that never increase, before any output
    except BacktestInputError as exc:
        print(f"error: {exc}", file=log)
        return 2
    target = out_dir
    # every result goes to a hidden partial file, renamed only when all are written: a full
    # disk or a Ctrl-C half-way left a truncated CSV under its real name, read as a result
    written: list[tuple[Path, Path]] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        per_profile: dict[str, list[FileScore]] = {p: [] for p in PROFILES}
        rows: list[str] = []
        for path, s, wins in zip(inputs, series, windows, strict=True):
            scores, alerts = run_series(DetectionStage(config), s, progress=log)
            target = out_dir / path.name
            written.append((out_dir / f".{path.name}.partial", target))
            write_output(written[-1][0], s, scores, alerts)
            days = (s.t[-1] - s.t[0]) / 86_400.0 if len(s.t) > 1 else 0.0
            print(f"{path.name}: {len(s.t)} rows, {sum(alerts)} alerts", file=log)
            if s.t:
                width = bucket_width(s)
                n, longest = gaps(s.t, width)
                if n:
                    # the stage fills a gap with at most MAX_GAP_FILL empty buckets
                    capped = round(longest / width) - 1 > MAX_GAP_FILL
                    cap = f" (at most {MAX_GAP_FILL} buckets a gap)" if capped else ""
                    print(
                        f"{path.name}: note: {n} gap{'' if n == 1 else 's'} between rows"
                        f" (longest {longest / 3600:.1f} h at a {width:g} s step), learned as"
                        f" zero counts{cap}",
                        file=log,
                    )
            if label_map is None:
                continue
            if wins is None:
                print(f"{path.name}: no labels, not scored", file=log)
                continue
            flags = [a == 1 for a in alerts]
            for name, prof in PROFILES.items():
                per_profile[name].append(score_file(flags, wins, prof))
            f = per_profile["standard"][-1]
            rows.append(
                f"{path.name:<45} {f.tp + f.fn:>3} {f.tp:>3} {f.fp:>4} "
                f"{f.fp / days if days else 0.0:>8.3f}"
            )
        for partial, target in written:
            partial.replace(target)
    except OSError as exc:
        # the input was fine; the system refused the result (a full disk, no permission)
        print(f"error: --out {target}: cannot write: {exc.strerror or exc}", file=log)
        return 1
    finally:
        for partial, _ in written:
            partial.unlink(missing_ok=True)
    if label_map is not None and rows:
        out = sys.stdout
        print(f"{'file':<45} {'win':>3} {'hit':>3} {'fp':>4} {'fp/day':>8}", file=out)
        for r in rows:
            print(r, file=out)
        if not any(f.tp + f.fn for f in per_profile["standard"]):
            # NAB normalises by the windows: with none (a series with no anomaly) a score
            # of 0.00 would read as "detected nothing", and the delay has nothing to measure
            print("median delay from window start: n/a (no labelled windows)", file=out)
            for name in PROFILES:
                print(f"NAB {name}: n/a (no labelled windows)", file=out)
            return 0
        delay = median_delay(per_profile["standard"])
        print(f"median delay from window start: {delay} rows", file=out)
        for name in PROFILES:
            print(f"NAB {name}: {normalized(per_profile[name]):.2f}", file=out)
    return 0
