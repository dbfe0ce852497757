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
