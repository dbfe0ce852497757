"""The linear sentiment model: features, artifact round trip, and the shipped model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.enrich.features import FeatureConfig, Featurizer
from monitor.enrich.linear import (
    DEFAULT_MODEL,
    MAX_CHARS,
    Head,
    LinearModel,
    ModelError,
    load_default_model,
    load_model,
)

FIXTURE = Path(__file__).resolve().parents[2] / "data/sentiment/brand_posts.tsv"
SHIPPED = Path(__file__).resolve().parents[3] / "monitor/enrich/models" / DEFAULT_MODEL
BITS = 8


def tiny_model(with_de: bool = True) -> LinearModel:
    names = ["w:good", "w:bad", "w:~good", "w:gut", "LEX+1"]
    width = len(names) + (1 << BITS)
    idf = np.zeros(width, dtype=np.float32)
    idf[: len(names)] = [1, 1, 1, 2, 0.5]
    w = np.zeros((width, 3), dtype=np.float32)
    w[0, 2] = w[1, 0] = w[2, 0] = w[4, 2] = 3.0
    heads = {"en": Head(w, np.array([0, 0.5, 0], dtype=np.float32))}
    if with_de:
        wd = np.zeros_like(w)
        wd[3, 2] = 3.0
        stack = np.eye(3, dtype=np.float32) * 0.5
        heads["de"] = Head(wd, np.array([0, 0.2, 0], dtype=np.float32), stack)
    fz = Featurizer(FeatureConfig(bits=BITS), {"gut": 1.0, "schlecht": -1.0})
    return LinearModel.dense(fz, names, idf, heads, {"name": "tiny"})


def test_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "m.npz"
    model.save(path)
    back = load_model(path)
    assert back.names == model.names
    assert back.meta == {"name": "tiny"}
    assert back.featurizer.config == model.featurizer.config
    assert back.featurizer.de_lexicon == model.featurizer.de_lexicon
    texts, langs = ["good", "not good", "gut", "", "ünknown 🤷"], ["en", "en", "de", "en", "de"]
    np.testing.assert_allclose(
        back.predict_proba(texts, langs), model.predict_proba(texts, langs), rtol=1e-6
    )
    labels = [s.label for s in back.score_batch(texts, langs)]
    assert labels == ["positive", "negative", "positive", "neutral", "neutral"]


def test_an_artifact_without_the_new_switches_loads_as_trained(tmp_path: Path) -> None:
    """v2 artifacts name no ``negated_chars``/``link_feature``: they were trained without."""
    path = tmp_path / "old.npz"
    tiny_model().save(path)
    with np.load(path) as z:
        arrays = dict(z)
    config = json.loads(arrays["config"].tobytes())
    del config["negated_chars"], config["link_feature"]
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    assert load_model(path).featurizer.config == FeatureConfig(
        bits=BITS, negated_chars=True, link_feature=True
    )


def test_german_head_reads_english_logits() -> None:
    model = tiny_model()
    # "good" is unknown to the de head's own weights; it scores through the stack matrix.
    (en,), (de,) = model.predict_proba(["good"], ["en"]), model.predict_proba(["good"], ["de"])
    assert en[2] > de[2] > 1 / 3


def test_rows_are_unit_length() -> None:
    model = tiny_model()
    X = model.matrix(model.encode(["good bad", "gut", "nothing known"], ["en", "de", "en"]))
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, [1.0, 1.0, 0.0], atol=1e-6)


def test_kept_columns_score_exactly_as_the_dense_definition() -> None:
    """Only columns with an idf are kept in memory; weights elsewhere can never count."""
    names = ["w:good", "w:bad", "w:meh"]
    width = len(names) + (1 << BITS)
    rng = np.random.default_rng(3)
    idf = np.where(rng.random(width) < 0.3, rng.random(width) + 0.5, 0.0).astype(np.float32)
    idf[2] = 0.0  # a named column never seen in training, with a (stale) weight
    w = rng.normal(size=(width, 3)).astype(np.float32)
    model = LinearModel.dense(
        Featurizer(FeatureConfig(bits=BITS)), names, idf, {"en": Head(w, np.zeros(3, np.float32))}
    )
    assert model.heads["en"].weights.shape == (int((idf > 0).sum()), 3)
    texts = ["good bad meh", "meh", "a longer post about nothing much", "good good good"]
    enc = model.encode(texts, ["en"] * len(texts))
    X = model.matrix(enc)  # the definition: normalised tf-idf rows times the dense weights
    logits, _ = model.logits(enc, np.zeros(len(texts), dtype=bool))
    np.testing.assert_allclose(logits, X @ w.astype(np.float64), rtol=1e-5, atol=1e-6)


def test_bad_artifact(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        load_model(path)


def test_a_truncated_or_empty_artifact_is_a_model_error(tmp_path: Path) -> None:
    whole = tmp_path / "whole.npz"
    tiny_model().save(whole)
    cut, empty = tmp_path / "cut.npz", tmp_path / "empty.npz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    empty.write_bytes(b"")
    for path in (cut, empty):
        with pytest.raises(ModelError, match="cannot load sentiment model"):
            load_model(path)


def test_features_mark_negation_emoji_and_urls() -> None:
    named, words = Featurizer().named("not good 😡. okay https://t.co/x", "en")
    assert {"w:~good", "w:E😡", "w:okay"} <= set(named) and "URL" not in named
    assert words == ["okay"]  # a negated word has no char n-grams
    # an artifact from before the switches (v2) was trained with links and negated n-grams
    legacy = Featurizer(FeatureConfig(negated_chars=True, link_feature=True))
    named, words = legacy.named("not good 😡. okay https://t.co/x", "en")
    assert "URL" in named and words == ["good", "okay"]


def test_german_lexicon_and_clause_negation() -> None:
    lex = {"gefallt": 1.0, "toll": 1.0}
    on = Featurizer(FeatureConfig(), lex)
    off = Featurizer(FeatureConfig(de_clause_negation=False), lex)
    assert "GL+1" in on.named("Die App ist toll", "de")[0]
    # The negator follows what it negates: only clause-level negation sees it.
    assert "GL-1" in on.named("Das gefällt mir nicht.", "de")[0]
    assert "GL+1" in off.named("Das gefällt mir nicht.", "de")[0]
    assert not any(f.startswith("GL") for f in on.named("Die App ist toll", "en")[0])


def test_char_buckets_do_not_depend_on_batch() -> None:
    fz = Featurizer(FeatureConfig(bits=16))
    rows, buckets = fz.char_buckets([["stoerung", "heute"], [], ["heute"]])
    alone_rows, alone = fz.char_buckets([["heute"]])
    assert set(rows.tolist()) == {0, 2}
    assert sorted(buckets[rows == 2].tolist()) == sorted(alone.tolist())
    # " heute " has 5 + 4 + 3 n-grams of sizes 3, 4, 5
    assert len(alone) == 12 and set(alone_rows.tolist()) == {0}
    assert fz.char_buckets([[], []])[0].size == 0


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return load_default_model()


class TestShippedModel:
    def test_loads_fast_and_small(self) -> None:
        t0 = time.perf_counter()
        load_default_model()
        assert time.perf_counter() - t0 < 2.0
        assert SHIPPED.stat().st_size <= 50e6

    @pytest.mark.parametrize("lang", ["en", "de"])
    def test_brand_posts(self, model: LinearModel, lang: str) -> None:
        rows = [line.split("\t") for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if r[1] == lang]
        got = model.score_batch([r[2] for r in rows], [r[1] for r in rows])
        wrong = [(r[2], s.label) for r, s in zip(rows, got, strict=True) if s.label != r[0]]
        assert len(wrong) <= 1, wrong
        assert all(-1.0 <= s.score <= 1.0 for s in got)

    def test_negation_flips(self, model: LinearModel) -> None:
        good, not_good = model.score_batch(
            ["the service is good", "the service is not good"], ["en", "en"]
        )
        assert not_good.score < good.score - 0.3
        gut, nicht_gut = model.score_batch(
            ["Der Service ist gut", "Der Service ist nicht gut"], ["de", "de"]
        )
        assert nicht_gut.score < gut.score - 0.3

    @pytest.mark.parametrize("lang", ["en", "de"])
    def test_a_post_without_words_or_polar_signs_is_neutral(
        self, model: LinearModel, lang: str
    ) -> None:
        """The German head called ".", "?", "@acme" and a bare link negative (-0.5..-0.8), the
        English one "!!!" positive (0.99): style columns alone leaned one way (QA, tenth
        session). An emoji is a sign of its own and keeps its mood."""
        texts = [".", "?", "!!!", "@acme", "https://t.co/abc", "@acme https://t.co/x", "nicht"]
        got = model.score_batch(texts, [lang] * len(texts))
        assert [(s.label, s.score) for s in got] == [("neutral", 0.0)] * len(texts)
        angry, fine = model.score_batch(["😡", "super!!!"], [lang, lang])
        assert angry.label == "negative" and fine.label == "positive"

    def test_batch_equals_single(self, model: LinearModel) -> None:
        texts = ["Love it 😍", "Störung seit Stunden", "", "meh", "Acme stellt neue App vor"]
        langs = ["en", "de", "en", "en", "de"]
        batch = model.score_batch(texts, langs)
        single = [model.score_batch([t], [g])[0] for t, g in zip(texts, langs, strict=True)]
        assert [s.label for s in batch] == [s.label for s in single]
        np.testing.assert_allclose([s.score for s in batch], [s.score for s in single], atol=1e-5)


def test_a_long_post_is_read_from_its_opening(model: LinearModel) -> None:
    """256 posts of 100,000 characters took 3.5 GB in one batch (QA, eleventh session): the
    model reads the first MAX_CHARS characters, where a long post states its tone."""
    opening = "Acme lost my order again, worst support ever. "
    long = opening + "filler words about the weather and nothing else " * 2000
    (whole,) = model.score_batch([long], ["en"])
    (cut,) = model.score_batch([long[:MAX_CHARS]], ["en"])
    assert whole == cut and whole.label == "negative"
    assert len(long) > 40 * MAX_CHARS
