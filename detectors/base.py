"""The detector protocol: river style ``score_one`` then ``learn_one``, cloned per series.

A detector is constructed once from config (the *prototype*); every series gets its own
``clone()`` so state never leaks between series. ``score_one(bucket)`` judges a bucket
against what was learned so far and returns a signal in [0, 1]; ``learn_one(bucket)`` then
folds the bucket into the state. ``details()`` describes the last scored bucket for the
explanation. ``warm`` is False until the detector has seen enough history to be trusted.

>>> from monitor.model import Bucket
>>> d = Constant(0.25)
>>> d2 = d.clone()
>>> d2.score_one(Bucket("s", 0.0, 60.0)), d2.warm
(0.25, True)
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from monitor.model import Bucket


@runtime_checkable
class Detector(Protocol):
    """One signal of one series."""

    name: str

    @property
    def warm(self) -> bool: ...

    @property
    def warm_at(self) -> float:
        """Event time from which the detector is warm at the earliest (inf before any data)."""
        ...

    def score_one(self, bucket: Bucket) -> float: ...

    def learn_one(self, bucket: Bucket) -> None: ...

    def details(self) -> dict[str, Any]: ...

    def clone(self) -> Self: ...


class Constant:
    """A detector that always says the same thing (tests, and a null baseline)."""

    __slots__ = ("name", "value")
    SETTINGS = ("value",)

    def __init__(self, value: float = 0.0, name: str = "constant") -> None:
        self.value, self.name = value, name

    @property
    def warm(self) -> bool:
        return True

    @property
    def warm_at(self) -> float:
        return -math.inf

    def score_one(self, bucket: Bucket) -> float:
        return self.value

    def learn_one(self, bucket: Bucket) -> None:
        return None

    def details(self) -> dict[str, Any]:
        return {}

    def clone(self) -> Self:
        return copy.copy(self)


T = TypeVar("T")


def adopt_settings(state: T, prototype: T) -> tuple[T, bool]:
    """``state``, learned earlier (restored from a checkpoint), run with ``prototype``'s settings.

    A restored series must follow the *current* config: an operator who raises a threshold
    expects it to apply to every series, not only to new ones. Classes name their
    ``SETTINGS`` (may change under learned state) and their ``LAYOUT`` (the learned state is
    shaped by them: other scales, another bucket slot length). When the layout differs, or
    the class does, the learned state cannot be carried over and a fresh clone of the
    prototype is returned instead; the flag says so.

    >>> old, new = Constant(0.25), Constant(0.5)
    >>> adopted, fresh = adopt_settings(old, new)
    >>> adopted is old, adopted.value, fresh
    (True, 0.5, False)
    """
    if type(state) is not type(prototype) or any(
        getattr(state, a) != getattr(prototype, a) for a in getattr(prototype, "LAYOUT", ())
    ):
        return copy.deepcopy(prototype), True
    for a in getattr(prototype, "SETTINGS", ()):
        setattr(state, a, copy.copy(getattr(prototype, a)))
    changed = getattr(state, "settings_changed", None)
    if changed is not None:
        changed()
    return state, False


def halflife_alpha(step: float, halflife: float) -> float:
    """EWMA weight for one step of ``step`` seconds when memory halves every ``halflife``.

    >>> round(halflife_alpha(300, 300), 3)
    0.5
    >>> halflife_alpha(60, 1e12) < 1e-9
    True
    """
    return 1.0 - math.pow(0.5, step / halflife)
