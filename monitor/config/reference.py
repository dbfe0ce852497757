"""The config reference (docs/config.md), generated from the typed tree itself.

Every key, its default, what it accepts and, from the key's docstring in its section module,
what it does: written by hand it went stale key by key (a docs audit found 30 keys documented
nowhere a user would look). ``python -m monitor.config.reference > docs/config.md`` rewrites
it; a test fails while the file and the models disagree.

>>> from monitor.config.system import ServerConfig
>>> print(section_table(ServerConfig, "server").splitlines()[3])
| `port` | `8080` | integer, ≥ 0, ≤ 65535 | Port to listen on; 0 takes any free port (tests). |
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

#: Where each top-level section is explained in prose.
DOCS = {
    "topics": "docs/queries.md",
    "sources": "docs/collectors.md",
    "enrichment": "docs/sentiment.md, docs/queries.md",
    "aggregation": "README.md (Configuration), docs/collectors.md",
    "detection": "docs/detection.md",
    "alerting": "docs/alerting.md",
    "delivery": "docs/delivery.md",
    "storage": "docs/delivery.md (Store)",
    "server": "docs/wall.md",
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation holds (``list[X]``, ``X | None``, a union of X, Y)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def accepts(annotation: Any, info: FieldInfo | None = None) -> str:
    """What a key takes, in words.

    >>> accepts(float), accepts(Literal["count", "hst"]), accepts(list[str] | None)
    ('number', '`count` or `hst`', 'list of text, or null')
    >>> from pydantic import Field
    >>> from pydantic.fields import FieldInfo
    >>> accepts(float, FieldInfo.merge_field_infos(Field(gt=0, le=1)))
    'number, > 0, ≤ 1'
    """
    words = _words(annotation)
    bounds = [_bound(m) for m in (info.metadata if info is not None else [])]
    return ", ".join([words, *(b for b in bounds if b)])


def _words(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Annotated:
        return _words(args[0])
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        text = " or ".join(_words(a) for a in rest)
        return f"{text}, or null" if len(rest) < len(args) else text
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_words(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_words(args[0])} to {_words(args[1])}"
    names = {bool: "true/false", int: "integer", float: "number", str: "text"}
    if t in names:
        return names[t]
    return getattr(t, "__name__", str(t))


#: annotated_types constraint -> (its attribute, how a reader says it)
_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (at.Ge, "ge", "≥ {}"), (at.Gt, "gt", "> {}"), (at.Le, "le", "≤ {}"), (at.Lt, "lt", "< {}"),
    (at.MinLen, "min_length", "at least {} long"), (at.MaxLen, "max_length", "at most {} long"),
)  # fmt: skip


def _bound(m: object) -> str:
    for kind, attr, words in _BOUNDS:
        if isinstance(m, kind):
            return words.format(_number(getattr(m, attr)))
    return ""


def _number(v: object) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def shown(info: FieldInfo) -> str:
    """The default as YAML would spell it, ``required`` when there is none.

    >>> from pydantic import Field
    >>> from pydantic.fields import FieldInfo
    >>> shown(FieldInfo.merge_field_infos(Field(default=86_400.0)))
    '`86400`'
    >>> shown(FieldInfo.merge_field_infos(Field(default=(0.6, 1.0)))), shown(FieldInfo())
    ('`[0.6, 1]`', 'required')
    """
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"({len(value)} built in)"
    return f"`{_yaml(value)}`"


def _yaml(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _number(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml(x)}" for k, x in v.items()) + "}"
    if isinstance(v, str) and (v == "" or v.strip() != v or ": " in v):
        return json.dumps(v)
    return str(v)


def _what(info: FieldInfo) -> str:
    # the docstring's first paragraph, on one line: a table cell holds no line breaks
    text = (info.description or "").split("\n\n")[0].replace("``", "`")
    return " ".join(text.replace("|", "\\|").split())


def section_table(model: type[BaseModel], path: str) -> str:
    """One section's keys as a Markdown table (sub-sections get tables of their own)."""
    rows = ["| key | default | accepts | what |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        subs = _models(info.annotation)
        if subs:
            many = typing.get_origin(info.annotation) in (list, tuple)
            where = f"`{path}.{key}" if path else f"`{key}"
            where += "[]`" if many else "`"
            kind = "list of sections" if many else "section"
            rows.append(f"| `{key}` | {shown(info)} | {kind}, {where} below | {_what(info)} |")
            continue
        what = _what(info)
        rows.append(f"| `{key}` | {shown(info)} | {accepts(info.annotation, info)} | {what} |")
    return "\n".join(row.replace("|  |", "| |").rstrip() for row in rows)


def sections(model: type[BaseModel], path: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """Every (path, section model) under `model`, depth first, each model once per path."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        many = typing.get_origin(info.annotation) in (list, tuple)
        sub_path = f"{path}.{key}" if path else key
        if many:
            sub_path += "[]"
        subs = _models(info.annotation)
        for sub in subs:
            kind = sub.model_fields.get("type")
            label = sub_path
            if len(subs) > 1 and kind is not None:
                label = f"{sub_path} with `type: {typing.get_args(kind.annotation)[0]}`"
            if sub is model:  # a route's routes: the same keys again
                continue
            yield label, sub
            yield from sections(sub, sub_path)


def reference(model: type[BaseModel]) -> str:
    """docs/config.md for the config tree rooted at `model`."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the config models (`python -m monitor.config.reference >"
        " docs/config.md`; a test keeps it current). Keys are YAML keys; durations are seconds;"
        " a secret is never a value here: `*_env` keys name the environment variable that holds"
        " it. Unknown keys are errors, and every error names the key's path and value. The"
        " prose on each section is in the document named under its heading.",
        "",
        "## Top level",
        "",
        section_table(model, ""),
    ]
    for path, sub in sections(model):
        top = path.split(".")[0].split("[")[0]
        out += ["", f"## `{path}`" if "`" not in path else f"## {path}", ""]
        own = sub.__dict__.get("__doc__")  # the section's own docstring, not an inherited one
        if own:
            out += [" ".join(own.split("\n\n")[0].replace("``", "`").split()), ""]
        if "." not in path and top in DOCS:
            out += [f"Explained in {DOCS[top]}.", ""]
        out.append(section_table(sub, path.split(" ")[0]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    from monitor.config import Config

    print(reference(Config), end="")
