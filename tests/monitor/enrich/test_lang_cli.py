"""Language identification on short posts, and the `crisiswatch sentiment` command body."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Sequence

import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from monitor.enrich.cli import run_sentiment
from monitor.enrich.lang import (
    SHORT_CONFIDENCE,
    SHORT_LETTERS,
    LanguageDetector,
    clean_for_lid,
)
from monitor.enrich.sentiment import LexiconScorer
from monitor.model import Sentiment


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


SAMPLES = [
    "@acme my order is broken, refund please",
    "Acme hat schon wieder eine Störung, echt ärgerlich",
    "ALLES KAPUTT BEI ACME!!!",
    "Le service client de Initech est vraiment nul aujourd'hui",
    "El servicio de Initech es terrible, quiero mi dinero",
    "Dit is echt een slechte dienst van Globex",
    "ok",
    "👍👍 https://t.co/abc",
    "Это ужасный сервис",
    "Sehr geehrte Damen und Herren, " * 20 + "mit freundlichen Grüßen",
    "lol",
    "Globex 😍😍 love it",
]


def reference(ident: LanguageIdentifier, text: str, boost: float = 4.0) -> str:
    """py3langid one text at a time (classify, then rank with the boost) — the old path."""
    clean = clean_for_lid(text)
    if clean is None:
        return "und"
    best, best_p, total = "und", 0.0, 0.0
    for cand, p in ident.rank(clean):
        weighted = p * boost if cand in ("en", "de") else p
        total += weighted
        if weighted > best_p:
            best, best_p = cand, weighted
    # a reply of a few letters where no language stands out is "und" (SHORT_LETTERS)
    if sum(c.isalpha() for c in clean) < SHORT_LETTERS and best_p < SHORT_CONFIDENCE * total:
        return "und"
    return str(best)


def test_batch_equals_py3langid_per_text(detector: LanguageDetector) -> None:
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    expected = [reference(ident, t) for t in SAMPLES]
    assert detector.detect_batch(SAMPLES) == expected
    assert [detector.detect(t) for t in SAMPLES] == expected
    assert detector.detect_batch([]) == []


def test_cli_keeps_order_and_count() -> None:
    lines = [
        "I love this, thank you!",
        "",
        "Acme ist schlecht, alles kaputt",  # v3: "Totaler Skandal, alles kaputt" is a tie
        "Acme announces quarterly results on Tuesday",
    ] * 300
    out = io.StringIO()
    assert run_sentiment("auto", io.StringIO("\n".join(lines) + "\n"), out) == 0
    rows = [r.split("\t") for r in out.getvalue().splitlines()]
    assert len(rows) == len(lines)
    assert [r[0] for r in rows[:4]] == ["positive", "neutral", "negative", "neutral"]
    assert all(-1.0 <= float(r[1]) <= 1.0 for r in rows)


def test_one_long_text_does_not_blow_up_the_batch(detector: LanguageDetector) -> None:
    # The batch is walked as a (texts x bytes) matrix; one 100k-character post (the decoder's
    # limit) among 300 short ones must not cost 300 x 100k cells.
    long_text = "Die Störung bei Acme dauert an und niemand hilft uns weiter. " * 1700
    texts = ["acme outage again, I want a refund"] * 300 + [long_text]
    tracemalloc.start()
    try:
        langs = detector.detect_batch(texts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert langs[0] == "en" and langs[-1] == "de"
    assert peak < 50e6, f"peak {peak / 1e6:.0f} MB"
    assert detector.detect(long_text) == "de"


def test_cli_survives_invalid_utf8() -> None:
    # A strict UTF-8 locale: one bad byte must cost that line's accuracy, not the whole run.
    raw = b"I love it\nbroken \xff\xc3 again\nawful, never again\n"
    stdin = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="strict")
    out = io.StringIO()
    assert run_sentiment("en", stdin, out, scorer_factory=LexiconScorer) == 0
    assert [r.split("\t")[0] for r in out.getvalue().splitlines()] == [
        "positive",
        "negative",
        "negative",
    ]


class _AlmostZero:
    """A scorer whose scores round to zero from both sides."""

    def score_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[Sentiment]:
        return [Sentiment("neutral", -0.00001), Sentiment("neutral", 0.00001)][: len(texts)]


def test_cli_never_prints_negative_zero() -> None:
    """5 of 47,454 QA lines read ``neutral\\t-0.0000``."""
    out = io.StringIO()
    assert run_sentiment("en", io.StringIO("a\nb\n"), out, scorer_factory=_AlmostZero) == 0
    assert out.getvalue().splitlines() == ["neutral\t0.0000", "neutral\t0.0000"]


@pytest.mark.parametrize("text", ["ok", "nope", "omg", "lol", "wtf", "nervig", "mist", "super"])
def test_a_one_word_reply_is_not_forced_into_a_language(
    detector: LanguageDetector, text: str
) -> None:
    """ok/nope/omg were de (the German head then called them negative), mist en, super la,
    lol st, wtf pl (QA)."""
    assert detector.detect(text) == "und"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("danke schön", "de"),
        ("schon wieder", "de"),
        ("still down", "en"),
        ("not again", "en"),
        ("mega enttäuscht", "de"),
        ("worst support ever", "en"),
    ],
)
def test_a_short_reply_that_is_clear_keeps_its_language(
    detector: LanguageDetector, text: str, lang: str
) -> None:
    assert detector.detect(text) == lang


def test_styled_capitals_are_identified_as_their_letters(detector: LanguageDetector) -> None:
    """𝗔𝗖𝗠𝗘 𝗜𝗦 𝗗𝗢𝗪𝗡 𝗔𝗚𝗔𝗜𝗡 was zxx: 4-byte symbols, not letters (QA)."""
    assert detector.detect("𝗔𝗖𝗠𝗘 𝗜𝗦 𝗗𝗢𝗪𝗡 𝗔𝗚𝗔𝗜𝗡, 𝗪𝗢𝗥𝗦𝗧 𝗦𝗘𝗥𝗩𝗜𝗖𝗘 𝗘𝗩𝗘𝗥") == "en"
    assert detector.detect("𝗦𝗧𝗢̈𝗥𝗨𝗡𝗚 𝗕𝗘𝗜 𝗔𝗖𝗠𝗘, 𝗻𝗶𝗰𝗵𝘁𝘀 𝗴𝗲𝗵𝘁 𝗺𝗲𝗵𝗿") == "de"
