"""``Retry-After``, read once for the collectors (a feed that asks to wait) and the notifiers
(a receiver that does)."""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime

#: The longest ``Retry-After`` a collector honours: a server asking for a day (or sending a
#: date years ahead) would otherwise silence a source for that long.
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_after_seconds(
    value: str | None, now: float, maximum: float = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from `now`, at most `maximum`;
    None when absent or unreadable (a non-finite number, a date that is none).

    >>> retry_after_seconds("120", 0.0), retry_after_seconds("Thu, 01 Jan 1970 00:01:00 GMT", 30.0)
    (120.0, 30.0)
    >>> retry_after_seconds("86400", 0.0), retry_after_seconds("-5", 0.0)
    (3600.0, 0.0)
    >>> [retry_after_seconds(v, 0.0) for v in (None, "", "soon", "1e999", "nan")]
    [None, None, None, None, None]
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(maximum, max(0.0, seconds))
