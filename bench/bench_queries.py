"""Topic-matching throughput: 500 queries against each mention on one core.

    .venv/bin/python bench/bench_queries.py [--queries 500] [--mentions 20000] [--runs 5]

Mentions are real tweets (TweetEval train, when ../shared/data is present; otherwise seeded
synthetic posts) with one of the 500 brand names injected into a third of them, so the
pre-filter has real candidates to evaluate. Measures the per-mention path the Enricher runs:
tokenize, build the document, select candidates, evaluate them. Prints the median over runs.
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

from monitor.enrich.matcher import TopicMatcher  # noqa: E402
from monitor.enrich.query import make_doc, parse_query  # noqa: E402
from monitor.enrich.text import tokenize  # noqa: E402

TEMPLATES = (
    "{b} AND (outage OR down OR broken OR ausfall)",
    '"{b} app" OR #{b}fail OR @{b}',
    "{b} NEAR/3 (refund* OR recall* OR rückruf)",
    "({b} OR #{b}) NOT (job* OR hiring)",
    "{b} lang:de (skandal OR störung OR kaputt)",
    '{b} ONEAR/2 "customer service"',
    "{b} AND (hack* OR breach OR leak*) NOT channel:news",
    "{b}",
)
SYLLABLES = ("ac", "me", "glo", "bex", "ini", "tech", "zor", "va", "lu", "mi", "ka", "tron", "ux")


def brand_names(n: int, rng: random.Random) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
    return sorted(names)


def load_texts(n: int, rng: random.Random) -> list[str]:
    path = ROOT.parent / "shared/data/tweeteval-sentiment/train_text.txt"
    if path.exists():
        texts = path.read_text(encoding="utf-8").splitlines()
    else:
        words = ["the", "app", "is", "down", "again", "my", "refund", "never", "great", "today"]
        texts = [" ".join(rng.choice(words) for _ in range(15)) for _ in range(5000)]
    return [rng.choice(texts) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--mentions", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(7)
    brands = brand_names(args.queries, rng)
    queries = [
        (f"t{i}", parse_query(TEMPLATES[i % len(TEMPLATES)].format(b=b)))
        for i, b in enumerate(brands)
    ]
    matcher = TopicMatcher(queries)
    texts = load_texts(args.mentions, rng)
    extra = ["outage", "refund", "rückruf", "app", "customer service", "#", "down"]
    texts = [
        f"{t} {rng.choice(brands)} {rng.choice(extra)}" if i % 3 == 0 else t
        for i, t in enumerate(texts)
    ]
    langs = ["de" if i % 5 == 0 else "en" for i in range(len(texts))]
    rates, matched = [], 0
    for _ in range(args.runs):
        t0 = time.perf_counter()
        matched = 0
        for text, lang in zip(texts, langs, strict=True):
            doc = make_doc(tokenize(text), lang=lang, channel="x", author="@someone")
            matched += len(matcher.match(doc))
        rates.append(len(texts) / (time.perf_counter() - t0))
    print(f"queries: {len(queries)}  mentions: {len(texts)}  topic hits per run: {matched}")
    print(f"median mentions/s (tokenize + pre-filter + match): {statistics.median(rates):,.0f}")
    print(f"runs: {', '.join(f'{r:,.0f}' for r in rates)}")
    worst_cases()
    return 0


def worst_cases() -> None:
    """Queries and posts that once took seconds on the event loop (tenth session: a five-deep
    NEAR chain on 240 characters 12.8 s, a plain NEAR on a 96,000-character post 8 s)."""
    nested = "acme NEAR/3 (outage NEAR/3 (acme NEAR/3 (outage NEAR/3 (acme NEAR/3 outage))))"
    chain = " NEAR/2 ".join(["acme", "outage"] * 25)
    chain9 = " NEAR/3 ".join(["acme", "outage"] * 5)
    cases = [
        ("5-deep NEAR, 240 chars", nested, "acme outage " * 20),
        ("5-deep NEAR, 2,400 chars", nested, "acme outage " * 200),
        ("chain of 50 NEARs, 1,200 chars", chain, "acme outage " * 100),
        ("acme NEAR/5 outage, 96,000 chars", "acme NEAR/5 outage", "acme outage " * 8000),
        ("chain of 9 NEAR/3, 96,000 chars", chain9, "acme outage " * 8000),
    ]
    for name, query, text in cases:
        q, doc = parse_query(query), make_doc(tokenize(text))
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            q.matches(doc)
            times.append(time.perf_counter() - t0)
        print(f"worst case {name}: median {statistics.median(times) * 1e3:.2f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
