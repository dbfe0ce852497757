"""Soak: the real service (`crisiswatch run`, the embedded demo) for a while, sped up.

    .venv/bin/python bench/soak_service.py [--minutes 15] [--speed 60] [--every 30]

Starts `crisiswatch run --config config/default.yaml --speed S` in a fresh temporary
directory (its own SQLite store under ./var/), on a free loopback port, and samples every
``--every`` seconds: resident memory (VmRSS of the process), mentions processed, ingest lag
and queue depth from /healthz, open and total incidents from /api/v1/incidents, and the
store's size on disk. At the end it prints the growth of RSS and of the store per demo hour
over the second half of the run (after warm-up: detectors, term tables, histories and the
dedup window fill during the first hours) — a service that runs 24/7 must level off there —
and RSS at each quarter of the run with the last quarter's range (growth comes in steps).

Not part of `make bench` (it takes minutes by design); docs/benchmarks.md has the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def get_json(url: str) -> Any:
    # /healthz answers 503 while a source is stale; its body is the same report
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def store_mb(var: Path) -> float:
    """The database file alone: its -wal file grows to ~4 MB and is then reused in place."""
    db = var / "crisiswatch.db"
    return db.stat().st_size / 2**20 if db.exists() else 0.0


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (xs in demo hours)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock length of the run")
    ap.add_argument("--speed", type=float, default=60.0, help="demo seconds per wall second")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    a = ap.parse_args()
    a.incidents = a.last_now = None  # the last sample's, for the offline comparison
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="cw-soak-") as tmp:
        cmd = [
            str(ROOT / ".venv" / "bin" / "crisiswatch"),
            "run",
            "--config",
            str(ROOT / "config" / "default.yaml"),
            "--speed",
            str(a.speed),
            "--port",
            str(port),
        ]
        log = Path(tmp) / "service.log"
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
        try:
            return soak(proc, base, Path(tmp), a)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            lines = log.read_text().splitlines()
            warnings = [ln for ln in lines if " ERROR " in ln]
            print(f"service log: {len(warnings)} ERROR lines", *warnings[:5], sep="\n  ")
            late = [ln for ln in lines if "arrived after their bucket" in ln]
            print(f"service log: {len(late)} lines about late mentions", *late[:3], sep="\n  ")
            compare_offline(lines, a)


def compare_offline(lines: list[str], a: argparse.Namespace) -> None:
    """What `bench/demo_crises.py` expects of the scripted crises from the run's own origin (the
    service logs it), beside the incidents the run opened: a difference is the live path's."""
    said = [ln.rsplit("--start ", 1)[1].rstrip(")") for ln in lines if "crises scripted from" in ln]
    if not said or a.incidents is None:
        print("offline comparison: no origin in the service log")
        return
    hours = (a.last_now - datetime.fromisoformat(said[0]).timestamp()) / 3600
    cmd = [sys.executable, str(ROOT / "bench" / "demo_crises.py"), "--start", said[0]]
    cmd += ["--hours", f"{hours:.3f}", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    summary = json.loads(out.stdout.splitlines()[-1]) if out.returncode == 0 else out.stderr
    print(f"live: {a.incidents} incidents in {hours:.2f} demo h from {said[0]}")
    print(f"offline ({' '.join(cmd[1:])}): {summary}")


def soak(proc: subprocess.Popen[bytes], base: str, tmp: Path, a: argparse.Namespace) -> int:
    deadline = time.monotonic() + 120
    while True:  # the demo backfills 3 h before it serves
        if proc.poll() is not None:
            print(f"service exited with {proc.returncode}", file=sys.stderr)
            return 1
        try:
            get_json(base + "/healthz")
            break
        except OSError:
            if time.monotonic() > deadline:
                print("service did not answer within 120 s", file=sys.stderr)
                return 1
            time.sleep(1)
    t0 = time.monotonic()
    print(f"pid {proc.pid}, speed {a.speed:g}, {a.minutes:g} min; samples every {a.every:g} s")
    print("wall_s demo_h  rss_MB  processed  lag_s  queue  incidents(open)  store_MB")
    rows: list[tuple[float, float, float]] = []
    while (elapsed := time.monotonic() - t0) < a.minutes * 60:
        h = get_json(base + "/healthz")
        inc = get_json(base + "/api/v1/incidents?limit=1000")["incidents"]
        n_open = sum(1 for i in inc if i["state"] in ("triggered", "acknowledged"))
        demo_h = elapsed * a.speed / 3600
        rss, store = rss_mb(proc.pid), store_mb(tmp / "var")
        rows.append((demo_h, rss, store))
        a.incidents, a.last_now = len(inc), h["now"]  # the service's (demo) clock
        print(
            f"{elapsed:6.0f} {demo_h:6.2f} {rss:7.1f} {h['processed']:10,d} "
            f"{h['lag_seconds'] or 0:6.1f} {h['queue_depth']:6d} {len(inc):9d} ({n_open:d})"
            f"   {store:8.2f}",
            flush=True,
        )
        time.sleep(a.every)
    half = rows[len(rows) // 2 :]
    xs = [r[0] for r in half]
    print(
        f"second half ({xs[0]:.1f}-{xs[-1]:.1f} demo h): RSS {half[0][1]:.1f} -> "
        f"{half[-1][1]:.1f} MB, slope {slope_per_hour(xs, [r[1] for r in half]):+.2f} MB per demo "
        f"hour; store slope {slope_per_hour(xs, [r[2] for r in half]):+.3f} MB per demo hour"
    )
    # RSS tends to grow in steps (allocator arenas, a full dedup window), where one slope over a
    # step reads as steady growth: the quarters and the last quarter's range show the shape
    quarters = [rows[min(len(rows) - 1, len(rows) * q // 4)] for q in range(5)]
    last = [r[1] for r in rows[len(rows) * 3 // 4 :]]
    print(
        "RSS by quarter: "
        + ", ".join(f"{r[1]:.0f} MB at {r[0]:.0f} h" for r in quarters)
        + f"; last quarter within {min(last):.0f}-{max(last):.0f} MB"
    )
    return 0 if proc.poll() is None else 1


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    raise SystemExit(main())
