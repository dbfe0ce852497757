"""The onset gate as timelines: scores per minute in, onsets and severities out."""

from __future__ import annotations

from detectors.gate import Gate, Onset

MINUTE = 60.0


def gate(*, repage: bool = True) -> Gate:
    return Gate(
        open_threshold=0.5,
        close_threshold=0.3,
        calm_seconds=600.0,
        cooldown_seconds=3600.0,
        severity_thresholds=(0.95, 0.85, 0.7),
        repage=repage,
        repage_seconds=1800.0,
    )


def pages(g: Gate, steps: list[tuple[float, int]]) -> list[tuple[int, Onset, int | None]]:
    """(minute, onset, severity) for each minute that pages; ``steps`` are (score, magnitude)."""
    out: list[tuple[int, Onset, int | None]] = []
    for minute, (score, magnitude) in enumerate(steps):
        onset, sev, _, _ = g.step(minute * MINUTE, MINUTE, score, warm=True, magnitude=magnitude)
        if onset:
            out.append((minute, onset, sev))
    return out


def test_a_one_level_rise_waits_for_repage_seconds() -> None:
    # opens SEV4, is SEV3 from the next minute on: paged again once 30 minutes have passed
    steps = [(0.6, 4)] + [(0.75, 4)] * 40
    assert pages(gate(), steps) == [(0, "open", 4), (30, "repage", 3)]


def test_a_jump_of_two_levels_pages_at_once() -> None:
    # the demo's crisis: opens on the ramp as SEV4, a minute later 6.7x the expected volume
    # with a negative turn (magnitude SEV2) while the score itself stays near 0.6
    steps = [(0.6, 4), (0.62, 2), (0.6, 2)] + [(0.62, 1)] * 40
    assert pages(gate(), steps) == [(0, "open", 4), (1, "repage", 2), (31, "repage", 1)]


def test_a_climb_one_level_a_minute_is_not_a_page_a_minute() -> None:
    steps = [(0.6, 4), (0.75, 4), (0.9, 4), (0.97, 4)] + [(0.97, 4)] * 40
    # SEV4 -> SEV3 waits; SEV4 -> SEV2 (two levels above what was paged) goes at once; SEV1
    # is one level above that page, so it waits its 30 minutes
    assert pages(gate(), steps) == [(0, "open", 4), (2, "repage", 2), (32, "repage", 1)]


def test_no_repage_below_the_open_threshold_or_when_switched_off() -> None:
    # active (above close) but below open: a magnitude alone does not page again
    assert pages(gate(), [(0.6, 4), (0.4, 1), (0.45, 1)]) == [(0, "open", 4)]
    off = gate(repage=False)
    assert pages(off, [(0.6, 4), (0.99, 1)]) == [(0, "open", 4)]


def test_resolves_after_calm_then_cools_down_before_it_may_open_again() -> None:
    steps = [(0.9, 4)] + [(0.1, 4)] * 10 + [(0.9, 4)] * 70
    g = gate()
    resolved = [
        minute
        for minute, (score, _) in enumerate(steps)
        if g.step(minute * MINUTE, MINUTE, score, warm=True)[3]
    ]
    assert resolved == [10]  # 600 s calm, counted to the end of the bucket
    # the cooldown (3600 s from the end of that bucket) holds the next open to minute 71
    assert pages(gate(), steps) == [(0, "open", 2), (71, "open", 2)]


def test_a_cold_series_never_opens() -> None:
    g = gate()
    assert [g.step(m * MINUTE, MINUTE, 0.99, warm=False)[0] for m in range(5)] == [None] * 5
