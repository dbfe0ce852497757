"""Speed work must not change any result: verdicts recorded from the stack before the
optimisations (``tests/data/detectors/verdicts.json.gz``) must come out again bit for bit.

Regenerate only for a *deliberate* behaviour change:
``CW_UPDATE_VERDICTS=1 .venv/bin/pytest tests/detectors/test_verdict_fixture.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path
from typing import Any

from detectors.stage import DetectionStage
from monitor.config.detection import DetectionConfig
from monitor.model import Bucket
from tests.detectors.synthetic import poisson

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "detectors" / "verdicts.json.gz"
WIDTH = 60.0
ROUNDS = 400
VOCAB = [f"word{k}" for k in range(300)]
CHANNELS = ["x", "mastodon", "news", "reddit"]


def make_buckets(seed: int = 3) -> list[Bucket]:
    """Six series: counts only (dense, sparse), uniform and Zipf terms (the latter with
    an off-table churn), a crisis with volume + negatives + a new term, gaps and a late
    duplicate; interleaved in event-time order as the pipeline delivers them."""
    rng = random.Random(seed)
    out: list[Bucket] = []
    zipf = [1.0 / (k + 1) for k in range(120)]
    for r in range(ROUNDS):
        t = r * WIDTH
        # dense count-only series with a burst
        out.append(Bucket("dense", t, WIDTH, count=poisson(rng, 400.0 if 300 <= r < 320 else 30)))
        # sparse count-only series with gaps (absent buckets)
        if rng.random() < 0.3:
            out.append(Bucket("sparse", t, WIDTH, count=1 + poisson(rng, 0.3)))
        for name, lam, uniform in (("uniform", 25.0, True), ("zipf", 12.0, False)):
            n = poisson(rng, lam)
            b = Bucket(name, t, WIDTH, count=n)
            if n:
                b.negative = sum(rng.random() < 0.15 for _ in range(n))
                for _ in range(n):
                    words = (
                        rng.sample(VOCAB[:200], 4)
                        if uniform
                        else list(dict.fromkeys(rng.choices(VOCAB[:120], zipf, k=3)))
                    )
                    b.terms.update(words)
                    b.channels[rng.choice(CHANNELS)] += 1
            out.append(b)
        # crisis series: calm mix, then volume + negative + an emerging term, then calm
        storm = 250 <= r < 275
        n = poisson(rng, 120.0 if storm else 15.0)
        b = Bucket("crisis", t, WIDTH, count=n)
        if n:
            b.negative = sum(rng.random() < (0.6 if storm else 0.1) for _ in range(n))
            for _ in range(n):
                words = rng.sample(VOCAB[:60], 3)
                if storm and rng.random() < 0.7:
                    words.append("recall")
                b.terms.update(words)
                b.channels[rng.choice(CHANNELS)] += 1
        out.append(b)
        # a sentiment-only turn (no volume spike), terms present
        n = poisson(rng, 40.0)
        turn = 330 <= r < 345
        b = Bucket("turn", t, WIDTH, count=n)
        if n:
            b.negative = sum(rng.random() < (0.5 if turn else 0.1) for _ in range(n))
            for _ in range(n):
                b.terms.update(rng.sample(VOCAB[:30], 2))
        out.append(b)
        if r % 97 == 50:
            out.append(Bucket("dense", t - WIDTH, WIDTH, count=99))  # late duplicate
    return out


def run_verdicts() -> list[dict[str, Any]]:
    stage = DetectionStage(DetectionConfig(warmup_seconds=2 * 3600.0, calm_seconds=1800.0))
    return [
        json.loads(json.dumps(v.to_dict(), sort_keys=True))
        for v in stage.observe_many(make_buckets())
    ]


def _load() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    return data


def test_verdicts_match_the_recorded_fixture() -> None:
    got = run_verdicts()
    if os.environ.get("CW_UPDATE_VERDICTS") == "1":
        blob = json.dumps(got, sort_keys=True, separators=(",", ":")).encode()
        FIXTURE.write_bytes(gzip.compress(blob, mtime=0))
    want = _load()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w, (g["series"], g["t"])


def test_fixture_exercises_every_path() -> None:
    want = _load()
    onsets = {v["onset"] for v in want}
    assert {"open", None} <= onsets
    assert any(v["resolved"] for v in want)
    assert any(v["explanation"]["top_terms"] for v in want)
    # terms are listed only when they burst (the terms signal above 0)
    assert all(
        v["explanation"]["signals"]["terms"] > 0 for v in want if v["explanation"]["top_terms"]
    )
    assert any(v["explanation"]["signals"]["terms"] > 0 for v in want)
    assert any(v["explanation"]["signals"]["sentiment"] > 0 for v in want)
    assert any(v["explanation"]["top_channels"] for v in want)


def test_a_run_checkpointed_and_restored_along_the_way_gives_the_recorded_verdicts() -> None:
    """Every series' detectors (terms and sentiment included) survive a restart mid-stream."""
    cfg = DetectionConfig(warmup_seconds=2 * 3600.0, calm_seconds=1800.0)
    buckets = make_buckets()
    stage, got = DetectionStage(cfg), []
    for i in range(0, len(buckets), 300):
        got += stage.observe_many(buckets[i : i + 300])
        again = DetectionStage(cfg)
        again.restore(stage.checkpoint())
        stage = again
    want = _load()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert json.loads(json.dumps(g.to_dict(), sort_keys=True)) == w, (w["series"], w["t"])
