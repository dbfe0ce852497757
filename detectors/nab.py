"""NAB scoring, written from the published description (Lavin & Ahmad 2015; NAB's sweeper).

Per file: rows before the probationary length ``min(floor(0.15 n), 0.15 * 5000)`` are
ignored. Every detection (alert row) inside a window is worth
``tp * sigma(pos) / sigma(-1)`` where ``pos = -(right - i + 1) / width`` and
``sigma(y) = 2 / (1 + exp(5 y)) - 1`` (the scaled sigmoid); a window keeps its best (the
earliest) detection, or costs ``-fn`` if it has none. A detection outside every window
costs ``fp * sigma(|i - prev_right| / (prev_width - 1))`` after a window (smaller just
after it) and ``-fp`` before the first window. Scores are normalised over all files:
``100 * (raw - null) / (perfect - null)`` where the null detector never fires
(``-fn`` per window) and the perfect one hits every window on its first row (``+tp``).

>>> alerts = [False] * 100
>>> alerts[40] = True   # first row of the window: full credit
>>> alerts[90] = True   # far after the window: a full false positive
>>> f = score_file(alerts, [(40, 49)], PROFILES["standard"])
>>> round(f.raw, 4), f.tp, f.fp, f.fn
(0.89, 1, 1, 0)
>>> round(normalized([f]), 2)
94.5
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: 0.987 at the left edge (-1), 0 at the right edge, -1 far after.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    >>> round(scaled_sigmoid(-0.5), 5)
    0.84828
    """
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_length(n: int, percent: float = 0.15) -> float:
    """Rows at the start of a file whose detections NAB ignores.

    >>> probation_length(1000), probation_length(15902)
    (150, 750.0)
    """
    return min(math.floor(percent * n), percent * 5000)


@dataclass(slots=True)
class FileScore:
    """One file under one profile."""

    raw: float
    null: float
    perfect: float
    tp: int = 0
    fp: int = 0
    fn: int = 0
    delays: list[int] = field(default_factory=list)  # rows from window start to first hit


def score_file(
    alerts: Sequence[bool], windows: Sequence[tuple[int, int]], profile: Profile
) -> FileScore:
    """Score one file's alert rows against its windows (inclusive row indices)."""
    n = len(alerts)
    probation = probation_length(n)
    max_tp = scaled_sigmoid(-1.0)
    wins = sorted(windows)
    # a window counts only if some row of it lies after the probationary period
    counted = [w for w in wins if w[1] >= probation]
    best: dict[tuple[int, int], float] = {w: -profile.fn for w in counted}
    first_hit: dict[tuple[int, int], int] = {}
    fp_total, fp_count = 0.0, 0
    w_idx = 0
    prev: tuple[int, int] | None = None
    for i in range(n):
        while w_idx < len(wins) and wins[w_idx][1] < i:
            prev = wins[w_idx]
            w_idx += 1
        if not alerts[i] or i < probation:
            continue
        cur = wins[w_idx] if w_idx < len(wins) and wins[w_idx][0] <= i else None
        if cur is not None:
            left, right = cur
            width = right - left + 1
            s = profile.tp * scaled_sigmoid(-(right - i + 1) / width) / max_tp
            if cur in best and s > best[cur]:
                best[cur] = s
                first_hit.setdefault(cur, i - left)
        else:
            if prev is None:
                pos = 3.0
            else:
                pw = prev[1] - prev[0] + 1
                pos = abs(prev[1] - i) / max(1.0, pw - 1.0)
            fp_total += profile.fp * scaled_sigmoid(pos)
            fp_count += 1
    hits = [w for w in counted if w in first_hit]
    return FileScore(
        raw=sum(best.values()) + fp_total,
        null=-profile.fn * len(counted),
        perfect=profile.tp * len(counted),
        tp=len(hits),
        fp=fp_count,
        fn=len(counted) - len(hits),
        delays=[first_hit[w] for w in hits],
    )


def normalized(files: Iterable[FileScore]) -> float:
    """100 * (raw - null) / (perfect - null), summed over files (0 when no windows at all).

    >>> normalized([FileScore(raw=-1.0, null=-1.0, perfect=1.0)])
    0.0
    """
    fs = list(files)
    raw = sum(f.raw for f in fs)
    null = sum(f.null for f in fs)
    perfect = sum(f.perfect for f in fs)
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def median_delay(files: Iterable[FileScore]) -> float | None:
    """Median rows from window start to the first detection, over hit windows.

    >>> median_delay([FileScore(0.0, 0.0, 0.0, delays=[3, 9, 4])])
    4
    """
    d = [x for f in files for x in f.delays]
    return statistics.median(d) if d else None
