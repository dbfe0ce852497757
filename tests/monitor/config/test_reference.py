"""docs/config.md is the config models' own account of themselves, never stale."""

from __future__ import annotations

from pathlib import Path

from monitor.config import Config
from monitor.config.reference import reference, sections

ROOT = Path(__file__).resolve().parents[3]


def test_docs_config_md_is_what_the_models_say() -> None:
    written = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert written == reference(Config), (
        "docs/config.md is stale: run `.venv/bin/python -m monitor.config.reference >"
        " docs/config.md`"
    )


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = reference(Config)
    for path, model in sections(Config):
        assert f"{path}`" in text or path in text
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text


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
