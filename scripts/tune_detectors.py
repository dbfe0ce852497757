"""Tune and report the frozen detection default on the shared NAB data (never per file).

    .venv/bin/python scripts/tune_detectors.py report      # the numbers in docs/detection.md
    .venv/bin/python scripts/tune_detectors.py loso        # leave-one-series-out + sensitivity
    .venv/bin/python scripts/tune_detectors.py power       # injected bursts: detection power

Everything runs the production :class:`detectors.stage.DetectionStage` (through
:func:`detectors.backtest.run_series`); the grid is small on purpose (see DESIGN.md on
overfitting) and LOSO picks parameters on four realTweets series and scores the fifth.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from detectors.backtest import Series, load_windows, read_series, run_series, windows_for
from detectors.nab import PROFILES, FileScore, normalized, probation_length, score_file
from detectors.stage import DetectionStage
from monitor.config.detection import DetectionConfig

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
if not NAB.exists():
    NAB = Path("/work/shared/data/nab")
GROUPS = ("realTweets", "realKnownCause", "artificialNoAnomaly", "artificialWithAnomaly")


def load_group(group: str) -> list[tuple[Series, list[tuple[int, int]]]]:
    labels = load_windows(NAB / "labels" / "combined_windows.json")
    out = []
    for p in sorted((NAB / "data" / group).glob("*.csv")):
        s = read_series(p)
        w = windows_for(p, s, labels)
        out.append((s, w or []))
    return out


def evaluate(
    cfg: DetectionConfig, data: Sequence[tuple[Series, list[tuple[int, int]]]]
) -> dict[str, Any]:
    """Run every series through a fresh stage; NAB scores, FP/day, hits, delays."""
    per: dict[str, list[FileScore]] = {p: [] for p in PROFILES}
    fp = 0
    days = 0.0
    alerts_total = 0
    for s, wins in data:
        _scores, alerts = run_series(DetectionStage(cfg), s)
        flags = [a == 1 for a in alerts]
        alerts_total += sum(alerts)
        days += (s.t[-1] - s.t[0]) / 86_400.0
        for name, prof in PROFILES.items():
            per[name].append(score_file(flags, wins, prof))
        fp += per["standard"][-1].fp
    std = per["standard"]
    step = statistics.median(s.t[1] - s.t[0] for s, _ in data)
    delays = [d * step / 3600.0 for f in std for d in f.delays]
    return {
        "standard": normalized(std),
        "reward_low_FP": normalized(per["reward_low_FP_rate"]),
        "reward_low_FN": normalized(per["reward_low_FN_rate"]),
        "windows": sum(f.tp + f.fn for f in std),
        "hit": sum(f.tp for f in std),
        "fp": fp,
        "alerts": alerts_total,
        "fp_per_series_day": fp / days if days else 0.0,
        "median_delay_h": statistics.median(delays) if delays else None,
        "files": std,
    }


GRID: dict[str, Sequence[Any]] = {
    "z_half": (3.5, 4.0, 4.5),
    # weight of the bucket-scale evidence (0 = off, the hour scales alone)
    "scale_weights": tuple((w, 1.0, 1.0, 1.0) for w in (0.0, 0.5, 0.6, 0.7)),
    "weekly_halflife_weeks": (3.0, 4.0, 5.0),
}


def grid(base: DetectionConfig) -> Iterable[tuple[dict[str, Any], DetectionConfig]]:
    keys = list(GRID)
    for combo in itertools.product(*(GRID[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        yield params, base.model_copy(update=params)


def loso(base: DetectionConfig) -> None:
    data = load_group("realTweets")
    results = []
    for params, cfg in grid(base):
        per_file = [evaluate(cfg, [d]) for d in data]
        results.append((params, per_file))
        tot = normalized(f for r in per_file for f in r["files"])
        print(json.dumps(params), f"in-sample standard {tot:.2f}", file=sys.stderr)
    held: list[FileScore] = []
    for k, (s, _w) in enumerate(data):
        best = max(
            results,
            key=lambda r: normalized(f for j, x in enumerate(r[1]) if j != k for f in x["files"]),
        )
        held.extend(best[1][k]["files"])
        print(f"LOSO held out {s.name}: chose {json.dumps(best[0])}")
    print(f"LOSO standard (held-out files combined): {normalized(held):.2f}")
    print("sensitivity (in-sample standard on 5 realTweets):")
    for params, per_file in results:
        tot = normalized(f for r in per_file for f in r["files"])
        fp = sum(r["fp"] for r in per_file)
        print(f"  {json.dumps(params)}  standard={tot:6.2f}  fp={fp}")


def report(cfg: DetectionConfig) -> None:
    for g in GROUPS:
        r = evaluate(cfg, load_group(g))
        r.pop("files")
        print(g, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))


#: injected bursts: extra mentions per bucket as a multiple of the day's mean count, and how
#: long they last (buckets of 5 min)
POWER_SIZES = (1.0, 2.0, 4.0, 8.0)
POWER_BUCKETS = (6, 24)
POWER_SPACING = 4 * 288  # four days between bursts, so one's effect on the baseline fades
POWER_GRACE = 12  # an alert this many buckets after a burst ends still counts as found


def inject(
    s: Series, avoid: Sequence[tuple[int, int]], size: float, length: int, phase: int
) -> tuple[Series, list[int]]:
    """``s`` with bursts added every :data:`POWER_SPACING` buckets after the probationary
    period, away from labelled windows; returns the copy and the bursts' first rows.

    A burst adds ``size`` x the mean count of the day before it to each of ``length``
    buckets: extra mentions on top of whatever the series does then, so a sparse series
    gets a burst too (a multiplied zero stays zero; so does a sparse series' median).
    """
    n = len(s.values)
    values = array("d", s.values)
    starts = []
    i = int(probation_length(n)) + 288 + phase
    while i + length + POWER_GRACE < n:
        end = i + length + POWER_GRACE
        if all(end + 288 < a or i > b + 288 for a, b in avoid):
            extra = max(1.0, size * sum(values[i - 288 : i]) / 288)
            for j in range(i, i + length):
                values[j] += round(extra)
            starts.append(i)
        i += POWER_SPACING
    return dataclasses.replace(s, values=values), starts


def episodes(s: Series, avoid: Sequence[tuple[int, int]], ratio: float) -> int:
    """2-hour stretches outside labelled windows whose mean is at least ``ratio`` x the
    median of the day before (counted at most once a day): the series' ordinary bursts."""
    v, n, found, i = s.values, len(s.values), 0, 288
    while i + 24 < n:
        median = max(1.0, sorted(v[i - 288 : i])[144])
        if sum(v[i : i + 24]) / 24 >= ratio * median and not any(
            a - 24 <= i <= b for a, b in avoid
        ):
            found += 1
            i += 288
        else:
            i += 6
    return found


def power(base: DetectionConfig) -> None:
    """Detection power on bursts injected into the real series, by size, length and z_half.

    NAB's 16 labelled windows make the score a step function of the settings (one window is
    ~6 points); this asks the smoother question: of many bursts of a known size, how many
    are found, and how many alerts fall outside every burst and labelled window.
    """
    data = load_group("realTweets")
    for s, wins in data:
        days = (s.t[-1] - s.t[0]) / 86_400.0
        counts = ", ".join(f"{k}x: {episodes(s, wins, k)}" for k in (2, 3, 5))
        print(f"{s.name}: unlabelled 2 h stretches at k x day median, {days:.0f} days: {counts}")
    print("z_half  size x day-mean  length  found  extra alerts per series-day")
    for z in GRID["z_half"]:
        cfg = base.model_copy(update={"z_half": z})
        for size, length in itertools.product(POWER_SIZES, POWER_BUCKETS):
            found = total = extra = 0
            days = 0.0
            for s, wins in data:
                for phase in (0, POWER_SPACING // 2):
                    t, starts = inject(s, wins, size, length, phase)
                    _scores, alerts = run_series(DetectionStage(cfg), t)
                    covered = [(a, a + length + POWER_GRACE) for a in starts] + list(wins)
                    for a in starts:
                        found += any(alerts[a : a + length + POWER_GRACE])
                    total += len(starts)
                    extra += sum(
                        1
                        for k, x in enumerate(alerts)
                        if x and not any(lo <= k <= hi for lo, hi in covered)
                    )
                    days += (s.t[-1] - s.t[0]) / 86_400.0
            print(
                f"{z:6.1f}  {size:15.1f}  {length * 5:4d} min  {found:3d}/{total:<3d}"
                f"  {extra / days:.3f}",
                flush=True,
            )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=["report", "loso", "power"])
    ap.add_argument("--set", action="append", default=[], help="field=json value override")
    a = ap.parse_args(argv)
    upd = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    cfg = DetectionConfig.model_validate(DetectionConfig().model_dump() | upd)
    if a.mode == "report":
        report(cfg)
    elif a.mode == "power":
        power(cfg)
    else:
        loso(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
