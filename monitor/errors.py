"""One exception tree. Errors carry data; retry logic reads `recoverable`, never the text."""

from __future__ import annotations

from typing import Any


class CrisiswatchError(Exception):
    """Base of every error the service raises on purpose."""

    recoverable: bool = False


class ConfigError(CrisiswatchError):
    """A config value is wrong. `str()` is one line: ``path: reason (got value)``.

    >>> str(ConfigError("topics[1].query", "unbalanced parenthesis at column 14"))
    'topics[1].query: unbalanced parenthesis at column 14'
    """

    def __init__(self, path: str, reason: str, value: Any = None) -> None:
        self.path, self.reason, self.value = path, reason, value
        if value is None:
            super().__init__(f"{path}: {reason}")
            return
        shown = repr(value)
        if len(shown) > 200:  # one line a person reads, whatever the value holds
            shown = f"{shown[:160]}... ({len(shown)} characters)"
        super().__init__(f"{path}: {reason} (got {shown})")


class DecodeError(CrisiswatchError):
    """An input could not become a mention; it goes to the dead-letter store with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class QuerySyntaxError(CrisiswatchError):
    """A topic query does not parse; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        self.message, self.column = message, column
        super().__init__(f"{message} at column {column}")


class DeliveryError(CrisiswatchError):
    """A notification or publish failed; `recoverable` says whether a retry can help."""

    def __init__(self, target: str, reason: str, *, recoverable: bool, status: int | None = None):
        self.target, self.reason, self.status = target, reason, status
        self.recoverable = recoverable
        super().__init__(f"{target}: {reason}")
