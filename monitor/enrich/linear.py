"""The shipped sentiment model: named sparse features, tf-idf, multinomial logistic regression.

Inference needs numpy and scipy only. The artifact is one ``.npz`` inside the package
(``monitor/enrich/models/``), written by ``scripts/train_sentiment.py``:

- ``vocab``: UTF-8 bytes of the feature names joined by newlines (column order),
- ``idf`` (V,), ``weights`` (V, 3), ``bias`` (3,), all float32; classes are
  negative, neutral, positive,
- ``meta``: UTF-8 JSON (training data, hyper-parameters, scores) for the record.

The continuous score is P(positive) - P(negative), in [-1, 1]; the label is the arg-max class.

>>> import numpy as np
>>> vocab = Vocabulary(["w:good", "w:bad", "w:~good"], np.ones(3, dtype=np.float32))
>>> w = np.array([[0, 0, 2], [2, 0, 0], [2, 0, 0]], dtype=np.float32)
>>> model = LinearModel(vocab, w, np.array([0, 0.5, 0], dtype=np.float32))
>>> [(s.label, round(s.score, 2)) for s in model.score_batch(["good", "not good", "meh"],
...                                                          ["en", "en", "en"])]
[('positive', 0.64), ('negative', -0.64), ('neutral', 0.0)]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import sparse

from monitor.enrich.features import analyze
from monitor.errors import CrisiswatchError
from monitor.model import Sentiment, SentimentLabel

__all__ = ["DEFAULT_MODEL", "LABELS", "LinearModel", "ModelError", "Vocabulary", "load_model"]

LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")
DEFAULT_MODEL = "sentiment-v1.npz"
F32 = npt.NDArray[np.float32]


class ModelError(CrisiswatchError):
    """The model artifact is missing or malformed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def feature_lang(lang: str) -> str:
    """The feature language for a detected language: German gets its own, the rest English.

    >>> feature_lang("de"), feature_lang("en-GB"), feature_lang("und")
    ('de', 'en', 'en')
    """
    return "de" if lang[:2].lower() == "de" else "en"


class Vocabulary:
    """Feature name → column, with idf weights; turns texts into L2-normalised tf-idf rows."""

    def __init__(self, names: Sequence[str], idf: F32) -> None:
        if len(names) != len(idf):
            raise ValueError("names and idf differ in length")
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.idf = idf

    def __len__(self) -> int:
        return len(self.names)

    def columns(self, feats: Iterable[str]) -> list[int]:
        """Distinct known columns of a feature list (presence, not counts)."""
        get = self.index.get
        cols = {get(f, -1) for f in feats}
        cols.discard(-1)
        return sorted(cols)

    def transform_features(self, rows: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """Feature lists → CSR matrix (n, V) of idf weights, each row scaled to unit length."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        cols: list[int] = []
        for i, feats in enumerate(rows):
            cols.extend(self.columns(feats))
            indptr[i + 1] = len(cols)
        indices = np.asarray(cols, dtype=np.int32)
        data = self.idf[indices].astype(np.float32)
        counts = np.diff(indptr)
        row_of = np.repeat(np.arange(len(rows)), counts)
        norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=len(rows)))
        norms[norms == 0] = 1.0
        data /= norms[row_of].astype(np.float32)
        return sparse.csr_matrix((data, indices, indptr), shape=(len(rows), len(self)))

    def transform(self, texts: Sequence[str], langs: Sequence[str]) -> sparse.csr_matrix:
        """Texts (with their languages) → feature matrix."""
        return self.transform_features(
            [analyze(t, feature_lang(g)) for t, g in zip(texts, langs, strict=True)]
        )


class LinearModel:
    """A :class:`~monitor.enrich.sentiment.SentimentScorer` backed by a linear model."""

    def __init__(
        self, vocab: Vocabulary, weights: F32, bias: F32, meta: dict[str, Any] | None = None
    ) -> None:
        if weights.shape != (len(vocab), len(LABELS)) or bias.shape != (len(LABELS),):
            raise ValueError(f"weights {weights.shape} / bias {bias.shape} do not fit the vocab")
        self.vocab, self.weights, self.bias = vocab, weights, bias
        self.meta = meta or {}

    def predict_proba(self, texts: Sequence[str], langs: Sequence[str]) -> F32:
        """Class probabilities (n, 3): negative, neutral, positive."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        X = self.vocab.transform(texts, langs)
        logits = np.asarray(X @ self.weights) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        # No known feature means no evidence: call it neutral rather than echo the class prior.
        logits[np.diff(X.indptr) == 0] = (0.0, 1.0, 0.0)
        return cast(F32, logits.astype(np.float32))

    def score_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[Sentiment]:
        """One :class:`Sentiment` per text, same order."""
        proba = self.predict_proba(texts, langs)
        labels = proba.argmax(axis=1).tolist()
        scores = (proba[:, 2] - proba[:, 0]).tolist()
        return [
            Sentiment(LABELS[k], max(-1.0, min(1.0, s)))
            for k, s in zip(labels, scores, strict=True)
        ]

    def save(self, path: str | Path) -> None:
        """Write the artifact (compressed npz)."""
        np.savez_compressed(
            path,
            vocab=np.frombuffer("\n".join(self.vocab.names).encode("utf-8"), dtype=np.uint8),
            idf=self.vocab.idf.astype(np.float32),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            meta=np.frombuffer(json.dumps(self.meta).encode("utf-8"), dtype=np.uint8),
        )


def load_model(path: str | Path) -> LinearModel:
    """Read an artifact written by :meth:`LinearModel.save`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = z["vocab"].tobytes().decode("utf-8").split("\n")
            vocab = Vocabulary(names, z["idf"].astype(np.float32))
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            return LinearModel(
                vocab, z["weights"].astype(np.float32), z["bias"].astype(np.float32), meta
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(str(path), f"cannot load sentiment model: {exc}") from None


def load_default_model() -> LinearModel:
    """The model shipped in the package (no network, no files outside the package)."""
    ref = resources.files("monitor.enrich.models").joinpath(DEFAULT_MODEL)
    with resources.as_file(ref) as path:
        return load_model(path)
