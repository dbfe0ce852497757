"""The detection stage contract: onsets not rows, resolve, checkpoint/restore, explanations."""

from __future__ import annotations

import gc
import json
import pickle
import random
import zlib
from collections import Counter

import pytest

from detectors._termtable import TermTable
from detectors.stage import CheckpointError, DetectionStage, Verdict
from monitor.config.detection import DetectionConfig
from monitor.model import Author, Bucket, Enriched, Mention, Sentiment
from tests.detectors.synthetic import poisson

W = 300.0
DAY = 86_400.0


def series(name: str, n: int, lam: float, seed: int, spikes: dict[int, int]) -> list[Bucket]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        # daily seasonality: twice as busy in the afternoon
        hour = (i * W % DAY) / 3600.0
        rate = lam * (1.5 if 12 <= hour < 20 else 0.75)
        count = poisson(rng, rate) + spikes.get(i, 0)
        out.append(Bucket(name, i * W, W, count=count))
    return out


def run(stage: DetectionStage, buckets: list[Bucket]) -> list[Verdict]:
    return [stage.observe(b) for b in buckets]


def test_quiet_dense_and_sparse_series_do_not_alert() -> None:
    for lam, seed in ((40.0, 1), (0.3, 2)):
        stage = DetectionStage(DetectionConfig())
        verdicts = run(stage, series("s", 6 * 288, lam, seed, {}))
        assert sum(v.onset == "open" for v in verdicts) == 0, lam


def test_spike_opens_once_then_resolves_after_calm() -> None:
    cfg = DetectionConfig()
    spikes = {i: 400 for i in range(4 * 288, 4 * 288 + 6)}
    verdicts = run(DetectionStage(cfg), series("s", 5 * 288, 20.0, 3, spikes))
    opens = [i for i, v in enumerate(verdicts) if v.onset == "open"]
    assert len(opens) == 1 and 4 * 288 <= opens[0] <= 4 * 288 + 2
    resolved = [i for i, v in enumerate(verdicts) if v.resolved]
    assert len(resolved) == 1 and resolved[0] > opens[0]
    # resolves after about calm_seconds of quiet, not immediately
    assert (resolved[0] - (4 * 288 + 5)) * W >= cfg.calm_seconds - W
    assert not verdicts[-1].active and verdicts[-1].severity is None
    v = verdicts[opens[0]]
    assert v.severity is not None and 1 <= v.severity <= 4
    assert v.explanation["observed"] > v.explanation["band"][1]
    assert v.explanation["tail_p"] < 1e-6
    assert v.explanation["fired"] == ["volume"]
    json.dumps(v.to_dict())


@pytest.mark.parametrize("series_per_part", [1, 1000])
def test_interrupted_run_gives_the_same_verdicts(series_per_part: int) -> None:
    spikes = {i: 300 for i in range(3 * 288, 3 * 288 + 4)} | {1200: 500}
    buckets = series("a", 5 * 288, 10.0, 4, spikes) + series("b", 5 * 288, 0.5, 5, {})
    buckets.sort(key=lambda b: b.start)
    whole = run(DetectionStage(DetectionConfig()), buckets)
    first = DetectionStage(DetectionConfig())
    cut = 3 * 288 * 2 + 3  # interrupt in the middle of the incident
    part1 = run(first, buckets[:cut])
    second = DetectionStage(DetectionConfig())
    second.restore(b"".join(first.checkpoint_parts(series_per_part)))
    part2 = run(second, buckets[cut:])
    assert part1 + part2 == whole
    assert any(v.onset for v in whole)


def test_observe_many_equals_observe() -> None:
    buckets = series("a", 600, 8.0, 6, {500: 200}) + series("b", 600, 1.0, 7, {})
    buckets.sort(key=lambda b: b.start)
    cfg = DetectionConfig(warmup_seconds=3600)
    assert DetectionStage(cfg).observe_many(buckets) == run(DetectionStage(cfg), buckets)


def test_restore_rejects_garbage() -> None:
    with pytest.raises(CheckpointError):
        DetectionStage(DetectionConfig()).restore(b"nope")
    good = DetectionStage(DetectionConfig())
    run(good, series("a", 20, 5.0, 1, {}))
    blob = good.checkpoint()
    trailing = blob[:6] + zlib.compress(zlib.decompress(blob[6:]) + b"junk")
    with pytest.raises(CheckpointError, match="unreadable"):
        DetectionStage(DetectionConfig()).restore(trailing)


def test_checkpoint_and_restore_set_off_no_garbage_collections() -> None:
    """With 100,000 series the collections pickling set off were full ones of millions of
    objects, ~0.4 s of stalled event loop each (docs/detection.md)."""
    stage = DetectionStage(DetectionConfig())
    stage.observe_many([Bucket(f"s{i}", 0.0, 60.0, count=i % 5) for i in range(200)])
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(10)  # a collection every few allocations outside the guarded blocks
    gc.callbacks.append(count)
    try:
        blob = stage.checkpoint()
        again = DetectionStage(DetectionConfig())
        again.restore(blob)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert again.series_count == 200
    assert len(collections) < 20  # hundreds when pickling and unpickling may collect
    assert gc.isenabled()
    gc.disable()
    try:
        stage.checkpoint()
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_a_checkpoint_written_before_it_came_in_slices_is_restored() -> None:
    """cwdet3 blobs (one pickle of every series) are what the store holds after an upgrade."""
    before = DetectionStage(DetectionConfig())
    run(before, series("a", 50, 5.0, 1, {}) + series("b", 50, 1.0, 2, {}))
    old = b"cwdet3" + zlib.compress(pickle.dumps(before._series, protocol=5), 1)
    after = DetectionStage(DetectionConfig())
    assert after.restore(old) == 0 and after.series_count == 2
    nxt = Bucket("a", 50 * W, W, count=5)
    assert after.observe(nxt) == before.observe(nxt)


def test_a_checkpoint_with_the_term_table_as_a_dict_is_restored() -> None:
    """Before the term table was C, checkpoints held it as a dict of floats."""
    before = DetectionStage(DetectionConfig(warmup_seconds=3600))
    words = Counter({"price": 3, "store": 2})
    run(before, [Bucket("a", i * W, W, count=9, terms=words) for i in range(40)])
    terms = before._series["a"].terms
    table = terms.counts.items()  # type: ignore[attr-defined]
    terms.counts = dict(table)  # type: ignore[attr-defined]
    old = b"cwdet3" + zlib.compress(pickle.dumps(before._series, protocol=5), 1)
    after = DetectionStage(DetectionConfig(warmup_seconds=3600))
    assert after.restore(old) == 0
    assert after._series["a"].terms.counts.items() == table  # type: ignore[attr-defined]
    burst = Bucket("a", 40 * W, W, count=30, terms=Counter({"recall": 25, "price": 3}))
    terms.counts = TermTable([w for w, _ in table], [v for _, v in table])  # type: ignore[attr-defined]
    assert after.observe(burst) == before.observe(burst)


CALLED: list[str] = []


def _gadget(arg: str) -> None:
    CALLED.append(arg)


class _Exploit:
    """Unpickling this calls ``_gadget`` (as ``os.system`` would be called in an attack)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _gadget, ("pwned",)


def test_restore_never_calls_what_a_forged_checkpoint_names() -> None:
    good = DetectionStage(DetectionConfig())
    run(good, series("a", 20, 5.0, 1, {}))
    blob = good.checkpoint()
    forged = blob[:6] + zlib.compress(pickle.dumps({"a": _Exploit()}, protocol=5))
    stage = DetectionStage(DetectionConfig())
    with pytest.raises(CheckpointError, match="_gadget"):
        stage.restore(forged)
    assert CALLED == [] and stage.series_count == 0
    # allowed classes in the wrong places are no series state either
    for wrong in ({"a": 5}, {"a": blob}, [1, 2]):
        with pytest.raises(CheckpointError, match="does not hold series state"):
            stage.restore(blob[:6] + zlib.compress(pickle.dumps(wrong, protocol=5)))


@pytest.mark.parametrize("model", ["count", "hst"])
def test_checkpoint_round_trips_every_volume_model(model: str) -> None:
    cfg = DetectionConfig(volume_model=model, warmup_seconds=3600)  # type: ignore[arg-type]
    buckets = series("a", 120, 6.0, 3, {100: 90})
    whole = DetectionStage(cfg)
    first = run(whole, buckets)
    cut = DetectionStage(cfg)
    part1 = run(cut, buckets[:60])
    again = DetectionStage(cfg)
    again.restore(cut.checkpoint())
    assert [v.score for v in part1 + run(again, buckets[60:])] == [v.score for v in first]


def test_restored_series_follow_the_current_config() -> None:
    """An operator raising the open threshold expects it for every series after a restart,
    not only for series first seen after it; baselines are kept."""
    spikes = {i: 300 for i in range(4 * 288, 4 * 288 + 4)}
    buckets = series("a", 5 * 288, 10.0, 8, spikes)
    cut = 4 * 288 - 10  # just before the burst
    saved = DetectionStage(DetectionConfig())
    run(saved, buckets[:cut])
    kept = run(saved, buckets[cut:])
    assert any(v.onset == "open" for v in kept)

    strict = DetectionConfig(open_threshold=0.999, close_threshold=0.99)
    before = DetectionStage(DetectionConfig())
    run(before, buckets[:cut])
    after = DetectionStage(strict)
    assert after.restore(before.checkpoint()) == 0  # same layout: nothing starts afresh
    rest = run(after, buckets[cut:])
    assert not any(v.onset for v in rest)
    # the baselines were carried over: the same scores, judged by the stricter gate
    assert [v.score for v in rest] == [v.score for v in kept]


def test_a_changed_state_layout_restarts_that_detector_only() -> None:
    buckets = series("a", 2 * 288, 10.0, 9, {})
    before = DetectionStage(DetectionConfig(warmup_seconds=3600))
    run(before, buckets)
    other_scales = DetectionConfig(
        warmup_seconds=3600, scales_seconds=(3600.0, 7200.0), scale_weights=(1.0, 1.0)
    )
    after = DetectionStage(other_scales)
    assert after.restore(before.checkpoint()) == 1
    v = after.observe(Bucket("a", 2 * 288 * W, W, count=500))
    assert v.onset is None and v.explanation["expected"] == 0.0  # a fresh baseline, not warm
    # and a stage with the same config restores it whole
    same = DetectionStage(DetectionConfig(warmup_seconds=3600))
    assert same.restore(before.checkpoint()) == 0
    assert same.observe(Bucket("a", 2 * 288 * W, W, count=500)).onset == "open"


def _enriched(i: int, followers: int, label: str, text: str = "") -> Enriched:
    m = Mention(
        id=str(i),
        source="demo",
        channel="x",
        text=text or f"post {i}",
        created_at=0.0,
        author=Author(id=str(i), handle=f"@u{i}", followers=followers),
    )
    score = -0.8 if label == "negative" else 0.5
    return Enriched(mention=m, topics=("acme",), lang="en", sentiment=Sentiment(label, score))  # type: ignore[arg-type]


def test_sentiment_turn_and_terms_explain_the_incident() -> None:
    stage = DetectionStage(DetectionConfig())
    for i in range(2 * 288):
        stage.observe(
            Bucket(
                "acme",
                i * W,
                W,
                count=20,
                negative=2,
                channels=Counter({"x": 15, "reddit": 5}),
                terms=Counter({"price": 1}),
            )
        )
    samples = [
        _enriched(1, 10, "negative", "Der RÜCKRUF ist ein Witz"),
        _enriched(2, 5000, "negative"),
        _enriched(3, 90000, "positive"),
    ]
    v = stage.observe(
        Bucket(
            "acme",
            2 * 288 * W,
            W,
            count=24,
            negative=20,
            channels=Counter({"x": 20, "news": 4}),
            terms=Counter({"ruckruf": 12, "price": 1}),
            samples=samples,
        )
    )
    assert v.onset == "open"
    assert "sentiment" in v.explanation["fired"] and "terms" in v.explanation["fired"]
    # counted folded, shown as a sample post spells it, and later as it was spelled before
    assert v.explanation["top_terms"][0][0] == "rückruf"
    later = Bucket("acme", v.t + W, W, count=30, negative=25, terms=Counter({"ruckruf": 20}))
    later.samples = [_enriched(4, 50, "negative", "ruckruf?? again")]
    assert stage.observe(later).explanation["top_terms"][0][0] == "rückruf"
    assert v.explanation["top_channels"][0] == ["x", 20]
    # highest-reach negative post first; the positive one is not a sample
    assert [s["author"] for s in v.explanation["samples"]] == ["@u2", "@u1"]


def test_gap_counts_as_empty_buckets() -> None:
    stage = DetectionStage(DetectionConfig(warmup_seconds=0))
    for i in range(300):
        stage.observe(Bucket("s", i * W, W, count=10))
    # after a silent day the baseline has learned the zeros: ten mentions is now a lot
    v = stage.observe(Bucket("s", (300 + 288) * W, W, count=10))
    assert v.explanation["expected"] < 10


def test_a_crisis_explains_no_mood_the_sentiment_detector_has_not_judged() -> None:
    """A topic silent but for its crisis: volume was warm, sentiment had seen no mention, and
    the page said "negative 0% vs 0% usual" beside sample posts at -0.7 (QA, eleventh session)."""
    stage = DetectionStage(DetectionConfig())
    for i in range(2 * 1440):
        stage.observe(Bucket("narrow", 60.0 * i, 60.0))
    v = stage.observe(Bucket("narrow", 2 * 86_400.0, 60.0, count=60, negative=50))
    assert v.onset == "open"
    assert "sentiment" not in v.explanation  # so the page's drivers leave the mood out
