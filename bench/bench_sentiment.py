"""Sentiment model: load time, batched throughput and single-mention latency on one core.

    .venv/bin/python bench/bench_sentiment.py [--runs 5]

Texts are the English and German validation tweets when ../shared/data is present (otherwise
seeded synthetic posts). Throughput scores batches of 256 (the Enricher's default batch size)
with the language given; "with language ID" adds py3langid detection per mention. Latency is
one ``score_batch([text])`` call per mention; p50/p99 over all texts. Prints medians over runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.enrich.lang import LanguageDetector  # noqa: E402
from monitor.enrich.linear import DEFAULT_MODEL, load_default_model  # noqa: E402

BATCH = 256


def load_texts() -> tuple[list[str], list[str]]:
    data = ROOT.parent / "shared/data"
    en = data / "tweeteval-sentiment/val_text.txt"
    de = data / "umsab-de-sentiment/val_text.txt"
    if en.exists() and de.exists():
        en_t = en.read_text(encoding="utf-8").splitlines()
        de_t = de.read_text(encoding="utf-8").splitlines()
        return en_t + de_t, ["en"] * len(en_t) + ["de"] * len(de_t)
    rng = random.Random(3)
    words = ["acme", "outage", "refund", "broken", "great", "Rückruf", "Skandal", "kaputt", "not"]
    texts = [" ".join(rng.choice(words) for _ in range(14)) for _ in range(2000)]
    return texts, ["en"] * len(texts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    loads = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model = load_default_model()
        loads.append(time.perf_counter() - t0)
    path = ROOT / "monitor/enrich/models" / DEFAULT_MODEL
    texts, langs = load_texts()
    detector = LanguageDetector(("en", "de"))

    batched, with_lid = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        for lo in range(0, len(texts), BATCH):
            model.score_batch(texts[lo : lo + BATCH], langs[lo : lo + BATCH])
        batched.append(len(texts) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for lo in range(0, len(texts), BATCH):
            chunk = texts[lo : lo + BATCH]
            model.score_batch(chunk, detector.detect_batch(chunk))
        with_lid.append(len(texts) / (time.perf_counter() - t0))

    p50s, p99s = [], []
    for _ in range(args.runs):
        lat = []
        for text, lang in zip(texts, langs, strict=True):
            t0 = time.perf_counter()
            model.score_batch([text], [lang])
            lat.append(time.perf_counter() - t0)
        lat.sort()
        p50s.append(lat[len(lat) // 2])
        p99s.append(lat[int(len(lat) * 0.99)])

    print(f"artifact: {path.name}, {path.stat().st_size / 1e6:.1f} MB, {len(model.vocab)} features")
    print(f"median load time: {statistics.median(loads):.3f} s")
    print(
        f"median batched throughput (batch {BATCH}): {statistics.median(batched):,.0f} mentions/s"
    )
    print(f"median batched throughput with language ID: {statistics.median(with_lid):,.0f} /s")
    print(
        f"single mention latency: median p50 {statistics.median(p50s) * 1e3:.3f} ms,"
        f" median p99 {statistics.median(p99s) * 1e3:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
