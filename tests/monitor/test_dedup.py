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
