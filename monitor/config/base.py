"""Shared base for every config section: strict (unknown keys are errors), frozen, typed."""

from __future__ import annotations

import re
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


# PyYAML follows YAML 1.1: a float needs a dot and a signed exponent (``1.0e+4``), so ``1e4``
# is text; and unquoted yes/no/on/off (any case) are booleans
_YAML11_EXP = re.compile(r"^([-+]?)([0-9][0-9_]*)(?:\.([0-9_]*))?[eE]([-+]?)([0-9]+)$")

BOOL_HINT = "YAML reads unquoted no/off as false and yes/on as true"


def yaml_number_hint(text: str) -> str | None:
    """How to write ``text`` so that YAML reads it as a number, when it means one, else None.

    >>> yaml_number_hint("1e4")
    'YAML reads 1e4 as text; write 10000 or 1.0e+4'
    >>> yaml_number_hint("2.5E-3")
    'YAML reads 2.5E-3 as text; write 0.0025 or 2.5e-3'
    >>> yaml_number_hint("7200") is None, yaml_number_hint("soon") is None
    (True, True)
    """
    m = _YAML11_EXP.match(text.strip())
    if m is None:
        return None
    sign, whole, frac, esign, exp = m.groups()
    try:
        number = float(text.replace("_", ""))
    except ValueError:  # pragma: no cover - the pattern only matches floats
        return None
    plain = repr(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    written = f"{sign}{whole}.{frac or '0'}e{esign or '+'}{exp}".replace("_", "")
    return f"YAML reads {text.strip()} as text; write {plain} or {written}"


def _misfit(kind: Kind, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` as written, or None: lax pydantic would read ``true``
    as 1 and ``"7200"`` as 7200; a config means what it says. YAML 1.1's own surprises
    (``1e4`` is text, ``no`` is false) are explained, since the file did not say ``"1e4"``.

    >>> _misfit("number", "1e4")
    'expected a number: YAML reads 1e4 as text; write 10000 or 1.0e+4'
    >>> _misfit("number", False)
    'expected a number (got false)'
    >>> _misfit("bool", "off"), _misfit("number", 3.0)
    ("expected true or false (got 'off')", None)
    """
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as YAML writes it
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected true or false (got {shown})"
    if isinstance(value, str) and (hint := yaml_number_hint(value)):
        return f"expected a number: {hint}"
    if isinstance(value, bool | str):  # `port: no` needs no hint: quoting would not help
        return f"expected a number (got {shown})"
    return None


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_A_NAME = "must name an environment variable (letters, digits, _), not hold the secret itself"
LOOKS_SECRET = (
    "looks like a secret, not the name of an environment variable: put the value in the "
    "environment and name the variable here"
)


def env_name_error(value: object) -> str | None:
    """Why ``value`` cannot be the name of an environment variable, or None. The reason never
    quotes the value: a secret pasted into an ``*_env`` key must not reach a log.

    >>> env_name_error("CW_PD_ROUTING_KEY") is None, env_name_error("pd_key_2") is None
    (True, True)
    >>> env_name_error("e93facc04764012d7bfb002500d5d1a6")
    'looks like a secret, not the name of an environment variable: ...'
    >>> env_name_error("xoxb-123-abc")
    'must name an environment variable (letters, digits, _), not hold the secret itself'
    """
    if not isinstance(value, str) or not ENV_NAME.match(value):
        return NOT_A_NAME
    for part in value.split("_"):
        # names are words (CW_SMTP_PASSWORD, TOKEN_2); keys and tokens are long runs of
        # hex or base64 with digits in them
        if len(part) >= 32 or (
            len(part) >= 16 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
        ):
            return LOOKS_SECRET
    return None


def _origin(annotation: Any) -> Any:
    origin = get_origin(annotation)
    return _origin(get_args(annotation)[0]) if origin is Annotated else origin


def _is_list_or_dict(annotation: Any) -> bool:
    return _origin(annotation) in (list, dict)


def _is_dict(annotation: Any) -> bool:
    return _origin(annotation) is dict


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
    def _null_lists_are_empty(cls, data: Any) -> Any:
        """A list (or mapping) whose entries are all commented out reads as null in YAML. Where
        empty is the default, null means just that; where it is not (a list that needs an entry,
        or one whose default is the built-in demo), null is an error that says what happened."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key not in data or data[key] is not None or not _is_list_or_dict(field.annotation):
                continue
            if field.is_required():
                # a required key left empty is more likely a slip than a wish for none
                needs_one = any(getattr(m, "min_length", 0) for m in field.metadata)
                empty = "{}" if _is_dict(field.annotation) else "[]"
                hint = "" if needs_one else f", or write {empty} for none"
                raise at(key, f"empty: give at least one entry{hint}")
            if len(field.get_default(call_default_factory=True)) == 0:
                del out[key]  # the default
            else:
                raise at(key, "empty: give at least one entry or remove the key")
        return out

    @model_validator(mode="before")
    @classmethod
    def _env_names(cls, data: Any) -> Any:
        """Every ``*_env`` key names an environment variable; one that holds a secret instead
        is an error that does not repeat it."""
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if (
                key.endswith("_env")
                and data.get(key) is not None
                and (why := env_name_error(data[key]))
            ):
                raise at(key, why)
        return data

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
