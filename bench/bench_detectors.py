"""Detector stack speed and memory: µs per series-bucket and bytes per series.

    .venv/bin/python bench/bench_detectors.py [--series 1000] [--rounds 20] [--nab]

Method: S synthetic series (Poisson counts, a third of them sparse) are warmed up for 300
buckets each (``warmup_seconds`` set to half of that, so every detector scores), then
``observe_many`` is called with one bucket per series per round (as the live pipeline does
when the watermark closes a bucket); the median over rounds of elapsed / S is the update
cost. Memory per series is the tracemalloc growth while the S warmed series were built,
divided by S (checkpoint bytes per series are printed too); each warm-up round is made while
tracing and dropped after use, so what stays is what the stage keeps. The terms run gives
every mention 4 words of a 300-word vocabulary, each word a new string as tokenising makes it
(~39 distinct terms per bucket, a worst case for the term table: uniform words churn it every
bucket).
With ``--nab`` the volume models (count vs river HalfSpaceTrees) are also compared on the
shared NAB realTweets.

Checkpoint: ``--checkpoint-series`` count series (100,000 by default) after 3 buckets each are
written with ``checkpoint_parts`` as the app does (it yields to the event loop between
slices): total seconds, the longest slice (how long the loop waits at most), bytes per series,
and the seconds a restore of that blob takes.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Literal

from machine import reference_ns  # type: ignore[import-not-found,unused-ignore]  # bench/ is on sys.path

from detectors.stage import DetectionStage
from monitor.config.detection import DetectionConfig
from monitor.model import Bucket

WIDTH = 60.0


def poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, pow(2.718281828459045, -lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


VOCAB_SIZE = 300


def make_rounds(
    series: int, rounds: int, seed: int = 7, terms: bool = False
) -> Iterator[list[Bucket]]:
    """Poisson counts; with ``terms`` every mention carries 4 words of a 300-word vocabulary
    (more than the 48 a series tracks, so eviction is exercised) and a negative count.

    Every word is a new string, as tokenising a post makes it: the ones a term table keeps
    count in its series' memory."""
    rng = random.Random(seed)
    lams = [0.2 if i % 3 == 0 else 5.0 + 40.0 * rng.random() for i in range(series)]

    def bucket(r: int, i: int) -> Bucket:
        n = poisson(rng, lams[i])
        b = Bucket(f"s{i}", r * WIDTH, WIDTH, count=n)
        if terms and n:
            b.negative = sum(rng.random() < 0.2 for _ in range(n))
            vocab = range(40 + i % (VOCAB_SIZE - 40))
            for _ in range(n):
                b.terms.update([f"word{k}" for k in rng.sample(vocab, 4)])
        return b

    for r in range(rounds):
        # yielded without a name: a batch the caller dropped is not kept alive in this frame
        yield [bucket(r, i) for i in range(series)]


def bench(
    cfg: DetectionConfig, series: int, warm: int, rounds: int, terms: bool = False
) -> dict[str, float]:
    data = make_rounds(series, warm + rounds, terms=terms)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    stage = DetectionStage(cfg)
    # each warm-up batch is made while memory is traced and dropped after use: what stays is
    # what the stage keeps (its state, and the term strings its tables hold)
    for _ in range(warm):
        stage.observe_many(next(data))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_bucket = []
    for batch in list(data):
        t0 = time.perf_counter()
        stage.observe_many(batch)
        per_bucket.append((time.perf_counter() - t0) / len(batch) * 1e6)
    return {
        "us_per_series_bucket": statistics.median(per_bucket),
        "bytes_per_series": (after - before) / series,
        "checkpoint_bytes_per_series": len(stage.checkpoint()) / series,
    }


def checkpoint_cost(series: int) -> dict[str, float]:
    stage = DetectionStage(DetectionConfig())
    for batch in make_rounds(series, 3):
        stage.observe_many(batch)
    slices, parts = [], []
    t0 = time.perf_counter()
    for part in stage.checkpoint_parts():
        t1 = time.perf_counter()
        parts.append(part)
        slices.append(t1 - t0)
        t0 = time.perf_counter()
    blob = b"".join(parts)
    t0 = time.perf_counter()
    DetectionStage(DetectionConfig()).restore(blob)
    return {
        "seconds": sum(slices),
        "longest_slice_ms": max(slices) * 1e3,
        "bytes_per_series": len(blob) / series,
        "restore_seconds": time.perf_counter() - t0,
    }


def nab_compare() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from tune_detectors import evaluate, load_group  # type: ignore[import-not-found,unused-ignore]

    data = load_group("realTweets")
    models: tuple[Literal["count", "hst"], ...] = ("count", "hst")
    for model in models:
        r = evaluate(DetectionConfig(volume_model=model), data)
        print(
            f"NAB realTweets volume_model={model}: standard {r['standard']:.2f} "
            f"hit {r['hit']}/{r['windows']} fp {r['fp']}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--nab", action="store_true")
    ap.add_argument("--checkpoint-series", type=int, default=100_000)
    a = ap.parse_args(argv)
    print(f"machine reference: {reference_ns():.1f} ns per loop iteration (bench/machine.py)")
    runs: tuple[tuple[Literal["count", "hst"], int], ...] = (
        ("count", a.series),
        ("hst", max(1, a.series // 20)),
    )
    # warm-up shortened to the backfill the benchmark gives (300 buckets = 5 h), so every
    # detector is warm and scores every bucket (with the 1-day default, sentiment and terms
    # would only learn during the timed rounds and the timing would understate them)
    warmup = a.warm * WIDTH * 0.5
    for model, n in runs:
        r = bench(DetectionConfig(volume_model=model, warmup_seconds=warmup), n, a.warm, a.rounds)
        print(
            f"volume_model={model} series={n}: "
            f"{r['us_per_series_bucket']:.1f} µs/series-bucket (median of {a.rounds} rounds), "
            f"{r['bytes_per_series']:.0f} B/series (tracemalloc), "
            f"{r['checkpoint_bytes_per_series']:.0f} B/series checkpointed"
        )
    n = max(1, a.series // 5)
    r = bench(DetectionConfig(warmup_seconds=warmup), n, a.warm, a.rounds, terms=True)
    print(
        f"volume_model=count with terms+sentiment series={n}: "
        f"{r['us_per_series_bucket']:.1f} µs/series-bucket (median of {a.rounds} rounds), "
        f"{r['bytes_per_series']:.0f} B/series (tracemalloc), "
        f"{r['checkpoint_bytes_per_series']:.0f} B/series checkpointed"
    )
    if a.checkpoint_series > 0:
        c = checkpoint_cost(a.checkpoint_series)
        print(
            f"checkpoint of {a.checkpoint_series} count series: {c['seconds']:.2f} s in all, "
            f"longest slice {c['longest_slice_ms']:.0f} ms, {c['bytes_per_series']:.0f} "
            f"B/series; restore {c['restore_seconds']:.2f} s"
        )
    if a.nab:
        nab_compare()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
