"""NAB scoring on hand-computed cases (numbers worked out from the published formulas)."""

from __future__ import annotations

import pytest

from detectors.nab import PROFILES, normalized, probation_length, scaled_sigmoid, score_file

STD = PROFILES["standard"]
N = 200  # probation = floor(0.15 * 200) = 30 rows
WIN = (100, 109)  # width 10


def alerts(*rows: int) -> list[bool]:
    out = [False] * N
    for r in rows:
        out[r] = True
    return out


def test_profiles_match_nab_config() -> None:
    assert (STD.tp, STD.fp, STD.fn) == (1.0, 0.11, 1.0)
    low_fp, low_fn = PROFILES["reward_low_FP_rate"], PROFILES["reward_low_FN_rate"]
    assert (low_fp.tp, low_fp.fp, low_fp.fn) == (1.0, 0.22, 1.0)
    assert (low_fn.tp, low_fn.fp, low_fn.fn) == (1.0, 0.11, 2.0)


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation_length(N) == 30
    assert probation_length(10_000) == 750


def test_first_row_of_window_is_a_perfect_detection() -> None:
    f = score_file(alerts(100), [WIN], STD)
    assert f.raw == pytest.approx(1.0)
    assert (f.null, f.perfect) == (-1.0, 1.0)
    assert normalized([f]) == pytest.approx(100.0)


def test_last_row_of_window_earns_little() -> None:
    # pos = -(109 - 109 + 1) / 10 = -0.1; 2/(1+e^-0.5) - 1 = 0.244919; / 0.986614 = 0.248242
    f = score_file(alerts(109), [WIN], STD)
    assert f.raw == pytest.approx(0.248242, abs=1e-6)
    assert normalized([f]) == pytest.approx(62.4121, abs=1e-3)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    assert score_file(alerts(100, 105, 109), [WIN], STD).raw == pytest.approx(1.0)
    assert score_file(alerts(100, 105, 109), [WIN], STD).fp == 0


def test_missed_window_costs_fn_weight() -> None:
    assert score_file(alerts(), [WIN], STD).raw == -1.0
    assert score_file(alerts(), [WIN], PROFILES["reward_low_FN_rate"]).raw == -2.0
    assert normalized([score_file(alerts(), [WIN], STD)]) == 0.0


def test_false_positives_before_and_just_after_a_window() -> None:
    # before any window: a full -fp
    assert score_file(alerts(50), [WIN], STD).raw == pytest.approx(-1.0 - 0.11)
    # one row after the window: pos = |109 - 110| / (10 - 1) = 1/9 -> 0.11 * -0.270847
    f = score_file(alerts(110), [WIN], STD)
    assert f.raw == pytest.approx(-1.0 - 0.029793, abs=1e-6)
    assert f.fp == 1
    # far after (pos >= 3): a full -fp
    assert score_file(alerts(199), [WIN], STD).raw == pytest.approx(-1.11)
    assert score_file(alerts(50), [WIN], PROFILES["reward_low_FP_rate"]).raw == pytest.approx(-1.22)


def test_probationary_rows_are_ignored() -> None:
    f = score_file(alerts(10), [WIN], STD)
    assert f.fp == 0 and f.raw == -1.0
    # a window entirely inside the probationary period does not count at all
    early = score_file(alerts(12), [(10, 20)], STD)
    assert (early.raw, early.null, early.perfect) == (0.0, 0.0, 0.0)


def test_normalization_sums_over_files() -> None:
    hit = score_file(alerts(100), [WIN], STD)  # +1, null -1, perfect +1
    miss = score_file(alerts(50), [WIN, (150, 159)], STD)  # -2 - 0.11, null -2, perfect +2
    # 100 * ((1 - 2.11) - (-3)) / (3 - (-3)) = 31.5
    assert normalized([hit, miss]) == pytest.approx(31.5)


def test_scaled_sigmoid_reference_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.986614, abs=1e-6)
    assert scaled_sigmoid(3.0) == -1.0
