"""Shared base for every config section: strict (unknown keys are errors), frozen, typed."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator


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
