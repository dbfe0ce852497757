"""Config of the detector stack (owned by detectors/).

Every default here is the one frozen setting that serves every series (tuned with
leave-one-series-out on the shared NAB realTweets, see docs/detection.md), so
``config/default.yaml`` needs no ``detection:`` block. Durations are seconds of event
time, never bucket counts, because bucket width differs between live (60 s) and NAB (300 s).

>>> DetectionConfig().open_threshold
0.5
>>> DetectionConfig(calm_seconds=600).calm_seconds
600.0
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from monitor.config.base import Section, SeverityCuts, at


class DetectionConfig(Section):
    """How each series is scored (volume, sentiment, emerging terms) and when a score opens,
    re-pages or closes an incident."""

    # --- volume model -------------------------------------------------------------------
    volume_model: Literal["count", "hst"] = "count"
    """``count``: seasonal negative-binomial tail model; ``hst``: river HalfSpaceTrees."""
    warmup_seconds: float = Field(default=86_400.0, ge=0)
    """No verdict may open an incident before a series has this much history."""
    level_halflife_seconds: float = Field(default=3 * 86_400.0, gt=0)
    """Memory of a series' baseline level (its usual rate, the daily shape aside)."""
    season_halflife_days: float = Field(default=7.0, gt=0)
    """Memory of a series' daily shape (each slot of the day learns from that slot's days)."""
    dispersion_halflife_seconds: float = Field(default=3 * 86_400.0, gt=0)
    """Memory of the count model's over-dispersion (how much more than Poisson a series
    varies)."""
    spread_halflife_seconds: float = Field(default=3 * 86_400.0, gt=0)
    """Memory of each series' own typical deviation (its tail heaviness) per scale."""
    season_slot_seconds: float = Field(default=3600.0, gt=0)
    """Length of one slot of the learned daily shape; must cut a day into whole slots."""
    weekly: bool = True
    """Also learn a factor per weekday (weekends are quieter for most brands)."""
    weekly_halflife_weeks: float = Field(default=4.0, gt=0)
    """Memory of each weekday's factor: it learns from one day a week, so it needs weeks."""
    scales_seconds: tuple[float, ...] = (0.0, 3600.0, 3 * 3600.0, 6 * 3600.0)
    """Time constants of the observed-vs-expected evidence windows (0 = the bucket itself)."""
    scale_weights: tuple[float, ...] = (0.6, 1.0, 1.0, 1.0)
    """Each scale's evidence counts times this: a single bucket is noisier than an hour."""
    pseudo_count_per_second: float = Field(default=2.0 / 300.0, gt=0)
    """Added to observed and expected rates, so a sparse series' 0 -> 2 is no crisis (and
    ``log(0 / 0)`` never happens: 0 would crash the stage on a series' first empty buckets)."""
    z_half: float = Field(default=4.0, gt=0)
    """Deviation (in the series' own typical deviations) that maps to volume signal 0.5."""
    tail_guard: float = Field(default=1e-2, gt=0, le=1)
    """The count model must also find the window's sum this improbable (NB tail p)."""
    volume_min_count: float = Field(default=3.0, ge=0)
    """Mentions the winning evidence window must hold before volume may fire: a lone mention
    in a quiet topic is improbable under its near-zero baseline, but it is no crisis."""
    robust_clip: float = Field(default=3.0, gt=0)
    """Baseline learns from values winsorised at this many standard deviations."""
    # --- sentiment / terms --------------------------------------------------------------
    sentiment_weight: float = Field(default=0.6, ge=0, le=1)
    """Weight of the sentiment-turn signal in the crisis score (0 turns it off)."""
    sentiment_min_count: int = Field(default=5, ge=1)
    """Mentions a bucket needs before its negative share is judged."""
    terms_weight: float = Field(default=0.4, ge=0, le=1)
    """Weight of the emerging-terms signal in the crisis score (0 turns it off)."""
    terms_max_tracked: int = Field(default=48, ge=1, le=1000)
    """Terms each series remembers a baseline for (the least frequent are forgotten)."""
    terms_min_count: int = Field(default=3, ge=1)
    """Mentions a term needs in a bucket before its burst is tested."""
    # --- decisions ----------------------------------------------------------------------
    open_threshold: float = Field(default=0.5, gt=0, le=1)
    """A crisis score at or above this opens an incident (an onset)."""
    close_threshold: float = Field(default=0.3, gt=0, le=1)
    """An active crisis stays active while the score is at or above this; below it for
    `calm_seconds` it resolves."""
    calm_seconds: float = Field(default=6 * 3600.0, ge=0)
    """An active crisis resolves after this long with the score below ``close_threshold``."""
    cooldown_seconds: float = Field(default=3600.0, ge=0)
    """After a resolve, no new incident opens on the series for this long."""
    severity_thresholds: SeverityCuts = (0.95, 0.85, 0.7)
    """Scores at or above these map to SEV1, SEV2, SEV3; anything else alerting is SEV4."""
    repage: bool = True
    """Page again when an open incident's severity rises (see `repage_seconds`)."""
    repage_seconds: float = Field(default=1800.0, ge=0)
    """A re-page needs a severity rise, and a rise of one level also this long since the last
    page of the incident (a jump of two or more levels pages at once)."""
    # --- explanation --------------------------------------------------------------------
    top_channels: int = Field(default=3, ge=0)
    """Channels an explanation names (by mentions in the bucket)."""
    top_terms: int = Field(default=5, ge=0)
    """Emerging terms an explanation names (by observed vs expected)."""
    sample_posts: int = Field(default=3, ge=0)
    """Sample posts an explanation carries (the highest-reach negative ones)."""

    @model_validator(mode="after")
    def _ordered(self) -> DetectionConfig:
        if self.close_threshold > self.open_threshold:
            raise at(
                "close_threshold",
                f"{self.close_threshold:g} must not exceed open_threshold "
                f"({self.open_threshold:g})",
            )
        slots = 86_400.0 / self.season_slot_seconds
        if slots != int(slots) or slots < 1:
            # a short last slot would be learned and renormalised as if it were a whole one
            raise at(
                "season_slot_seconds",
                f"must cut a day (86400 s) into whole slots, got {self.season_slot_seconds:g}",
            )
        if any(x < 0 for x in self.scales_seconds) or not self.scales_seconds:
            raise at(
                "scales_seconds",
                f"needs at least one window, none negative, got {list(self.scales_seconds)}",
            )
        if len(self.scale_weights) != len(self.scales_seconds):
            raise at(
                "scale_weights",
                f"needs one weight per entry of scales_seconds ({len(self.scales_seconds)}), "
                f"got {list(self.scale_weights)}",
            )
        if any(w < 0 for w in self.scale_weights):
            raise at(
                "scale_weights",
                f"must not be negative (0 turns a scale off), got {list(self.scale_weights)}",
            )
        return self
