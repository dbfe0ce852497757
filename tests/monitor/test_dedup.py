"""The pipeline's dedup window: exactly the newest `capacity` distinct keys are remembered."""

from __future__ import annotations

from monitor.dedup import Dedup


def test_the_window_holds_the_newest_distinct_keys_as_it_wraps_around() -> None:
    d = Dedup(capacity=3)
    fresh = [d.first(("s", str(i))) for i in range(10)]
    assert fresh == [True] * 10 and len(d) == 3
    # a repeat takes no slot: the window still holds 7, 8, 9
    assert not d.first(("s", "9"))
    assert [d.first(("s", str(i))) for i in (7, 8, 9)] == [False, False, False]
    assert d.first(("s", "6"))  # forgotten; now remembered again, and 7 is the oldest
    assert d.first(("s", "7")) and not d.first(("s", "6"))


def test_source_and_id_both_make_the_key() -> None:
    d = Dedup()
    assert d.first(("mqtt", "1")) and d.first(("http", "1"))
    assert d.first(("mqtt", "1\x00")) and not d.first(("mqtt", "1"))


def test_a_restored_window_remembers_the_same_keys_in_the_same_order() -> None:
    d = Dedup(capacity=5)
    for i in range(12):  # wrapped around twice: the window holds 7..11, 7 the oldest
        d.first(("s", str(i)))
    e = Dedup.restore(d.snapshot(), capacity=5)
    assert len(e) == 5 and [e.first(("s", str(i))) for i in range(7, 12)] == [False] * 5
    assert e.first(("s", "12")) and e.first(("s", "7"))  # 12 pushed out 7, the oldest
    small = Dedup.restore(d.snapshot(), capacity=2)  # a smaller window keeps the newest
    assert [small.first(("s", str(i))) for i in (10, 11, 9)] == [False, False, True]
    assert len(Dedup.restore(b"", capacity=5)) == 0


def test_membership_does_not_remember() -> None:
    d = Dedup(capacity=3)
    assert ("s", "1") not in d and ("s", "1") not in d
    assert d.first(("s", "1")) and ("s", "1") in d and len(d) == 1
