"""`enrichment.languages`: codes language ID knows, checked when the config is."""

from __future__ import annotations

import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from monitor.config import parse_config
from monitor.config.enrichment import LANGUAGE_ID_CODES
from monitor.errors import ConfigError

TOPICS = [{"name": "acme", "query": "acme"}]


def test_the_code_list_is_language_ids() -> None:
    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    assert {str(c) for c in ident.nb_classes} == LANGUAGE_ID_CODES


def test_an_unknown_language_is_an_error_naming_path_and_value() -> None:
    """QA: ``languages: [en, de, fr, xx, klingon]`` passed check-config, preferred in vain."""
    data = {"topics": TOPICS, "enrichment": {"languages": ["en", "de", "fr", "xx", "klingon"]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert str(err.value).startswith("enrichment.languages[3]: not a language")
    assert str(err.value).endswith("(got 'xx')")


def test_known_languages_pass() -> None:
    config = parse_config({"topics": TOPICS, "enrichment": {"languages": ["fr", "es", "de"]}})
    assert config.enrichment.languages == ["fr", "es", "de"]
