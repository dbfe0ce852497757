"""What moves the shipped model's negative label: mood, not links, negation or spelling.

The sentiment-turn detector watches the negative share of a topic's posts, so a label that a
link, a negated word or a folded umlaut flips shifts the share a crisis is judged by (QA,
thirteenth session; the QA's hand-written posts are ``tests/data/sentiment/qa_*.tsv``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.enrich.features import Featurizer
from monitor.enrich.lexicon import polarity
from monitor.enrich.linear import LinearModel, load_default_model

DATA = Path(__file__).resolve().parents[2] / "data/sentiment"
KNOWN = "known gap (docs/sentiment.md): the v3 model still gets it wrong"


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return load_default_model()


def rows(name: str) -> list[list[str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip()]


def labels(model: LinearModel, texts: list[str], lang: str) -> list[str]:
    return [s.label for s in model.score_batch(texts, [lang] * len(texts))]


def test_a_link_does_not_change_the_label(model: LinearModel) -> None:
    """German: a negative post with a link read neutral (Rückruf … Skandal! +0.06), because
    UMSAB's neutral posts are mostly link posts."""
    texts = [
        "Acme ist schlecht",
        "Rückruf bei Acme, totaler Skandal!",
        "Störung bei Acme, nichts geht mehr",
        "Acme stellt morgen die Quartalszahlen vor",
        "Acme is down again, worst service ever",
    ]
    for lang in ("de", "en"):
        plain = model.score_batch(texts, [lang] * len(texts))
        linked = model.score_batch([t + " https://t.co/x1" for t in texts], [lang] * len(texts))
        assert [s.label for s in linked] == [s.label for s in plain]
        assert [s.score for s in linked] == pytest.approx([s.score for s in plain], abs=1e-6)
    assert labels(model, ["Acme ist schlecht https://t.co/x"], "de") == ["negative"]


def test_a_link_is_no_feature() -> None:
    named, words = Featurizer().named("Acme ist schlecht https://t.co/x", "de")
    assert not any("URL" in f for f in named)
    assert words == ["acme", "ist", "schlecht"]


def test_calm_german_posts_without_a_link_are_not_negative(model: LinearModel) -> None:
    """11 of 25 calm German posts (no link) were negative, 1 of 25 English ones."""
    calm = [r[3] for r in rows("qa_hand.tsv") if r[0] == "calm_de"]
    assert len(calm) == 25
    assert labels(model, calm, "de").count("negative") <= 4


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        pytest.param("not bad", "en", marks=pytest.mark.xfail(strict=True, reason=KNOWN)),
        pytest.param("not bad acme", "en", marks=pytest.mark.xfail(strict=True, reason=KNOWN)),
        ("Acme never disappoints", "en"),
        ("Nicht schlecht, Acme hat mein Problem schnell gelöst", "de"),
        ("nicht schlecht", "de"),
        pytest.param(
            "not bad acme, not bad", "en", marks=pytest.mark.xfail(strict=True, reason=KNOWN)
        ),
    ],
)
def test_a_negated_negative_word_is_not_negative(model: LinearModel, text: str, lang: str) -> None:
    assert labels(model, [text], lang) != ["negative"]


def test_negated_posts_do_not_inflate_the_negative_share(model: LinearModel) -> None:
    """QA's negation slice: 27 of 35 English posts called negative (v2), 20 are; 24 (v3). The
    shift of the English negative logit that brought it to 21 cost recall on outage posts and
    is not shipped (docs/sentiment.md)."""
    slice_ = [r for r in rows("qa_hand.tsv") if r[0] == "neg_en"]
    got = labels(model, [r[3] for r in slice_], "en")
    assert got.count("negative") <= sum(r[2] == "negative" for r in slice_) + 4


def test_negated_words_give_no_char_ngrams() -> None:
    """The char n-grams still read "bad" in "not bad"; ``w:~bad`` carries the negated word."""
    fz = Featurizer()
    named, words = fz.named("not bad", "en")
    assert "w:~bad" in named and words == []
    assert fz.named("bad", "en")[1] == ["bad"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        pytest.param(
            "Acme is back up, no issues anymore",
            "en",
            marks=pytest.mark.xfail(strict=True, reason=KNOWN),
        ),
        ("can confirm Acme is not broken anymore", "en"),
        ("Acme fixed the outage, all good now", "en"),
        ("Acme geht wieder, keine Probleme mehr", "de"),
        ("Acme App stürzt nach dem Update nicht mehr ab", "de"),
        ("Kein Problem mehr mit Acme heute", "de"),
    ],
)
def test_a_recovery_post_is_not_negative(model: LinearModel, text: str, lang: str) -> None:
    assert labels(model, [text], lang) != ["negative"]


@pytest.mark.parametrize(("lang", "most"), [("en", 9), ("de", 7)])
def test_recovery_posts_lower_the_negative_share(model: LinearModel, lang: str, most: int) -> None:
    """While a crisis winds down the negative share must fall: 11/20 English and 10/15 German
    "fixed, works again" posts were negative (v2); 9 and 7 are still (v3, docs/sentiment.md)."""
    texts = [r[1] for r in rows("qa_recovery.tsv") if r[0] == lang]
    assert labels(model, texts, lang).count("negative") <= most


_GAP = pytest.mark.xfail(strict=True, reason=KNOWN)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hackerangriff auf Acme", "de"),
        ("Acme Rueckruf", "de"),
        ("Schon wieder Netzausfall bei Acme", "de"),
        pytest.param("Acme data breach", "en", marks=_GAP),
        pytest.param("Acme lawsuit", "en", marks=_GAP),
        pytest.param("Acme recall", "en", marks=_GAP),
        pytest.param("Datenleck bei Acme", "de", marks=_GAP),
        pytest.param("Sammelklage gegen Acme", "de", marks=_GAP),
        pytest.param("Rückruf bei Acme, totaler Skandal! https://t.co/x", "de", marks=_GAP),
    ],
)
def test_headline_crisis_words_are_negative(model: LinearModel, text: str, lang: str) -> None:
    assert labels(model, [text], lang) == ["negative"]


def test_umlaut_free_spellings_and_folded_collisions() -> None:
    """ue/ae/oe spellings are the same word; a folded umlaut must not make another word's
    polarity ("schon" is not schön)."""
    assert polarity("rueckruf", "de") == polarity("ruckruf", "de") == -1.0
    assert polarity("stoerung", "de") == polarity("enttaeuscht", "de") == -1.0
    assert polarity("schoene", "de") == 1.0


def test_the_german_lexicon_drops_folded_collisions_and_homographs(model: LinearModel) -> None:
    lex = model.featurizer.de_lexicon
    for word in ("schon", "sucht", "not", "fertig", "kaufen", "fordern"):
        assert word not in lex, word
    assert lex["schoen"] > 0 and lex["schlecht"] < 0


@pytest.mark.parametrize("emoji", ["🖕", "🤡", "🤦", "🙃"])
def test_more_emoji_carry_their_mood(model: LinearModel, emoji: str) -> None:
    assert polarity(emoji) == -1.0
    assert labels(model, [f"@acme {emoji}"], "en") == ["negative"]


@pytest.mark.xfail(strict=True, reason=KNOWN)
def test_short_replies_in_the_german_head_are_not_negative(model: LinearModel) -> None:
    """Language ID called "ok" or "nope" German; the German head calls "ok" negative."""
    assert "negative" not in labels(model, ["ok", "nope", "okay", "ja"], "de")


def test_outage_posts_are_negative(model: LinearModel) -> None:
    """What a crisis on the wall is made of. A shift of the English negative logit (to match
    the true negative share on train) made 3 of these neutral and one positive, and it was
    dropped (fourteenth session)."""
    texts = [
        "acme support is down again #1",
        "acme app is down again",
        "acme is down",
        "acme outage, nothing works",
        "acme app keeps crashing",
        "acme why is your app not working",
    ]
    assert labels(model, texts, "en") == ["negative"] * len(texts)
