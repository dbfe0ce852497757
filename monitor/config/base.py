"""Shared base for every config section: strict (unknown keys are errors), frozen, typed."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

Kind = Literal["number", "bool"]


def scalar_kind(annotation: Any) -> Kind | None:
    """``number`` for int/float fields, ``bool`` for bool ones (through Optional and Annotated).

    >>> scalar_kind(float), scalar_kind(int | None), scalar_kind(bool), scalar_kind(str)
    ('number', 'number', 'bool', None)
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        return scalar_kind(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds = {scalar_kind(a) for a in get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    return None


def _element_kind(annotation: Any) -> Kind | None:
    """The kind of a homogeneous tuple's or list's elements (``tuple[float, ...]``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _element_kind(get_args(annotation)[0])
    if origin in (tuple, list):
        kinds = {scalar_kind(a) for a in get_args(annotation) if a is not Ellipsis}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def _misfit(kind: Kind, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` as written, or None: lax pydantic would read ``true``
    as 1 and ``"7200"`` as 7200; a config means what it says."""
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as YAML writes it
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected true or false (got {shown})"
    if isinstance(value, bool | str):
        return f"expected a number (got {shown})"
    return None


class Section(BaseModel):
    # `.inf` / `.nan` pass every bound check and then break arithmetic (a bucket of
    # infinite width, a NaN window); no setting means them
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _null_sections_are_defaults(cls, data: Any) -> Any:
        """A sub-section whose keys are all commented out reads as null in YAML: it means the
        section's defaults, as if absent (a required key left null stays an error)."""
        if not isinstance(data, dict):
            return data
        drop: set[str] = set()
        for name, field in cls.model_fields.items():
            key = field.alias or name
            ann = field.annotation
            if (
                key in data
                and data[key] is None
                and not field.is_required()
                and isinstance(ann, type)
                and issubclass(ann, Section)
            ):
                drop.add(key)
        return {k: v for k, v in data.items() if k not in drop} if drop else data

    @model_validator(mode="before")
    @classmethod
    def _values_as_written(cls, data: Any) -> Any:
        """Numbers and booleans must be written as such (see :func:`_misfit`)."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key not in data or data[key] is None:
                continue
            value = data[key]
            kind = scalar_kind(field.annotation)
            if kind is not None and (why := _misfit(kind, value)):
                raise at(key, why)
            kind = _element_kind(field.annotation)
            if kind is not None and isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if why := _misfit(kind, item):
                        raise at(f"{key}[{i}]", why)
        return data


def at(path: str, reason: str) -> ValueError:
    """An error for a validator that knows a more precise path than the field it sits on.

    ``raise at("routes[2].receiver", 'undefined receiver "sre-pager"')`` in a validator of the
    ``alerting`` section is reported as ``alerting.routes[2].receiver: undefined receiver ...``.
    """
    return ValueError(f"@{path}: {reason}")


def _severity_cuts(s: tuple[float, float, float]) -> tuple[float, float, float]:
    if not s[0] >= s[1] >= s[2]:
        # ascending cuts would make every score over the lowest one a SEV1, which breaks
        # through everybody's quiet hours
        raise ValueError(f"must be descending (SEV1 first), got {list(s)}")
    if not all(0.0 < x <= 1.0 for x in s):
        # scores are in [0, 1]: percent-style cuts (95, 85, 70) would never be reached
        raise ValueError(f"scores are in [0, 1], got {list(s)}")
    return s


SeverityCuts = Annotated[tuple[float, float, float], AfterValidator(_severity_cuts)]
"""Crisis scores at or above these map to SEV1, SEV2, SEV3 (descending, within (0, 1])."""
