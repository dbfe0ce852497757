"""The C term-table loops (detectors/_termtable.c) against their definitions, written plainly."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._termtable import candidates, fold


def fold_spec(
    counts: dict[str, float], terms: dict[str, int], bound: float, grow: float, max_tracked: int
) -> float:
    for w, c in terms.items():
        counts[w] = counts.get(w, bound) + c * grow
    excess = len(counts) - max_tracked
    if excess <= 0:
        return 0.0
    gone = sorted(counts, key=counts.__getitem__)[:excess]  # stable: ties in table order
    cut = counts[gone[-1]]
    for w in gone:
        del counts[w]
    return cut


def candidates_spec(
    counts: dict[str, float],
    terms: dict[str, int],
    n: int,
    min_count: int,
    untracked: float,
    scale: float,
    denom: float,
) -> tuple[int, list[tuple[float, float, float, float, str]]]:
    tested, found = 0, []
    for w, c in terms.items():
        if c < min_count:
            continue
        tested += 1
        m = counts[w] * scale if w in counts else untracked
        s = min((m + 0.5) / denom, 0.999)
        e = s * n
        if c > e:
            q = min(c, n) / n
            d = q * math.log(q / s)  # D(q || s), the Kullback-Leibler divergence
            if q < 1.0:
                d += (1.0 - q) * math.log((1.0 - q) / (1.0 - s))
            found.append((d, float(c), s, e, w))
    return tested, sorted(found, key=lambda f: f[:4], reverse=True)  # stable: ties keep order


words = st.sampled_from([f"w{k}" for k in range(40)])
# few distinct values, so ties (the table-order rule) are common
values = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, 10.0, 1e6])
tables = st.dictionaries(words, values, max_size=30)
buckets = st.dictionaries(words, st.integers(1, 9), max_size=25)


@settings(max_examples=400, deadline=None)
@given(
    tables,
    buckets,
    values,
    st.sampled_from([0.5, 1.0, 3.0]),
    st.integers(0, 35),
)
def test_fold_is_insert_then_evict_the_smallest_in_table_order(
    table: dict[str, float], terms: dict[str, int], bound: float, grow: float, max_tracked: int
) -> None:
    expected = dict(table)
    cut = fold_spec(expected, terms, bound, grow, max_tracked)
    before = list(table.items())
    # floats only the table holds (fold may overwrite those in place) and floats shared with
    # ``table`` (it must not): both give the spec's result, and ``table`` never changes
    owned = {w: v + 0.0 for w, v in table.items()}
    shared = dict(table)
    for got in (owned, shared):
        assert fold(got, Counter(terms), bound, grow, max_tracked) == cut
        assert list(got.items()) == list(expected.items())  # same entries, same order
    assert list(table.items()) == before


def test_fold_never_changes_a_count_somebody_else_holds() -> None:
    held = 2.0 + float(len("x"))  # 3.0, a float of its own
    counts = {"a": held, "b": 1.0 + 0.0}
    b_value = counts["b"]  # now held here too
    fold(counts, {"a": 1, "b": 1}, 0.0, 1.0, 10)
    assert (held, b_value) == (3.0, 1.0)
    assert counts == {"a": 4.0, "b": 2.0}


# (table, bucket terms, n, min_count, untracked, scale, denom): candidates' arguments
candidate_args = st.tuples(
    tables,
    buckets,
    st.integers(1, 60),
    st.integers(0, 4),
    st.floats(0.0, 20.0),
    st.floats(0.1, 2.0),
    st.floats(1.0, 500.0),
)


@settings(max_examples=400, deadline=None)
@given(candidate_args)
def test_candidates_are_the_terms_above_their_baseline_share(
    args: tuple[dict[str, float], dict[str, int], int, int, float, float, float],
) -> None:
    table, terms, n, min_count, untracked, scale, denom = args
    want = candidates_spec(*args)
    assert candidates(table, Counter(terms), n, min_count, untracked, scale, denom) == want


def test_bad_arguments_are_errors_not_garbage() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        fold({}, {"a": 1}, math.inf, 1.0, 3)
    with pytest.raises(ValueError, match="negative"):
        fold({}, {}, 0.0, 1.0, -2)  # before: read before the start of an empty array
    table = {"a": 1.0}
    with pytest.raises(TypeError):
        fold(table, {"a": "x"}, 0.0, 1.0, 3)  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        candidates(table, {"a": "x"}, 3, 1, 0.0, 1.0, 1.0)  # type: ignore[dict-item]
    with pytest.raises(OverflowError):
        fold(table, {"a": 10**400}, 0.0, 1.0, 3)  # an int no double holds
    with pytest.raises(OverflowError):
        candidates(table, {"a": 10**400}, 3, 1, 0.0, 1.0, 1.0)
    assert table == {"a": 1.0}
    with pytest.raises(ValueError, match="no shares"):
        candidates(table, {"a": 1}, 0, 1, 0.0, 1.0, 1.0)


def test_a_term_in_every_mention_has_the_exponent_of_its_exact_tail() -> None:
    # q = 1: P(X >= n) = s**n exactly, so D(1 || s) = log(1 / s); the skip bound
    # exp(-n D) / (n + 1) must stay below that tail, and the ranking must not inflate it
    _, [(d, c, s, _e, w)] = candidates({}, Counter({"recall": 10}), 10, 1, 0.0, 1.0, 10.0)
    assert (w, c, s) == ("recall", 10.0, 0.05)
    assert d == pytest.approx(math.log(1 / s), rel=1e-12)
    assert math.exp(-10 * d) / 11 <= s**10
