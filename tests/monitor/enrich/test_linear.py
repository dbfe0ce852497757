"""The linear sentiment model: artifact round trip, and the shipped model on brand posts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from monitor.enrich.features import analyze
from monitor.enrich.linear import (
    DEFAULT_MODEL,
    LinearModel,
    ModelError,
    Vocabulary,
    load_default_model,
    load_model,
)

FIXTURE = Path(__file__).resolve().parents[2] / "data/sentiment/brand_posts.tsv"
SHIPPED = Path(__file__).resolve().parents[3] / "monitor/enrich/models" / DEFAULT_MODEL


def tiny_model() -> LinearModel:
    names = ["w:good", "w:bad", "w:~good", "de|w:gut", "LEX+1"]
    vocab = Vocabulary(names, np.array([1, 1, 1, 2, 0.5], dtype=np.float32))
    w = np.zeros((5, 3), dtype=np.float32)
    w[0, 2] = w[1, 0] = w[2, 0] = w[3, 2] = w[4, 2] = 3.0
    return LinearModel(vocab, w, np.array([0, 0.5, 0], dtype=np.float32), {"name": "tiny"})


def test_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "m.npz"
    model.save(path)
    back = load_model(path)
    assert back.vocab.names == model.vocab.names
    assert back.meta == {"name": "tiny"}
    texts, langs = ["good", "not good", "gut", "", "ünknown 🤷"], ["en", "en", "de", "en", "de"]
    np.testing.assert_allclose(
        back.predict_proba(texts, langs), model.predict_proba(texts, langs), rtol=1e-6
    )
    labels = [s.label for s in back.score_batch(texts, langs)]
    assert labels == ["positive", "negative", "positive", "neutral", "neutral"]


def test_rows_are_unit_length() -> None:
    X = tiny_model().vocab.transform(["good bad", "gut"], ["en", "de"])
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, [1.0, 1.0], rtol=1e-6)


def test_bad_artifact(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        load_model(path)


def test_features_mark_negation_and_emoji() -> None:
    f = analyze("not good 😡. okay", "en")
    assert "w:~good" in f and "w:E😡" in f and "w:okay" in f
    assert any(x.startswith("de|") for x in analyze("nicht gut", "de"))


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return load_default_model()


class TestShippedModel:
    def test_loads_fast_and_small(self) -> None:
        t0 = time.perf_counter()
        load_default_model()
        assert time.perf_counter() - t0 < 2.0
        assert SHIPPED.stat().st_size <= 50e6

    @pytest.mark.parametrize(
        "lang",
        [
            "en",
            pytest.param(
                "de",
                marks=pytest.mark.xfail(
                    reason="known gap: German model misreads short neutral/positive brand posts",
                    strict=False,
                ),
            ),
        ],
    )
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
