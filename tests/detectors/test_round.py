"""round_to (detectors/_round.c) is round(), bit for bit."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors._round import round_to


def bits(x: float) -> bytes:
    return b"nan" if math.isnan(x) else struct.pack("<d", x)  # keeps the sign of zero


# decimal halves that are exact in binary (0.125, 2.5) must go round()'s half-even way;
# near-halves that are not (2.675 is 2.67499999...) must not be "corrected"
near_halves = st.builds(
    lambda k, d, nudge: (k + 0.5) / 10**d + nudge,
    st.integers(-(10**6), 10**6),
    st.integers(0, 6),
    st.sampled_from([0.0, 1e-17, -1e-17, 5e-324, -5e-324]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(), near_halves), st.integers(-3, 20))
@example(2.675, 2)
@example(0.125, 2)
@example(-0.0004, 3)
@example(-0.0, 3)
@example(4503599627370495.5, 0)
@example(1e300, 15)
def test_round_to_is_round_bit_for_bit(x: float, ndigits: int) -> None:
    assert bits(round_to(x, ndigits)) == bits(round(x, ndigits))


def test_what_round_takes_that_the_fast_path_does_not() -> None:
    assert round_to(7, 2) == 7 and isinstance(round_to(7, 2), int)
    assert round_to(1.5, 10**30) == 1.5  # an ndigits beyond a C long
    with pytest.raises(TypeError):
        round_to("1.5", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_to(1.5)  # type: ignore[call-arg]
