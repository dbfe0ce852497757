"""Sentiment model and enrichment: load time, batched throughput, single-mention latency.

    .venv/bin/python bench/bench_sentiment.py [--runs 5]

Texts are the English and German validation tweets when ../shared/data is present (otherwise
seeded synthetic posts), shuffled with a fixed seed. Throughput scores batches of 256 (the
Enricher's default batch size):

- ``score_batch``: the sentiment model alone, language given;
- ``+ language ID``: ``LanguageDetector.detect_batch`` then ``score_batch``;
- ``enrich_batch``: the whole enrichment stage as the pipeline runs it (language ID because the
  mentions carry no ``lang``, sentiment, tokenising, 20 topic queries, terms).

Latency is one ``score_batch([text])`` call per mention; p50/p99 over all texts. One process,
one thread; prints medians over runs (the machine is shared, so medians, not bests).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One BLAS thread: small matrices with many threads on a shared 2-core machine run ~10x slower
# (oversubscription), and the benchmark measures one core. Must precede the numpy import.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.config.enrichment import EnrichmentConfig  # noqa: E402
from monitor.config.system import TopicConfig  # noqa: E402
from monitor.enrich.enricher import Enricher  # noqa: E402
from monitor.enrich.lang import LanguageDetector  # noqa: E402
from monitor.enrich.linear import DEFAULT_MODEL, load_default_model  # noqa: E402
from monitor.model import Author, Mention  # noqa: E402

BATCH = 256
BRANDS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "soylent"]


def load_texts() -> tuple[list[str], list[str]]:
    data = ROOT.parent / "shared/data"
    en = data / "tweeteval-sentiment/val_text.txt"
    de = data / "umsab-de-sentiment/val_text.txt"
    if en.exists() and de.exists():
        pairs = [(t, "en") for t in en.read_text(encoding="utf-8").splitlines()]
        pairs += [(t, "de") for t in de.read_text(encoding="utf-8").splitlines()]
    else:
        rng = random.Random(3)
        words = ["acme", "outage", "refund", "broken", "great", "Rückruf", "kaputt", "not"]
        pairs = [(" ".join(rng.choice(words) for _ in range(14)), "en") for _ in range(2000)]
    random.Random(0).shuffle(pairs)
    return [t for t, _ in pairs], [g for _, g in pairs]


def topics() -> list[TopicConfig]:
    out = []
    for b in BRANDS:
        out.append(TopicConfig(name=b, query=f"{b} OR #{b} OR @{b}"))
        out.append(TopicConfig(name=f"{b}-crisis", query=f"{b} AND (outage OR recall OR hack*)"))
    out.append(TopicConfig(name="de-crisis", query="lang:de AND (rückruf OR störung OR skandal)"))
    out.append(TopicConfig(name="refunds", query='refund* OR "money back"'))
    return out


def rate(n: int, fn: Callable[[], object], runs: int) -> float:
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    loads = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        model = load_default_model()
        loads.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    detector = LanguageDetector(("en", "de"))
    lid_load = time.perf_counter() - t0
    path = ROOT / "monitor/enrich/models" / DEFAULT_MODEL
    texts, langs = load_texts()
    n = len(texts)
    chunks = [(texts[lo : lo + BATCH], langs[lo : lo + BATCH]) for lo in range(0, n, BATCH)]
    mentions = [
        Mention(
            id=str(i),
            source="bench",
            channel="x",
            text=t,
            created_at=float(i),
            author=Author(id="a", handle="@someone"),
        )
        for i, t in enumerate(texts)
    ]
    enricher = Enricher(topics(), EnrichmentConfig(), scorer=model, detector=detector)
    mchunks = [mentions[lo : lo + BATCH] for lo in range(0, n, BATCH)]

    def batched() -> None:
        for ts, gs in chunks:
            model.score_batch(ts, gs)

    def with_lid() -> None:
        for ts, _ in chunks:
            model.score_batch(ts, detector.detect_batch(ts))

    def lid_only() -> None:
        for ts, _ in chunks:
            detector.detect_batch(ts)

    def enrich() -> None:
        for ms in mchunks:
            enricher.enrich_batch(ms)

    r_batched = rate(n, batched, args.runs)
    r_lid = rate(n, with_lid, args.runs)
    r_lid_only = rate(n, lid_only, args.runs)
    r_enrich = rate(n, enrich, args.runs)

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

    print(f"artifact: {path.name}, {path.stat().st_size / 1e6:.1f} MB, {n} texts")
    print(f"median load time: {statistics.median(loads):.3f} s (language ID: {lid_load:.3f} s)")
    print(f"batched score_batch (batch {BATCH}, language given): {r_batched:,.0f} mentions/s")
    print(f"batched language ID alone: {r_lid_only:,.0f} mentions/s")
    print(f"batched language ID + score_batch: {r_lid:,.0f} mentions/s")
    print(f"enrich_batch end to end (language ID, {len(topics())} topics): {r_enrich:,.0f} /s")
    print(
        f"single mention latency: median p50 {statistics.median(p50s) * 1e3:.3f} ms,"
        f" median p99 {statistics.median(p99s) * 1e3:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
