"""Shared base for every config section: strict (unknown keys are errors), frozen, typed."""

from __future__ import annotations

import re
import types
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
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


def _yaml_reads_number(text: str, number: float) -> bool:
    """Whether ``yaml.safe_load`` reads ``text`` as ``number`` (a number, not text or a bool)."""
    value = yaml.safe_load(text)
    return isinstance(value, int | float) and not isinstance(value, bool) and value == number


def yaml_number_hint(text: str) -> str | None:
    """How to write ``text`` so that YAML reads it as a number, when it means one, else None.
    Every spelling offered is one ``yaml.safe_load`` reads as that number (Python's own
    ``5e-05`` or ``1e+20`` are text to it, too).

    >>> yaml_number_hint("1e4")
    'YAML reads 1e4 as text; write 10000 or 1.0e+4'
    >>> yaml_number_hint("25E-4")
    'YAML reads 25E-4 as text; write 0.0025 or 25.0e-4'
    >>> yaml_number_hint("5e-05")
    'YAML reads 5e-05 as text; write 0.00005 or 5.0e-05'
    >>> yaml_number_hint("1e20")
    'YAML reads 1e20 as text; write 1.0e+20'
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
    if _yaml_reads_number(text, number):  # 1.0e+4: YAML read it as a number, nothing to explain
        return None
    if number.is_integer() and abs(number) < 1e15:
        plain = str(int(number))
    else:  # positional, never Python's exponent form (1e-07), which YAML reads as text
        plain = format(Decimal(repr(number)), "f")
    written = f"{sign}{whole}.{frac or '0'}e{esign or '+'}{exp}".replace("_", "")
    # a plain spelling with a long run of zeros is harder to check than the exponent form
    forms = [plain] if len(plain) <= 16 else []
    forms = [f for f in (*forms, written) if _yaml_reads_number(f, number)]
    if not forms:  # pragma: no cover - `written` always has YAML 1.1's dot and signed exponent
        return None
    return f"YAML reads {text.strip()} as text; write {' or '.join(dict.fromkeys(forms))}"


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
_HEX_KEY = re.compile(r"^(?=.*[0-9])(?:[0-9a-f]{20,}|[0-9A-F]{20,})$")


def _looks_like_a_key(part: str) -> bool:
    """Whether one ``_``-separated part of a name looks like a key rather than a word: 20 or
    more hex digits (a PagerDuty routing key), or 24 or more characters with at least 3 digits
    in them (a base64/base62 token has about one digit in six characters; words, however long
    or run together, like MICROSOFT365SMTP or PagerDutyRoutingKey1, have few).

    >>> _looks_like_a_key("e93facc04764012d7bfb002500d5d1a6"), _looks_like_a_key("MICROSOFT365SMTP")
    (True, False)
    """
    return bool(_HEX_KEY.match(part)) or (len(part) >= 24 and sum(c.isdigit() for c in part) >= 3)


def env_name_error(value: object) -> str | None:
    """Why ``value`` cannot be the name of an environment variable, or None. The reason never
    quotes the value: a secret pasted into an ``*_env`` key must not reach a log.

    >>> env_name_error("CW_PD_ROUTING_KEY") is None, env_name_error("pd_key_2") is None
    (True, True)
    >>> env_name_error("APPSETTING_PagerDutyRoutingKey1") is None
    True
    >>> env_name_error("e93facc04764012d7bfb002500d5d1a6")
    'looks like a secret, not the name of an environment variable: ...'
    >>> env_name_error("xoxb-123-abc")
    'must name an environment variable (letters, digits, _), not hold the secret itself'
    """
    if not isinstance(value, str) or not ENV_NAME.match(value):
        return NOT_A_NAME
    if any(_looks_like_a_key(part) for part in value.split("_")):
        return LOOKS_SECRET
    return None


_CONVENTIONAL_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
UNNAMED_VARIABLE = "the variable this key names"


def env_var(name: str) -> str:
    """How a message refers to variable ``name``: by name when it looks like a conventional
    variable name (``CW_SMTP_PASSWORD``), else as :data:`UNNAMED_VARIABLE`, since what an
    ``*_env`` key holds may be a short secret pasted there (``hunter2``), which passes
    :func:`env_name_error` but must not reach a log.

    >>> env_var("CW_SMTP_PASSWORD")
    'environment variable CW_SMTP_PASSWORD'
    >>> env_var("hunter2"), env_var("Tr0ub4dor_and_3")
    ('the variable this key names', 'the variable this key names')
    """
    if _CONVENTIONAL_NAME.match(name) and env_name_error(name) is None:
        return f"environment variable {name}"
    return UNNAMED_VARIABLE


def _optional(annotation: Any) -> bool:
    """Whether a field's annotation admits None (``str | None``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _optional(get_args(annotation)[0])
    return origin in (Union, types.UnionType) and type(None) in get_args(annotation)


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
    # attribute docstrings become the keys' descriptions: docs/config.md is made from them
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
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
            needs_one = any(getattr(m, "min_length", 0) for m in field.metadata)
            empty = "{}" if _is_dict(field.annotation) else "[]"
            if field.is_required():
                # a required key left empty is more likely a slip than a wish for none
                hint = "" if needs_one else f", or write {empty} for none"
                raise at(key, f"empty: give at least one entry{hint}")
            if len(field.get_default(call_default_factory=True)) == 0:
                del out[key]  # the default
            elif needs_one:
                raise at(key, "empty: give at least one entry or remove the key")
            else:
                # removing the key brings back a default that may not fit (the demo's team
                # names the demo's users): none is written as an empty list
                raise at(
                    key,
                    f"empty: give at least one entry, write {empty} for none, "
                    "or remove the key for the default",
                )
        return out

    @model_validator(mode="before")
    @classmethod
    def _env_names(cls, data: Any) -> Any:
        """Every ``*_env`` key names an environment variable; one that holds a secret instead
        is an error that does not repeat it. An empty one means none where none is allowed
        (``password_env: ""``, as null), and is an error where a variable is needed."""
        if not isinstance(data, dict):
            return data
        out = data
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if not key.endswith("_env") or data.get(key) is None:
                continue
            if data[key] == "":
                if _optional(field.annotation):
                    # `password_env: ""` has always meant "no credential", like null
                    out = {**out, key: None}
                    continue
                raise at(key, "empty: name the environment variable that holds the secret")
            if why := env_name_error(data[key]):
                raise at(key, why)
        return out

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
