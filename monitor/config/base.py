"""Shared base for every config section: strict (unknown keys are errors), frozen, typed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # `.inf` / `.nan` pass every bound check and then break arithmetic (a bucket of
    # infinite width, a NaN window); no setting means them
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


def at(path: str, reason: str) -> ValueError:
    """An error for a validator that knows a more precise path than the field it sits on.

    ``raise at("routes[2].receiver", 'undefined receiver "sre-pager"')`` in a validator of the
    ``alerting`` section is reported as ``alerting.routes[2].receiver: undefined receiver ...``.
    """
    return ValueError(f"@{path}: {reason}")
