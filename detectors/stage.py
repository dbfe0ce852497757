"""The detection stage: per-series detectors, crisis score, onset gate, explanation.

One :class:`DetectionStage` serves live, replay and backtest alike: it receives closed
event-time buckets and returns one :class:`Verdict` per bucket. Each series gets clones of
the configured prototype detectors on first sight. The crisis score is a noisy-or of the
signals, ``1 - (1 - volume) * (1 - w_s * sentiment) * (1 - w_t * terms)``, so any strong
signal can carry it and weak signals that agree reinforce each other.

>>> from monitor.config.detection import DetectionConfig
>>> from monitor.model import Bucket
>>> stage = DetectionStage(DetectionConfig(warmup_seconds=3600))
>>> quiet = [stage.observe(Bucket("acme", i * 60.0, 60.0, count=5 + i % 3)) for i in range(600)]
>>> any(v.onset for v in quiet)
False
>>> storm = [stage.observe(Bucket("acme", i * 60.0, 60.0, count=400)) for i in range(600, 610)]
>>> [v.onset for v in storm if v.onset]
['open']
>>> v = storm[-1]
>>> v.active, v.severity, v.explanation["fired"]
(True, 2, ['volume'])
>>> restored = DetectionStage(DetectionConfig(warmup_seconds=3600))
>>> restored.restore(stage.checkpoint())  # series whose baselines had to start afresh
0
>>> restored.observe(Bucket("acme", 611 * 60.0, 60.0, count=6)).active
True
"""

from __future__ import annotations

import gc
import io
import math
import pickle
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from copy import copy
from typing import Any, NamedTuple

from detectors._round import round_to
from detectors.base import Detector, adopt_settings
from detectors.gate import Gate, Onset, magnitude_severity
from detectors.sentiment import SentimentDetector
from detectors.terms import TermsDetector
from detectors.volume import VolumeDetector
from monitor.config.detection import DetectionConfig
from monitor.enrich.text import spellings
from monitor.errors import CrisiswatchError
from monitor.model import Bucket

_MAGIC = b"cwdet4"  # bumped whenever per-series state or the framing changes shape
# cwdet3: one pickle of all series; cwdet4: consecutive pickles of slices of them
_READABLE = (_MAGIC, b"cwdet3")
_SERIES_PER_PART = 1000
_SPELLINGS_KEPT = 4096  # display spellings of terms remembered across series
MAX_GAP_FILL = 1440  # at most this many missing (empty) buckets are learned after a gap

# Every global a checkpoint may name: the stage's state classes and what they hold. The store
# is a database other programs can write to, so a blob naming anything else (``os.system``,
# say) is refused before unpickling can call it.
_CHECKPOINT_GLOBALS = frozenset(
    {
        ("array", "_array_reconstructor"),
        ("array", "array"),
        ("detectors.stage", "_Series"),
        ("detectors.gate", "Gate"),
        ("detectors.volume", "VolumeDetector"),
        ("detectors.sentiment", "SentimentDetector"),
        ("detectors.terms", "TermsDetector"),
        ("detectors._termtable", "TermTable"),
        # volume_model: hst (river HalfSpaceTrees and what its trees hold)
        ("detectors.river_hst", "HSTVolumeDetector"),
        ("river.anomaly.hst", "HalfSpaceTrees"),
        ("river.tree.padded", "PaddedBranch"),
        ("river.tree.padded", "PaddedLeaf"),
        ("builtins", "tuple"),
        ("collections", "defaultdict"),
        ("functools", "partial"),
        ("random", "Random"),
    }
)


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored as it was after it).

    Pickling a slice allocates a state dict and tuple per object, kept alive by the pickler's
    memo until the slice is done; collections triggered meanwhile promote them, and with
    100,000 series every few slices set off a full collection of millions of objects
    (~0.4 s each, an event-loop stall). Freed by reference counting, they never need one;
    and what unpickling allocates all stays alive, so a collection there finds nothing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class CheckpointError(CrisiswatchError):
    """A detector checkpoint could not be read; the stage starts fresh instead."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles only what :data:`_CHECKPOINT_GLOBALS` allows (Python docs, "Restricting
    Globals"): a checkpoint is data, and no other callable can be reached from it."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CHECKPOINT_GLOBALS:
            raise CheckpointError(
                f"checkpoint names {module}.{name}, which detector state never holds"
            )
        return super().find_class(module, name)


class Verdict(NamedTuple):
    """What detection concluded about one series-bucket (immutable).

    A named tuple rather than a frozen dataclass: one is built per series-bucket, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs about 1 µs more.
    """

    series: str
    t: float
    score: float
    severity: int | None
    onset: Onset
    active: bool
    resolved: bool
    explanation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the explanation is already JSON-able and is shared, not copied)."""
        return self._asdict()


def build_volume(cfg: DetectionConfig) -> Detector:
    """The configured volume-detector prototype."""
    if cfg.volume_model == "hst":
        from detectors.river_hst import HSTVolumeDetector

        return HSTVolumeDetector(warmup=cfg.warmup_seconds, z_half=cfg.z_half)
    return VolumeDetector(
        level_halflife=cfg.level_halflife_seconds,
        season_halflife_days=cfg.season_halflife_days,
        dispersion_halflife=cfg.dispersion_halflife_seconds,
        slot_seconds=cfg.season_slot_seconds,
        weekly=cfg.weekly,
        weekly_halflife_weeks=cfg.weekly_halflife_weeks,
        spread_halflife=cfg.spread_halflife_seconds,
        scales=cfg.scales_seconds,
        weights=cfg.scale_weights,
        pseudo_rate=cfg.pseudo_count_per_second,
        z_half=cfg.z_half,
        tail_guard=cfg.tail_guard,
        clip=cfg.robust_clip,
        min_count=cfg.volume_min_count,
        warmup=cfg.warmup_seconds,
    )


class _Series:
    """Everything one series carries: its detectors, its gate, the last bucket start."""

    __slots__ = ("gate", "last_t", "sentiment", "terms", "volume")

    def __init__(self, volume: Detector, sentiment: Detector, terms: Detector, gate: Gate) -> None:
        self.volume, self.sentiment, self.terms, self.gate = volume, sentiment, terms, gate
        self.last_t = -math.inf


class DetectionStage:
    """Per-series detection over closed buckets; pure apart from its own state."""

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self._volume = build_volume(config)
        self._sentiment = SentimentDetector(
            min_count=config.sentiment_min_count, warmup=config.warmup_seconds
        )
        self._terms = TermsDetector(
            max_tracked=config.terms_max_tracked,
            min_count=config.terms_min_count,
            warmup=config.warmup_seconds,
        )
        self._gate = Gate(
            open_threshold=config.open_threshold,
            close_threshold=config.close_threshold,
            calm_seconds=config.calm_seconds,
            cooldown_seconds=config.cooldown_seconds,
            severity_thresholds=config.severity_thresholds,
            repage=config.repage,
            repage_seconds=config.repage_seconds,
        )
        # folded term -> how a sample post wrote it: the top terms of a bucket whose samples
        # lack a word still show it with its accents
        self._spelled: dict[str, str] = {}
        self._series: dict[str, _Series] = {}

    def _new_series(self) -> _Series:
        return _Series(
            self._volume.clone(), self._sentiment.clone(), self._terms.clone(), copy(self._gate)
        )

    @property
    def series_count(self) -> int:
        return len(self._series)

    def pages_from(self, series: str) -> float | None:
        """Event time from which `series` may open an incident (its volume detector is warm),
        while it is still learning its baseline; None once it is warm or never seen.

        A first start with live sources pages nothing for ``warmup_seconds`` (a day by
        default); the wall and ``/healthz`` say so instead of looking armed.

        >>> from monitor.config.detection import DetectionConfig
        >>> stage = DetectionStage(DetectionConfig(warmup_seconds=3600))
        >>> _ = stage.observe(Bucket("acme", 600.0, 60.0))
        >>> stage.pages_from("acme"), stage.pages_from("never-seen")
        (4200.0, None)
        >>> _ = stage.observe(Bucket("acme", 4260.0, 60.0))
        >>> stage.pages_from("acme") is None
        True
        """
        st = self._series.get(series)
        if st is None or st.volume.warm:
            return None
        return st.volume.warm_at

    def end_episode(self, series: str) -> bool:
        """A person resolved the incident of `series`: its gate ends the episode (see
        :meth:`detectors.gate.Gate.end`); False when it had none open."""
        st = self._series.get(series)
        return st is not None and st.gate.end()

    def learning(self) -> dict[str, float]:
        """Every series still learning its baseline -> event time it may page from."""
        out = {}
        for name, st in self._series.items():
            if not st.volume.warm:
                out[name] = st.volume.warm_at
        return out

    def retain(self, series: Collection[str]) -> list[str]:
        """Forget every series not in ``series`` (topics removed from the config), so state
        and checkpoints do not grow with every topic ever watched; returns the dropped names.

        >>> from monitor.config.detection import DetectionConfig
        >>> stage = DetectionStage(DetectionConfig())
        >>> _ = stage.observe(Bucket("old", 0.0, 60.0)), stage.observe(Bucket("acme", 0.0, 60.0))
        >>> stage.retain({"acme"}), stage.series_count
        (['old'], 1)
        """
        gone = [name for name in self._series if name not in series]
        for name in gone:
            del self._series[name]
        return gone

    def observe(self, bucket: Bucket) -> Verdict:
        """Judge one series-bucket (buckets of one series must come in event-time order)."""
        st = self._series.get(bucket.series)
        if st is None:
            st = self._series[bucket.series] = self._new_series()
        if bucket.start <= st.last_t:
            # late or duplicate bucket: judge it but neither learn from it nor page on it
            v, s, m = self._scores(st, bucket)
            return self._verdict(st, bucket, v, s, m, self._combine(v, s, m), None, None, False)
        width = bucket.width
        gap = round((bucket.start - st.last_t) / width) - 1 if st.last_t > -math.inf else 0
        if gap > 0:
            fill = min(gap, MAX_GAP_FILL)
            for i in range(fill):
                # an absent bucket means nobody mentioned the series: learn the zero
                empty = Bucket(bucket.series, bucket.start - (fill - i) * width, width)
                st.volume.score_one(empty)
                st.volume.learn_one(empty)
        st.last_t = bucket.start
        # _scores and _combine spelled out: this runs for every series-bucket
        volume, sentiment, terms = st.volume, st.sentiment, st.terms
        count = bucket.count
        v = volume.score_one(bucket)
        mood = count > 0 and sentiment.warm
        s = sentiment.score_one(bucket) if mood else 0.0
        m = terms.score_one(bucket) if bucket.terms and terms.warm else 0.0
        warm = volume.warm
        volume.learn_one(bucket)
        if count:
            sentiment.learn_one(bucket)
            if bucket.terms or (isinstance(terms, TermsDetector) and terms.n):
                # every mention counts in the term mix, termless or not (once terms appeared;
                # a count-only series, e.g. a NAB file, never pays for the term detector)
                terms.learn_one(bucket)
        c = self.config
        score = 1.0 - (1.0 - v) * (1.0 - c.sentiment_weight * s) * (1.0 - c.terms_weight * m)
        mag = 4
        close = c.close_threshold
        if score >= close:
            vol = volume.details()
            mag = magnitude_severity(vol.get("observed", 0.0), vol.get("expected", 0.0), s >= close)
        gate = st.gate
        onset, sev, _active, resolved = gate.step(
            bucket.start, width, score, warm=warm, magnitude=mag
        )
        active = gate.active
        return Verdict(
            bucket.series,
            bucket.start,
            score,
            sev,
            onset,
            active,
            resolved,
            self._explain(st, bucket, v, s, m, full=onset is not None or active, mood=mood),
        )

    def observe_many(self, buckets: Sequence[Bucket]) -> list[Verdict]:
        """Same results as :meth:`observe` one by one, in input order."""
        observe = self.observe
        return [observe(b) for b in buckets]

    def _scores(self, st: _Series, bucket: Bucket) -> tuple[float, float, float]:
        v = st.volume.score_one(bucket)
        s = st.sentiment.score_one(bucket) if bucket.count and st.sentiment.warm else 0.0
        m = st.terms.score_one(bucket) if bucket.terms and st.terms.warm else 0.0
        return v, s, m

    def _combine(self, v: float, s: float, m: float) -> float:
        c = self.config
        return 1.0 - (1.0 - v) * (1.0 - c.sentiment_weight * s) * (1.0 - c.terms_weight * m)

    def _verdict(
        self,
        st: _Series,
        bucket: Bucket,
        v: float,
        s: float,
        m: float,
        score: float,
        onset: Onset,
        sev: int | None,
        resolved: bool,
    ) -> Verdict:
        full = onset is not None or st.gate.active
        mood = bucket.count > 0 and st.sentiment.warm  # as `_scores` decided
        return Verdict(
            series=bucket.series,
            t=bucket.start,
            score=score,
            severity=sev,
            onset=onset,
            active=st.gate.active,
            resolved=resolved,
            explanation=self._explain(st, bucket, v, s, m, full=full, mood=mood),
        )

    def _spell(self, term: str, written: dict[str, str]) -> str:
        """``term`` as a sample post writes it, else as one did before (display only)."""
        shown = written.get(term, term)
        spelled = self._spelled
        if shown == term:
            return spelled.get(term, term)
        spelled.pop(term, None)  # most recently written last; the oldest goes first
        spelled[term] = shown
        if len(spelled) > _SPELLINGS_KEPT:
            del spelled[next(iter(spelled))]
        return shown

    def _explain(
        self,
        st: _Series,
        bucket: Bucket,
        v: float,
        s: float,
        m: float,
        *,
        full: bool,
        mood: bool,
    ) -> dict[str, Any]:
        c = self.config
        # spelled out rather than comprehensions: this runs for every series-bucket
        close = c.close_threshold
        fired = []
        if v >= close:
            fired.append("volume")
        if s >= close:
            fired.append("sentiment")
        if m >= close:
            fired.append("terms")
        window = None
        if isinstance(st.volume, VolumeDetector):
            observed, expected, band, tail_p = st.volume.summary()
            window = st.volume.tail_window()
        else:
            vol = st.volume.details()
            observed = vol.get("observed", float(bucket.count))
            expected = vol.get("expected", 0.0)
            band = vol.get("band", [0.0, 0.0])
            tail_p = vol.get("tail_p", 1.0)
        out: dict[str, Any] = {
            "observed": observed,
            "expected": expected,
            "band": band,
            "tail_p": tail_p,
            # tail_p is of the evidence window that scored highest (1-6 h), not of the bucket
            # observed/expected describe: without it the two read as a contradiction (QA)
            "tail_window_seconds": window,
            "signals": {
                "volume": round_to(v, 4),
                "sentiment": round_to(s, 4),
                "terms": round_to(m, 4),
            },
            "fired": fired,
            "top_channels": [],
            "top_terms": [],
            "samples": [],
        }
        if not full:
            return out
        if mood:
            # only when sentiment judged this bucket: a detector still warming up reported
            # its initial "0% vs 0% usual" beside posts at -0.7 (QA, eleventh session)
            out["sentiment"] = st.sentiment.details()
        out["top_channels"] = [[ch, n] for ch, n in bucket.channels.most_common(c.top_channels)]
        # only terms that burst: with the terms signal at 0 the highest ratios are noise
        # ("update, event, streaming" on an outage; tenth session, QA)
        if m > 0.0 and isinstance(st.terms, TermsDetector) and bucket.terms and c.top_terms:
            top = st.terms.top(c.top_terms)
            if top:
                written = spellings(e.mention.text for e in bucket.samples)
                out["top_terms"] = [[self._spell(w, written), r] for w, r in top]
        if c.sample_posts and bucket.samples:
            neg = [e for e in bucket.samples if e.sentiment.label == "negative"] or bucket.samples
            neg.sort(key=lambda e: e.mention.author.followers, reverse=True)
            out["samples"] = [
                {
                    "id": e.mention.id,
                    "channel": e.mention.channel,
                    "author": e.mention.author.handle,
                    "followers": e.mention.author.followers,
                    "text": e.mention.text,
                    "sentiment": e.sentiment.score,
                    "url": e.mention.url,
                }
                for e in neg[: c.sample_posts]
            ]
        return out

    # -- persistence ----------------------------------------------------------------------
    def checkpoint(self) -> bytes:
        """All per-series state as bytes, for the store (restored with :meth:`restore`)."""
        return b"".join(self.checkpoint_parts())

    def checkpoint_parts(self, series_per_part: int = _SERIES_PER_PART) -> Iterator[bytes]:
        """:meth:`checkpoint`'s bytes in pieces, one slice of the series at a time.

        100,000 series take seconds to pickle: a caller in an event loop yields between
        pieces so that other work goes on. The series must not change until the last piece.

        >>> from monitor.config.detection import DetectionConfig
        >>> stage = DetectionStage(DetectionConfig())
        >>> _ = stage.observe_many([Bucket(f"s{i}", 0.0, 60.0, count=i) for i in range(5)])
        >>> parts = list(stage.checkpoint_parts(series_per_part=2))  # magic, 3 slices, end
        >>> again = DetectionStage(DetectionConfig())
        >>> len(parts), again.restore(b"".join(parts)), again.series_count
        (5, 0, 5)
        """
        yield _MAGIC
        packer = zlib.compressobj(1)
        names = list(self._series)
        for i in range(0, max(1, len(names)), series_per_part):
            part = {name: self._series[name] for name in names[i : i + series_per_part]}
            with _no_gc():
                pickled = pickle.dumps(part, protocol=5)
            yield packer.compress(pickled)
        yield packer.flush()

    def restore(self, blob: bytes) -> int:
        """Replace the state with a checkpoint made by :meth:`checkpoint`.

        Restored series run with this stage's config (thresholds, half-lives, ...), not the
        one they were saved under. A detector whose learned state is laid out by a setting
        that changed (volume scales or daily slot length, the volume model, the term
        half-life) starts afresh, and warms up again; returns how many series that touched.

        Raises :class:`CheckpointError` for a blob that is not one, is corrupted, or names
        any class or function beyond the detectors' own state (it is never called).
        """
        magic = blob[: len(_MAGIC)]
        if magic not in _READABLE:
            raise CheckpointError("not a detector checkpoint (bad magic)")
        series: dict[str, _Series] = {}
        try:
            raw = io.BytesIO(zlib.decompress(blob[len(magic) :]))
            while raw.tell() < len(raw.getbuffer()):
                with _no_gc():  # everything loaded stays alive: a collection finds nothing
                    part = _CheckpointUnpickler(raw).load()
                if not isinstance(part, dict) or not all(
                    isinstance(k, str) and isinstance(v, _Series) for k, v in part.items()
                ):
                    raise CheckpointError("checkpoint does not hold series state")
                series.update(part)
        except CheckpointError:
            raise
        except Exception as exc:  # corrupted blob: report with data, caller decides
            raise CheckpointError(f"unreadable checkpoint: {type(exc).__name__}") from None
        restarted = 0
        for st in series.values():
            st.volume, v_fresh = adopt_settings(st.volume, self._volume)
            st.sentiment, s_fresh = adopt_settings(st.sentiment, self._sentiment)
            st.terms, t_fresh = adopt_settings(st.terms, self._terms)
            st.gate, _ = adopt_settings(st.gate, self._gate)
            restarted += v_fresh or s_fresh or t_fresh
        self._series = series
        return restarted
