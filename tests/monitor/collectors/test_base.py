"""SourceHealth: what /healthz, the metrics and the wall say about a source."""

from __future__ import annotations

from monitor.collectors.base import SourceHealth


def test_health_tracks_lag_and_a_future_dated_item_does_not_hide_it() -> None:
    h = SourceHealth("rss", "rss")
    h.seen(event_time=900.0, now=1000.0)
    assert h.lag(1000.0) == 100.0 and h.events == 1
    h.seen(event_time=4_000_000_000.0, now=1010.0)  # a feed with a wrong clock
    assert h.last_event_time == 1010.0
    assert h.lag(1070.0) == 60.0  # silent for a minute shows as a minute behind
    h.seen(event_time=950.0, now=1080.0)  # an older one never moves it back
    assert h.last_event_time == 1010.0 and h.expected_interval is not None


def test_a_polled_source_is_stale_only_after_missing_a_few_polls() -> None:
    """RSS at its defaults (300 s polls, 60 s floor) went stale 61 s after every good poll:
    a poll's items arrive back to back, so the learned interval was ~0, and a poll that
    brought nothing new (a 304) was no sign of life (QA, twelfth session)."""
    h = SourceHealth("rss", "rss", poll_interval=300.0)
    for _ in range(3):
        h.seen(event_time=990.0, now=1000.0)  # one poll's items
    h.alive(1000.0)
    assert not h.stale(1061.0)
    for t in range(1300, 7300, 300):  # 304s: nothing new, but the feed answers
        h.alive(float(t))
        assert not h.stale(t + 299.0)
    assert h.lag(7000.0) == 6010.0 and h.events == 3  # lag and events are items only
    assert not h.stale(7000.0 + 3 * 300.0) and h.stale(7000.0 + 3 * 300.0 + 1)


def test_a_fast_poll_does_not_flap_and_the_floor_still_holds() -> None:
    h = SourceHealth("rss", "rss", poll_interval=30.0)
    h.seen(event_time=0.0, now=0.0)
    for t in range(0, 3600, 30):  # the feed answers every 30 s, nothing new after the first
        h.alive(float(t))
        assert not h.stale(t + 29.0) and not h.stale(t + 61.0)
    assert h.stale(3570.0 + 91.0)  # three polls missed (90 s > the 60 s floor)
