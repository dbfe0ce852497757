"""Detector stack cost in CPU instructions per series-bucket (machine-independent).

    .venv/bin/python bench/instructions_detectors.py [--terms] [--series 100]

Wall-clock µs on these shared machines swing by 2x between sessions and by ±30 % within one;
instruction counts from ``valgrind --tool=callgrind`` repeat exactly for the same code and
inputs. Method: the benchmark's synthetic series (``bench_detectors.make_rounds``, 420 rounds
generated up front) are observed for 300 warm-up rounds plus R timed rounds, under callgrind,
for R = 20 and R = 120 (``PYTHONHASHSEED=0``); the difference of the two totals divided by
100 rounds × S series is the cost of one series-bucket, with start-up and warm-up cancelled.
Compare two versions by running this script from each checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(rounds: int, series: int, terms: bool) -> int:
    """Instructions of one whole process: warm-up + ``rounds`` observed rounds."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            str(rounds),
            str(series),
            "1" if terms else "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no instruction count in valgrind output:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def child(rounds: int, series: int, terms: bool) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from bench_detectors import make_rounds  # type: ignore[import-not-found,unused-ignore]

    from detectors.stage import DetectionStage
    from monitor.config.detection import DetectionConfig

    data = list(make_rounds(series, 420, terms=terms))
    stage = DetectionStage(DetectionConfig(warmup_seconds=300 * 60 * 0.5))
    for batch in data[: 300 + rounds]:
        stage.observe_many(batch)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--terms", action="store_true", help="terms + sentiment on every bucket")
    a = ap.parse_args()
    print(f"callgrind: {a.series} series, 20 and 120 observed rounds (slow: minutes)")
    short, long = run(20, a.series, a.terms), run(120, a.series, a.terms)
    per = (long - short) / (100 * a.series)
    what = "terms + sentiment" if a.terms else "counts"
    print(f"{what}: {per:,.0f} instructions per series-bucket")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
