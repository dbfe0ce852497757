"""The C evidence loops (detectors/_scales.c) against their definitions, written plainly."""

from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._scales import evidence, learn


def evidence_spec(
    scale: list[float],
    alpha: list[float],
    weights: list[float],
    x: float,
    mu: float,
    c: float,
) -> tuple[float, int, list[float]]:
    best_z, best_j, pending = 0.0, 0, []
    for j, w in enumerate(weights):
        ex = scale[3 * j] + alpha[j] * (x - scale[3 * j])
        em = scale[3 * j + 1] + alpha[j] * (mu - scale[3 * j + 1])
        lr = math.log((ex + c) / (em + c))
        pending += [ex, em, lr]
        z = w * lr / scale[3 * j + 2]
        if z > best_z:
            best_z, best_j = z, j
    return best_z, best_j, pending


def learn_spec(scale: list[float], pending: list[float], rate: float, spread: bool) -> list[float]:
    out = list(scale)
    for j3 in range(0, len(scale), 3):
        out[j3], out[j3 + 1] = pending[j3], pending[j3 + 1]
        if spread:
            sp = out[j3 + 2]
            sp += rate * (1.25 * min(abs(pending[j3 + 2]), 4.0 * sp) - sp)
            out[j3 + 2] = max(sp, 0.02)
    return out


means = st.floats(0.0, 5_000.0)
spreads = st.floats(0.02, 3.0)
window = st.tuples(means, means, spreads, st.floats(0.0, 1.0), st.floats(0.0, 2.0))


@settings(max_examples=500, deadline=None)
@given(st.lists(window, min_size=1, max_size=6), means, means, st.floats(0.01, 2.0))
def test_evidence_scores_every_window_as_its_definition_does(
    windows: list[tuple[float, float, float, float, float]], x: float, mu: float, c: float
) -> None:
    scale = [v for ex, em, sp, _a, _w in windows for v in (ex, em, sp)]
    alpha = [a for *_s, a, _w in windows]
    weights = [w for *_s, w in windows]
    z, j, pending = evidence_spec(scale, alpha, weights, x, mu, c)
    got_pending = array("d", [0.0] * len(scale))
    head = [9.0] * 6  # the detector keeps other weights before the windows' alphas
    got = evidence(
        array("d", scale), got_pending, array("d", head + alpha), 6, array("d", weights), x, mu, c
    )
    assert got == (z, j)
    assert list(got_pending) == pending


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(means, means, spreads, st.floats(-5.0, 5.0)), min_size=1, max_size=6),
    st.floats(0.0, 1.0),
    st.booleans(),
)
def test_learn_takes_the_means_and_moves_the_spreads_as_defined(
    windows: list[tuple[float, float, float, float]], rate: float, spread: bool
) -> None:
    scale = [v for ex, em, sp, _r in windows for v in (ex, em, sp)]
    pending = [v for ex, em, _sp, r in windows for v in (em, ex, r)]
    got = array("d", scale)
    learn(got, array("d", pending), rate, spread)
    assert list(got) == learn_spec(scale, pending, rate, spread)


def test_wrong_buffers_are_errors_not_memory_reads() -> None:
    three = array("d", [1.0, 1.0, 0.3])
    with pytest.raises(TypeError, match="doubles"):
        evidence(array("f", [1.0, 1.0, 0.3]), array("d", [0.0] * 3), three, 0, three[:1], 1, 1, 1)
    with pytest.raises(ValueError, match="holds 3 values, 6 needed"):
        evidence(three, array("d", [0.0] * 3), three, 0, array("d", [1.0, 1.0]), 1, 1, 1)
    with pytest.raises(ValueError, match="needed"):
        evidence(three, array("d", [0.0] * 3), three, 3, three[:1], 1, 1, 1)  # alpha too short
    with pytest.raises(ValueError, match="negative"):
        evidence(three, array("d", [0.0] * 3), three, -1, three[:1], 1, 1, 1)
    with pytest.raises(TypeError):
        learn(three, b"\x00" * 24, 0.1, True)  # type: ignore[arg-type]  # bytes: not doubles
    with pytest.raises(ValueError, match="needed"):
        learn(array("d", [0.0] * 6), three, 0.1, True)
