"""The C term table (detectors/_termtable.c) against its definition on a dict, written plainly."""

from __future__ import annotations

import copy
import math
import pickle
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._termtable import TermTable


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


def as_table(counts: dict[str, float]) -> TermTable:
    return TermTable(list(counts), list(counts.values()))


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
    got = as_table(table)
    assert got.fold(Counter(terms), bound, grow, max_tracked) == cut
    assert got.items() == list(expected.items())  # same entries, same order
    assert all(got.get(w) == v for w, v in expected.items()) and len(got) == len(expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(buckets, st.integers(0, 35)), max_size=30))
def test_a_table_folded_many_times_stays_the_dict_it_stands_for(
    steps: list[tuple[dict[str, int], int]],
) -> None:
    # the index is rebuilt as the table grows, evicts and shrinks: lookups must keep working
    spec: dict[str, float] = {}
    table = TermTable()
    bound = 0.0
    for terms, max_tracked in steps:
        cut = fold_spec(spec, terms, bound, 1.5, max_tracked)
        assert table.fold(terms, bound, 1.5, max_tracked) == cut
        bound = max(bound, cut)
        assert table.items() == list(spec.items())
    assert all(table.get(w) == v for w, v in spec.items())
    assert table.get("never seen") is None and table.get("never seen", 0.0) == 0.0


def test_a_table_pickles_copies_and_rescales_in_order() -> None:
    table = as_table({"b": 2.0, "a": 1.0, "c": 8.0})
    for again in (pickle.loads(pickle.dumps(table)), copy.deepcopy(table)):
        assert again.items() == [("b", 2.0), ("a", 1.0), ("c", 8.0)]
        again.fold({"a": 1}, 0.0, 1.0, 10)
    assert table.get("a") == 1.0  # the copies are independent
    table.rescale(4.0)
    assert table.items() == [("b", 0.5), ("a", 0.25), ("c", 2.0)]
    assert table.__sizeof__() > object().__sizeof__()


def test_a_checkpoint_cannot_build_a_broken_table() -> None:
    # unpickling a checkpoint calls TermTable(keys, values) with what the store holds
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        TermTable(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="appears twice"):
        TermTable(["a", "a"], [1.0, 2.0])
    with pytest.raises(TypeError, match="must be a str"):
        TermTable([b"a"], [1.0])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        TermTable(["a"], ["x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence"):
        TermTable(["a"])


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
    got = as_table(table).candidates(Counter(terms), n, min_count, untracked, scale, denom)
    assert got == want


def test_bad_arguments_are_errors_not_garbage() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        TermTable().fold({"a": 1}, math.inf, 1.0, 3)
    with pytest.raises(ValueError, match="negative"):
        TermTable().fold({}, 0.0, 1.0, -2)
    table = as_table({"a": 1.0})
    with pytest.raises(TypeError):
        table.fold({"a": "x"}, 0.0, 1.0, 3)  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        table.candidates({"a": "x"}, 3, 1, 0.0, 1.0, 1.0)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="must be a str"):
        table.fold({1: 1}, 0.0, 1.0, 3)  # type: ignore[dict-item]
    with pytest.raises(OverflowError):
        table.fold({"a": 10**400}, 0.0, 1.0, 3)  # an int no double holds
    with pytest.raises(OverflowError):
        table.candidates({"a": 10**400}, 3, 1, 0.0, 1.0, 1.0)
    assert table.items() == [("a", 1.0)]
    with pytest.raises(ValueError, match="no shares"):
        table.candidates({"a": 1}, 0, 1, 0.0, 1.0, 1.0)


def test_a_term_in_every_mention_has_the_exponent_of_its_exact_tail() -> None:
    # q = 1: P(X >= n) = s**n exactly, so D(1 || s) = log(1 / s); the skip bound
    # exp(-n D) / (n + 1) must stay below that tail, and the ranking must not inflate it
    _, [(d, c, s, _e, w)] = TermTable().candidates(Counter({"recall": 10}), 10, 1, 0.0, 1.0, 10.0)
    assert (w, c, s) == ("recall", 10.0, 0.05)
    assert d == pytest.approx(math.log(1 / s), rel=1e-12)
    assert math.exp(-10 * d) / 11 <= s**10
