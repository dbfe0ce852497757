"""Onsets, not rows: turn a per-bucket crisis score into open / repage / resolve decisions.

Hysteresis: a crisis opens when the score reaches ``open_threshold`` (and the series is
warm and not cooling down) and stays active while the score is at or above
``close_threshold``. It resolves once the score has stayed below ``close_threshold`` for
``calm_seconds`` of event time; then ``cooldown_seconds`` must pass before it may open again.
While active, a rise of severity re-pages (if ``repage``): a rise of one level not sooner
than ``repage_seconds`` after the last page, so a crisis climbing SEV4, SEV3, SEV2, SEV1 one
bucket at a time is not four pages in four minutes; a jump of two or more levels at once,
because a crisis that opened as SEV4 and is SEV2 a minute later is news the responder needs
now, not in half an hour.

>>> g = Gate(open_threshold=0.5, close_threshold=0.3, calm_seconds=120, cooldown_seconds=60,
...          severity_thresholds=(0.95, 0.85, 0.7), repage_seconds=600)
>>> [g.step(t * 60.0, 60.0, s, warm=True)[:2] for t, s in enumerate([0.1, 0.6, 0.9, 0.96, 0.4])]
[(None, None), ('open', 4), ('repage', 2), (None, 2), (None, 2)]
>>> g.step(300.0, 60.0, 0.1, warm=True)
(None, 2, True, False)
>>> g.step(360.0, 60.0, 0.1, warm=True)
(None, None, False, True)
"""

from __future__ import annotations

import math
from typing import Literal

Onset = Literal["open", "repage"] | None
#: After a person resolved: buckets of ordinary size in a row before a burst is a new surge.
CALM_BUCKETS = 3


def severity_of(score: float, thresholds: tuple[float, float, float]) -> int:
    """SEV1..SEV3 by descending thresholds, SEV4 below them.

    >>> severity_of(0.99, (0.95, 0.85, 0.7)), severity_of(0.5, (0.95, 0.85, 0.7))
    (1, 4)
    """
    for level, th in enumerate(thresholds, start=1):
        if score >= th:
            return level
    return 4


def magnitude_severity(
    observed: float, expected: float, negative_turn: bool, *, min_count: float = 20.0
) -> int:
    """Severity implied by the size of a burst, so a huge crisis does not open as SEV4.

    The score is a probability-like confidence and saturates slowly; responders also need
    to know *how big* it is. ``observed / expected`` of 10x (or 5x with a negative turn) is
    SEV1/SEV2 territory; a bucket needs ``min_count`` mentions for its ratio to count. 5 (no
    severity: the score's own applies) marks a bucket of ordinary size, fewer than
    ``min_count`` mentions or under twice the expected: after a person resolved, a burst
    must come after such buckets to be a new surge (:meth:`Gate.end`).

    >>> magnitude_severity(240, 40, True), magnitude_severity(240, 40, False)
    (2, 3)
    >>> magnitude_severity(500, 40, True), magnitude_severity(100, 40, False)
    (1, 4)
    >>> magnitude_severity(12, 0.5, True), magnitude_severity(50, 40, True)
    (5, 5)
    """
    if observed < min_count:
        return 5
    ratio = observed / max(expected, 1.0)
    if negative_turn:
        if ratio >= 3.0:
            return 1 if ratio >= 10.0 else 2 if ratio >= 5.0 else 3
    elif ratio >= 5.0:
        return 2 if ratio >= 10.0 else 3
    return 5 if ratio < 2.0 else 4


class Gate:
    """Per-series onset state machine (pure, event time)."""

    __slots__ = (
        "active",
        "calm_seconds",
        "calm_since",
        "close_threshold",
        "cooldown_seconds",
        "cooldown_until",
        "open_threshold",
        "paged",
        "paged_at",
        "repage",
        "repage_seconds",
        "severity_thresholds",
    )
    SETTINGS = (
        "calm_seconds",
        "close_threshold",
        "cooldown_seconds",
        "open_threshold",
        "repage",
        "repage_seconds",
        "severity_thresholds",
    )

    def __init__(
        self,
        *,
        open_threshold: float,
        close_threshold: float,
        calm_seconds: float,
        cooldown_seconds: float,
        severity_thresholds: tuple[float, float, float],
        repage: bool = True,
        repage_seconds: float = 1800.0,
    ) -> None:
        self.open_threshold, self.close_threshold = open_threshold, close_threshold
        self.calm_seconds, self.cooldown_seconds = calm_seconds, cooldown_seconds
        self.severity_thresholds, self.repage = severity_thresholds, repage
        self.repage_seconds = repage_seconds
        self.paged_at = -math.inf
        self.active = False
        self.calm_since = math.nan
        self.cooldown_until = -math.inf
        self.paged = 5  # worst severity paged in the current incident (5 = none)

    def end(self) -> bool:
        """A person resolved the incident: the episode ends now. Left active, the gate folded
        every later surge into the closed incident until ``calm_seconds`` of calm (QA: a 50x
        crisis minutes after a manual resolve paged nobody). Returns whether it was active.

        The surge the person closed must not page again the next minute, and the score, which
        weighs hours of evidence, stays high long after it. So the series opens again on a
        bucket that is a burst by its own size (``magnitude`` SEV3 or worse, see
        :func:`magnitude_severity`) after ``CALM_BUCKETS`` buckets of ordinary size in a row
        (magnitude 5; a surge's wobbling tail at 3-4x its expected is neither and does not
        reopen it, QA); or, as after any episode, on the score once it has been below
        ``close_threshold``.

        >>> g = Gate(open_threshold=0.5, close_threshold=0.3, calm_seconds=3600,
        ...          cooldown_seconds=600, severity_thresholds=(0.95, 0.85, 0.7))
        >>> g.step(0.0, 60.0, 0.6, warm=True, magnitude=2)[0], g.end()
        ('open', True)
        >>> steps = [(0.7, 2), (0.6, 4), (0.7, 3), (0.6, 5), (0.6, 5), (0.6, 5), (0.7, 2)]
        >>> [g.step(60.0 * i, 60.0, s, warm=True, magnitude=m)[0] for i, (s, m) in enumerate(steps)]
        [None, None, None, None, None, None, 'open']
        """
        if not self.active:
            return False
        self.active = False
        self.paged = 5
        self.calm_since = math.nan  # while ended: since when buckets are of ordinary size
        self.cooldown_until = math.inf  # ended by a person: see step
        return True

    def step(
        self, t: float, width: float, score: float, *, warm: bool, magnitude: int = 4
    ) -> tuple[Onset, int | None, bool, bool]:
        """Advance one bucket: returns (onset, severity, active, resolved).

        ``magnitude`` is a severity implied by the size of the crisis itself (see
        :func:`magnitude_severity`); the worse of it and the score's severity is paged.
        """
        if self.active:
            if score >= self.close_threshold:
                self.calm_since = math.nan
                if self.repage and score >= self.open_threshold:
                    sev = min(severity_of(score, self.severity_thresholds), magnitude)
                    if sev < self.paged and (
                        self.paged - sev >= 2 or t - self.paged_at >= self.repage_seconds
                    ):
                        self.paged, self.paged_at = sev, t
                        return "repage", sev, True, False
                return None, self.paged, True, False
            if math.isnan(self.calm_since):
                self.calm_since = t
            if t + width - self.calm_since >= self.calm_seconds:
                self.active = False
                self.paged = 5
                self.cooldown_until = t + width + self.cooldown_seconds
                return None, None, False, True
            return None, self.paged, True, False
        burst_again = False
        if self.cooldown_until == math.inf:  # ended by a person (`end`)
            calm_since = self.calm_since
            if score < self.close_threshold:
                self.cooldown_until = t  # calm: as after any episode
            elif magnitude == 5:
                if calm_since != calm_since:  # nan: the first ordinary bucket
                    self.calm_since = t
            else:
                burst_again = magnitude < 4 and t - calm_since >= CALM_BUCKETS * width
                self.calm_since = math.nan
        if warm and score >= self.open_threshold and (t >= self.cooldown_until or burst_again):
            self.cooldown_until = -math.inf
            self.active = True
            self.calm_since = math.nan
            self.paged = min(severity_of(score, self.severity_thresholds), magnitude)
            self.paged_at = t
            return "open", self.paged, True, False
        return None, None, False, False
