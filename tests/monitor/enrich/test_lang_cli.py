"""Language identification on short posts, and the `crisiswatch sentiment` command body."""

from __future__ import annotations

import io

import pytest

from monitor.enrich.cli import run_sentiment
from monitor.enrich.lang import LanguageDetector


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(("en", "de"))


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("@acme my order is broken, refund please", "en"),
        ("Acme hat schon wieder eine Störung, echt ärgerlich", "de"),
        ("Skandal bei #Globex: Rückruf aller Geräte", "de"),
        ("Le service client de Initech est vraiment nul aujourd'hui", "fr"),
        ("El servicio de Initech es terrible, quiero mi dinero", "es"),
        ("👍👍 https://t.co/abc", "und"),
    ],
)
def test_detect(detector: LanguageDetector, text: str, lang: str) -> None:
    assert detector.detect(text) == lang


def test_cli_keeps_order_and_count() -> None:
    lines = [
        "I love this, thank you!",
        "",
        "Totaler Skandal, alles kaputt",
        "Acme announces quarterly results on Tuesday",
    ] * 300
    out = io.StringIO()
    assert run_sentiment("auto", io.StringIO("\n".join(lines) + "\n"), out) == 0
    rows = [r.split("\t") for r in out.getvalue().splitlines()]
    assert len(rows) == len(lines)
    assert [r[0] for r in rows[:4]] == ["positive", "neutral", "negative", "neutral"]
    assert all(-1.0 <= float(r[1]) <= 1.0 for r in rows)
