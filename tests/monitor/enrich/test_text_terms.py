"""Tokenisation of social text and the content terms fed to the emerging-term detector."""

from __future__ import annotations

import pytest

from monitor.enrich.query import parse_query
from monitor.enrich.sentiment import LexiconScorer
from monitor.enrich.terms import content_terms
from monitor.enrich.text import fold, spellings, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # possessives belong to the name; iPhone apostrophes equal ASCII ones
        ("Acme's app is down", ["acme", "app", "is", "down"]),
        ("Acme’s app, I don’t care", ["acme", "app", "i", "don't", "care"]),
        # an e-mail address or a word with # inside has no handle or hashtag (a site is one
        # token, found by its parts too: see test_words_joined_by_amp_or_dot_are_one_token)
        ("write to help@acme.com", ["write", "to", "help", "acme.com"]),
        ("x#acme @acme #acme", ["x", "acme", "@acme", "#acme"]),
        # Chinese and Japanese have no spaces: each ideograph / kana is a token (voicing
        # marks fold away like accents: プ -> フ)
        ("Acmeのアプリ", ["acme", "の", "ア", "フ", "リ"]),
        ("#東京 電力", ["#東", "京", "電", "力"]),
        # a skin-tone modifier is part of its emoji, not a token of its own
        ("great 👍🏽", ["great", "👍"]),
    ],
)
def test_tokenize_social_text(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    "text",
    [
        "I don’t think it’s over, we’re waiting and they’ll see",
        "Wir können nicht, es würde gegen alles gehen, denn du hast keinen Plan",
        "&lt;3 &gt; &amp; http",
        "Die Stornierung wäre beim Anbieter seit gestern möglich",
    ],
)
def test_function_words_are_not_terms(text: str) -> None:
    terms = set(content_terms(tokenize(text)))
    assert not terms & {
        "don't", "don’t", "it's", "it’s", "we're", "they'll", "konnen", "wurde", "gegen",
        "denn", "hast", "keinen", "lt", "gt", "amp", "http", "ware", "beim", "seit",
    }  # fmt: skip


def test_terms_keep_content_words() -> None:
    assert content_terms(tokenize("Acme’s refund policy 2024 @help #Stornierung")) == (
        "acme",
        "refund",
        "policy",
        "stornierung",
    )


def test_every_term_of_a_post_shows_as_written() -> None:
    post = "Große STÖRUNG: #Rückruf bei Acme’s Café, ﬁx it https://acme.de/straße"
    written = spellings(["nothing here", post])
    shown = [written[term] for term in content_terms(tokenize(post))]
    assert shown == ["große", "störung", "rückruf", "acme", "café", "fix"]
    assert "strasse" not in written  # a URL's word is no spelling to show


def test_term_limit() -> None:
    tokens = tokenize("refund outage broken app")
    assert content_terms(tokens, 2) == ("refund", "outage")
    assert content_terms(tokens, 0) == ()  # enrichment.max_terms: 0 turns terms off


@pytest.mark.parametrize(
    ("text", "lang", "label"),
    [
        # negation ends at a clause break
        ("never again, terrible", "en", "negative"),
        ("no. love it", "en", "positive"),
        ("It is not bad. Great service!", "en", "positive"),
        ("nicht gut, aber super", "de", "neutral"),
        ("not good", "en", "negative"),
        # elongated words are the word
        ("soooo goooood", "en", "positive"),
        ("sooo baaaad", "en", "negative"),
        # empty and emoji-only texts
        ("", "en", "neutral"),
        ("😡😡", "und", "negative"),
    ],
)
def test_lexicon_scorer(text: str, lang: str, label: str) -> None:
    assert LexiconScorer().score_one(text, lang).label == label


def test_invisible_characters_do_not_split_a_word_and_undecomposable_letters_fold() -> None:
    """``ac\\u200bme`` dodged the query ``acme``; ``Łódź`` did not match ``lodz`` (QA, tenth
    session). The zero-width joiner stays: it builds emoji."""
    for text in ("ac\u200bme down", "ac\u00adme down", "ac\u2060me down", "\ufeffacme down"):
        assert parse_query("acme").matches_text(text), repr(text)
    assert parse_query("lodz OR oresund").matches_text("Łódź") and fold("Øresund") == "oresund"
    assert fold("👨\u200d👩\u200d👧") == "👨\u200d👩\u200d👧"
    assert parse_query("ru\u0308ckruf").matches_text("Rueckruf bei Acme")


def test_styled_capitals_fold_to_plain_letters() -> None:
    """fold ran casefold before NFKD, so 𝗔𝗖𝗠𝗘 stayed 'ACME' and matched nothing (QA)."""
    assert fold("𝗔𝗖𝗠𝗘 𝗜𝗦 𝗗𝗢𝗪𝗡") == "acme is down"
    assert fold("𝐀𝐜𝐦𝐞 𝘈𝘤𝘮𝘦 Ａｃｍｅ") == "acme acme acme"
    assert tokenize("#𝗔𝗰𝗺𝗲𝗙𝗮𝗶𝗹 𝗦𝗧𝗢̈𝗥𝗨𝗡𝗚") == ["#acmefail", "storung"]
    assert content_terms(tokenize("𝗔𝗖𝗠𝗘 𝗪𝗢𝗥𝗦𝗧 𝗦𝗘𝗥𝗩𝗜𝗖𝗘")) == ("acme", "worst", "service")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("C&A und H & M", ["c&a", "und", "h&m"]),
        ("AT&T’s network", ["at&t", "network"]),
        ("E.ON, 1&1 and acme.com", ["e.on", "1&1", "and", "acme.com"]),
        ("vitamin C, a habit 1:1 h/m", ["vitamin", "c", "a", "habit", "1", "1", "h", "m"]),
        ("Tom & Jerry... the end", ["tom", "jerry", "the", "end"]),
        ("$ACME up, $5 off", ["$acme", "up", "5", "off"]),
    ],
)
def test_words_joined_by_amp_or_dot_are_one_token(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_cashtags_and_joined_names_as_terms() -> None:
    assert content_terms(tokenize("$ACME tanks, C&A too, e.g. at E.ON")) == (
        "acme",
        "tanks",
        "c&a",
        "e.on",
    )


def test_tokenising_a_huge_expanding_post_is_bounded() -> None:
    """One post of 80,000 U+FDFA (18 characters each under NFKD) took 0.75 s to tokenise."""
    import time

    text = "acme " + "\ufdfa" * 80_000
    start = time.perf_counter()
    tokens = tokenize(text)
    took = time.perf_counter() - start
    assert tokens[0] == "acme"
    assert sum(map(len, tokens)) < 10_000
    assert took < 0.05, took  # ~3 ms on the shared 2-core machine
