"""docs/config.md is the config models' own account of themselves, never stale."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from monitor.config import Config
from monitor.config.reference import reference, sections

ROOT = Path(__file__).resolve().parents[3]

Row = tuple[str, str, str]  # (key, accepts, what) of one table row


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells (a `|` inside a cell is written `\\|`)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def _tables(text: str) -> dict[str, list[Row]]:
    """Each `## ` heading of the reference -> the key rows of the table under it."""
    tables: dict[str, list[Row]] = {}
    rows: list[Row] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
            assert heading not in tables, f"two sections headed {heading!r}"
            rows = tables[heading] = []
        elif line.startswith("| `") and rows is not None:
            cells = _cells(line)
            # the default may hold a `|` of its own: key first, accepts and what last
            rows.append((cells[0].strip("`"), cells[-2], cells[-1]))
    return tables


def _heading(path: str) -> str:
    return f"`{path}`" if "`" not in path else path


def _sub_section(accepts: str) -> bool:
    """A row that points to a sub-section's own table (which says what its keys do)."""
    return accepts.startswith(("section, `", "list of sections, `")) and accepts.endswith(" below")


def test_docs_config_md_is_what_the_models_say() -> None:
    written = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert written == reference(Config), (
        "docs/config.md is stale: run `.venv/bin/python -m monitor.config.reference >"
        " docs/config.md`"
    )


def test_every_key_of_every_section_is_in_its_own_table() -> None:
    tables = _tables(reference(Config))
    expected: dict[str, type[BaseModel]] = {"Top level": Config}
    expected.update((_heading(p), m) for p, m in sections(Config))
    assert list(tables) == list(expected)
    for heading, model in expected.items():
        keys = [info.alias or name for name, info in model.model_fields.items()]
        assert [key for key, _, _ in tables[heading]] == keys, heading


def test_every_key_says_what_it_does() -> None:
    """Every leaf key's row has a "what" (its attribute docstring in the section module)."""
    tables = _tables(reference(Config))
    silent = [
        f"{heading}: {key}"
        for heading, rows in tables.items()
        for key, accepts, what in rows
        if not what and not _sub_section(accepts)
    ]
    assert not silent, f"keys without a docstring: {silent}"


def test_every_section_says_what_it_is() -> None:
    untold = [path for path, model in sections(Config) if not model.__dict__.get("__doc__")]
    assert not untold, f"sections without a class docstring: {untold}"


def test_the_table_parser_sees_an_empty_what_and_a_sub_section() -> None:
    text = (
        "## `a`\n\n| key | default | accepts | what |\n|---|---|---|---|\n"
        "| `x` | `1` | integer | |\n| `y` | (section) | section, `a.y` below | |\n"
        "| `z` | `a\\|b` | text | Says \\| what. |\n"
    )
    rows = _tables(text)["`a`"]
    assert rows == [
        ("x", "integer", ""),
        ("y", "section, `a.y` below", ""),
        ("z", "text", "Says \\| what."),
    ]
    assert [_sub_section(accepts) for _, accepts, _ in rows] == [False, True, False]


def test_the_keys_a_docs_audit_found_undocumented_say_what_they_do() -> None:
    """Twelfth session's docs audit: documented nowhere a user would look."""
    text = reference(Config)
    for key in ("bucket_seconds", "startup_hold_seconds", "samples_per_bucket",
                "language_boost", "batch_size", "max_terms", "level_halflife_seconds",
                "sentiment_weight", "terms_min_count", "sample_posts", "max_timeline",
                "timeout_seconds", "base_rate_per_minute", "wanted_dids",
                "http_timeout_seconds", "user_agent"):  # fmt: skip
        rows = [r for r in text.splitlines() if r.startswith(f"| `{key}` |")]
        assert rows and all(not r.endswith("| |") for r in rows), key
