"""Severity levels SEV1 (worst) .. SEV4 and how they map to scores and to PagerDuty.

>>> severity_from_score(0.97), severity_from_score(0.9), severity_from_score(0.75)
(1, 2, 3)
>>> severity_from_score(0.2)
4
>>> label(2), pagerduty_severity(2)
('SEV2', 'error')
>>> parse_severity("sev1"), parse_severity(3)
(1, 3)
"""

from __future__ import annotations

from typing import Final, Literal

PagerDutySeverity = Literal["critical", "error", "warning", "info"]

SEV1: Final = 1
SEV4: Final = 4

#: Scores at or above these open SEV1, SEV2, SEV3; the same defaults as detection uses.
DEFAULT_THRESHOLDS: Final = (0.95, 0.85, 0.7)

_PD: Final[dict[int, PagerDutySeverity]] = {
    1: "critical",
    2: "error",
    3: "warning",
    4: "info",
}


def severity_from_score(
    score: float, thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS
) -> int:
    """The severity a crisis score implies (used when a verdict carries none)."""
    for sev, cut in enumerate(thresholds, start=1):
        if score >= cut:
            return sev
    return SEV4


def clamp(severity: int) -> int:
    """Force any integer into 1..4.

    >>> clamp(0), clamp(7)
    (1, 4)
    """
    return min(SEV4, max(SEV1, int(severity)))


def label(severity: int) -> str:
    """``SEV1`` .. ``SEV4``."""
    return f"SEV{clamp(severity)}"


def pagerduty_severity(severity: int) -> PagerDutySeverity:
    """The PagerDuty Events API v2 ``payload.severity`` for a SEV level."""
    return _PD[clamp(severity)]


def parse_severity(value: str | int) -> int:
    """Accept ``SEV2``, ``sev2``, ``2`` or ``2``; raise ValueError on anything else.

    >>> parse_severity("SEV9")
    Traceback (most recent call last):
    ...
    ValueError: severity must be SEV1..SEV4, got 'SEV9'
    """
    text = str(value).strip().upper().removeprefix("SEV")
    if text in {"1", "2", "3", "4"}:
        return int(text)
    raise ValueError(f"severity must be SEV1..SEV4, got {value!r}")
