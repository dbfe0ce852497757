"""The shipped sentiment model: named + hashed features, tf-idf, two linear heads.

Inference needs numpy only. The artifact is one ``.npz`` inside the package
(``monitor/enrich/models/``), written by ``scripts/train_sentiment.py``. Columns are the named
features (``names``, in order) followed by ``2**bits`` hashed char n-gram buckets; only columns
seen in training are stored (``cols`` with their ``idf`` and head weights), the rest score 0 and
do not count towards a row's length.

A text's vector is ``sum(idf[c] * e_c over its feature occurrences) / sqrt(sum(idf[c]**2))``.
In memory too only the stored columns are kept (``cols``, about one in six), with a column ->
row map; an unstored column maps to a zero row: the same sums, a fifth of the memory.
Heads: ``en`` (multinomial logistic regression trained on English) scores every language except
German; ``de`` (trained on German) adds, on top of its own weights, a 3×3 ``stack`` matrix applied
to the centred ``en`` logits, so German reuses what the large English set taught the shared
features (emoji, char n-grams, lexicon counts). Classes are negative, neutral, positive; the
score is P(positive) - P(negative) in [-1, 1], the label the arg-max class.

>>> import numpy as np
>>> fz = Featurizer(FeatureConfig(bits=8))
>>> w = np.zeros((3 + 256, 3), dtype=np.float32)
>>> w[0, 2] = w[1, 0] = w[2, 0] = 2.0   # good -> positive, bad / not good -> negative
>>> head = Head(w, np.array([0, 0.5, 0], dtype=np.float32))
>>> idf = np.r_[np.ones(3), np.zeros(256)].astype(np.float32)
>>> model = LinearModel.dense(fz, ["w:good", "w:bad", "w:~good"], idf, {"en": head})
>>> [(s.label, round(s.score, 2)) for s in model.score_batch(["good", "not good", "meh"],
...                                                          ["en", "en", "en"])]
[('positive', 0.64), ('negative', -0.64), ('neutral', 0.0)]
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import sparse

from monitor.enrich.features import I64, LEGACY_CONFIG, FeatureConfig, Featurizer
from monitor.errors import CrisiswatchError
from monitor.model import Sentiment, SentimentLabel

__all__ = [
    "DEFAULT_MODEL",
    "LABELS",
    "Encoded",
    "FeatureConfig",
    "Featurizer",
    "Head",
    "LinearModel",
    "ModelError",
    "feature_lang",
    "load_default_model",
    "load_model",
]

LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")
DEFAULT_MODEL = "sentiment-v3.npz"
#: Sentiment reads a text's first this many characters. The batch's feature arrays take ~135 B
#: a character: 256 posts of 100,000 characters (what ingest and RSS allow) took 3.5 GB and
#: 17 s (QA, eleventh session); a tweet is 280, and an article's opening carries its tone.
MAX_CHARS = 2000
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


class ModelError(CrisiswatchError):
    """The model artifact is missing or malformed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def feature_lang(lang: str) -> str:
    """The head for a detected language: German gets its own, every other language English.

    >>> feature_lang("de"), feature_lang("en-GB"), feature_lang("und")
    ('de', 'en', 'en')
    """
    return "de" if lang[:2].lower() == "de" else "en"


#: named columns that say something about a mood by themselves
POLAR_PREFIXES = ("LEX", "GL+", "GL-", "EMO")


@dataclass(frozen=True)
class Head:
    """One linear classifier over the shared columns.

    ``stack`` (3×3) reads the centred ``en`` logits. ``dense_cols``/``dense_weights`` (k, 3) add
    raw (un-normalised, un-idf'd) counts of a few named columns (lexicon counts, URL, shouting):
    in a length-normalised row they would be tiny and regularised away on small data.
    """

    weights: F32  # (V, 3) given to LinearModel; (len(cols), 3) in LinearModel.heads
    bias: F32  # (3,)
    stack: F32 | None = None
    dense_cols: I64 | None = None
    dense_weights: F32 | None = None


@dataclass(frozen=True)
class Encoded:
    """A batch as feature occurrences: parallel arrays (row, column), plus the batch size."""

    rows: I64
    cols: I64
    n: int
    named: int  # the first ``named`` entries are named features, the rest char n-grams


def softmax(logits: F64) -> F64:
    """Row-wise softmax.

    >>> softmax(np.array([[0.0, 0.0, 0.0]])).round(3).tolist()
    [[0.333, 0.333, 0.333]]
    """
    z: F64 = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class LinearModel:
    """A :class:`~monitor.enrich.sentiment.SentimentScorer` backed by linear heads."""

    def __init__(
        self,
        featurizer: Featurizer,
        names: Sequence[str],
        cols: npt.NDArray[np.integer[Any]],
        idf: F32,
        heads: Mapping[str, Head],
        meta: dict[str, Any] | None = None,
    ) -> None:
        """The stored form: ``idf`` and head weights over the kept columns ``cols`` only."""
        width = len(names) + (1 << featurizer.config.bits)
        if cols.ndim != 1 or (cols.size and (cols.min() < 0 or cols.max() >= width)):
            raise ValueError(f"columns must lie in 0..{width - 1}")
        if idf.shape != cols.shape:
            raise ValueError(f"idf has shape {idf.shape}, expected ({len(cols)},)")
        if "en" not in heads:
            raise ValueError("the en head is required")
        for name, head in heads.items():
            if head.weights.shape != (len(cols), 3) or head.bias.shape != (3,):
                raise ValueError(f"head {name}: weights {head.weights.shape} do not fit")
        self.featurizer = featurizer
        self.names = list(names)
        self.index = {f: i for i, f in enumerate(self.names)}
        self.meta = meta or {}
        self._width = width
        # the kept columns (``cols``), each column's row among them in ``_row``, and a zero row
        # (the last) for every other column
        self.cols = cols.astype(np.int32)
        self._row = np.full(width, len(cols), dtype=np.int32)
        self._row[self.cols] = np.arange(len(cols), dtype=np.int32)
        self.idf = np.append(idf, np.float32(0.0)).astype(np.float32)
        #: heads with ``weights`` over ``cols`` (the shape the artifact stores)
        self.heads = dict(heads)
        # idf folded into the weights: a row's logits are sums of gathered rows / its length.
        self._idf2 = self.idf**2
        self._scaled = {
            k: np.ascontiguousarray(
                np.vstack([h.weights * self.idf[:-1, None], np.zeros((1, 3), np.float32)]).T,
                dtype=np.float32,
            )
            for k, h in self.heads.items()
        }
        # named columns that are evidence of a mood by themselves (lexicon, emoji), and negated
        # words (they have no char n-grams): with no such column and no word of its own a text
        # is neutral (see predict_proba)
        self._polar = np.array(
            [n.startswith(POLAR_PREFIXES) or n.startswith("w:~") for n in self.names], dtype=bool
        )
        # named column -> row of the head's dense weights (-1: not a dense column)
        self._dense_pos: dict[str, npt.NDArray[np.int64]] = {}
        for k, h in self.heads.items():
            pos = np.full(len(self.names), -1, dtype=np.int64)
            if h.dense_cols is not None:
                pos[h.dense_cols] = np.arange(len(h.dense_cols))
            self._dense_pos[k] = pos

    @classmethod
    def dense(
        cls,
        featurizer: Featurizer,
        names: Sequence[str],
        idf: F32,
        heads: Mapping[str, Head],
        meta: dict[str, Any] | None = None,
    ) -> LinearModel:
        """From the dense form (training): ``idf`` (V,) and head weights (V, 3), all V columns.

        A column of idf 0 adds nothing to a row's logits nor to its length: only the others
        are kept.
        """
        width = len(names) + (1 << featurizer.config.bits)
        if idf.shape != (width,):
            raise ValueError(f"idf has shape {idf.shape}, expected ({width},)")
        for name, head in heads.items():
            if head.weights.shape != (width, 3):
                raise ValueError(f"head {name}: weights {head.weights.shape} do not fit")
        cols = np.flatnonzero(idf > 0)
        kept = {k: replace(h, weights=h.weights[cols]) for k, h in heads.items()}
        return cls(featurizer, names, cols, idf[cols], kept, meta)

    @property
    def width(self) -> int:
        """Number of columns (named features + hash buckets)."""
        return self._width

    def encode(self, texts: Sequence[str], langs: Sequence[str]) -> Encoded:
        """Feature occurrences of a batch; ``langs`` are already head languages (en/de)."""
        fz = self.featurizer
        flat: list[str] = []
        counts: list[int] = []
        all_words: list[list[str]] = []
        for text, lang in zip(texts, langs, strict=True):
            named, words = fz.named(text, lang)
            flat.extend(named)
            counts.append(len(named))
            all_words.append(words)
        get = self.index.get
        found = np.fromiter((get(f, -1) for f in flat), dtype=np.int64, count=len(flat))
        keep = found >= 0
        cols = found[keep]
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), counts)[keep]
        crow, bucket = fz.char_buckets(all_words)
        return Encoded(
            np.concatenate([rows, crow]),
            np.concatenate([cols, bucket + len(self.names)]),
            len(texts),
            len(rows),
        )

    def matrix(self, enc: Encoded) -> sparse.csr_matrix:
        """The normalised tf-idf matrix (n, width) of an encoded batch (for training)."""
        data = self.idf[self._row[enc.cols]].astype(np.float64)
        norm = np.sqrt(np.bincount(enc.rows, weights=data * data, minlength=enc.n))
        norm[norm == 0] = 1.0
        data /= norm[enc.rows]
        X = sparse.csr_matrix((data, (enc.rows, enc.cols)), shape=(enc.n, self.width))
        X.sum_duplicates()
        return X

    def _logits(self, enc: Encoded, at: I32, head: str, norm: F64) -> F64:
        scaled = self._scaled[head]
        out = np.empty((enc.n, 3), dtype=np.float64)
        for k in range(3):
            out[:, k] = np.bincount(enc.rows, weights=scaled[k][at], minlength=enc.n)
        out /= norm[:, None]
        h = self.heads[head]
        out += h.bias
        if h.dense_cols is not None and h.dense_weights is not None:
            pos = self._dense_pos[head][enc.cols[: enc.named]]
            hit = np.flatnonzero(pos >= 0)
            if hit.size:
                dw = h.dense_weights.astype(np.float64)[pos[hit]]
                rows = enc.rows[hit]
                for k in range(3):
                    out[:, k] += np.bincount(rows, weights=dw[:, k], minlength=enc.n)
        return out

    def logits(self, enc: Encoded, is_de: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
        """Logits of every row (``en`` head, or ``de`` head where ``is_de``), and row lengths."""
        at = self._row[enc.cols]  # each occurrence's row in the kept columns
        norm = np.sqrt(np.bincount(enc.rows, weights=self._idf2[at], minlength=enc.n))
        safe = np.where(norm == 0, 1.0, norm)
        out = self._logits(enc, at, "en", safe)
        de = self.heads.get("de")
        if de is not None and is_de.any():
            de_logits = self._logits(enc, at, "de", safe)
            if de.stack is not None:
                centred = out - out.mean(axis=1, keepdims=True)
                de_logits += centred @ de.stack.astype(np.float64)
            out[is_de] = de_logits[is_de]
        return out, norm

    def predict_proba(self, texts: Sequence[str], langs: Sequence[str]) -> F32:
        """Class probabilities (n, 3): negative, neutral, positive."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        heads = [feature_lang(g) for g in langs]
        enc = self.encode([t[:MAX_CHARS] for t in texts], heads)
        is_de = np.fromiter((h == "de" for h in heads), dtype=bool, count=len(heads))
        logits, _ = self.logits(enc, is_de)
        proba = softmax(logits)
        # No word and no polar sign means no evidence: neutral rather than the head's prior.
        # The German head's style columns (no polar word, no pronoun) lean negative on their
        # own: ".", "?", "@acme" or a bare link came out negative (-0.5..-0.8), "!!!" in
        # English +0.99, and link-only posts fed the sentiment-turn detector (QA, tenth session).
        proba[~self.has_evidence(enc)] = (0.0, 1.0, 0.0)
        return cast(F32, proba.astype(np.float32))

    def has_evidence(self, enc: Encoded) -> npt.NDArray[np.bool_]:
        """Per row: does the text hold a word (char n-grams, or a negated word) or a polar sign
        (lexicon, emoji)?"""
        out = np.zeros(enc.n, dtype=bool)
        out[enc.rows[enc.named :]] = True
        named = enc.cols[: enc.named]
        out[enc.rows[: enc.named][self._polar[named]]] = True
        return out

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
        """Write the artifact (compressed npz; only columns seen in training)."""
        lex = sorted(self.featurizer.de_lexicon.items())
        arrays: dict[str, Any] = {
            "names": _text("\n".join(self.names)),
            "cols": self.cols,
            "idf": self.idf[:-1],
            "lexicon_words": _text("\n".join(w for w, _ in lex)),
            "lexicon_polarity": np.array([p for _, p in lex], dtype=np.float32),
            "config": _text(json.dumps(asdict(self.featurizer.config))),
            "meta": _text(json.dumps(self.meta)),
        }
        for name, head in self.heads.items():
            arrays[f"{name}_weights"] = head.weights.astype(np.float32)
            arrays[f"{name}_bias"] = head.bias.astype(np.float32)
            if head.stack is not None:
                arrays[f"{name}_stack"] = head.stack.astype(np.float32)
            if head.dense_cols is not None and head.dense_weights is not None:
                arrays[f"{name}_dense_cols"] = head.dense_cols.astype(np.int32)
                arrays[f"{name}_dense_weights"] = head.dense_weights.astype(np.float32)
        np.savez_compressed(path, **arrays)


def _text(s: str) -> npt.NDArray[np.uint8]:
    return np.frombuffer(s.encode("utf-8"), dtype=np.uint8)


def _str(a: npt.NDArray[np.uint8]) -> str:
    return a.tobytes().decode("utf-8")


def load_model(path: str | Path) -> LinearModel:
    """Read an artifact written by :meth:`LinearModel.save`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            # a switch the artifact does not name predates it: the artifact was trained without
            raw = LEGACY_CONFIG | json.loads(_str(z["config"]))
            config = FeatureConfig(**{**raw, "ngrams": tuple(raw["ngrams"])})
            names = _str(z["names"]).split("\n") if z["names"].size else []
            words = _str(z["lexicon_words"]).split("\n") if z["lexicon_words"].size else []
            lexicon = dict(zip(words, z["lexicon_polarity"].tolist(), strict=True))
            cols = z["cols"].astype(np.int64)
            idf = z["idf"].astype(np.float32)
            heads: dict[str, Head] = {}
            for name in ("en", "de"):
                if f"{name}_weights" not in z:
                    continue
                w = z[f"{name}_weights"].astype(np.float32)
                stack = z.get(f"{name}_stack", None)
                dcols = dweights = None
                if f"{name}_dense_cols" in z:
                    dcols = z[f"{name}_dense_cols"].astype(np.int64)
                    dweights = z[f"{name}_dense_weights"].astype(np.float32)
                heads[name] = Head(w, z[f"{name}_bias"].astype(np.float32), stack, dcols, dweights)
            meta = json.loads(_str(z["meta"]))
        return LinearModel(Featurizer(config, lexicon), names, cols, idf, heads, meta)
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        # a truncated artifact is a BadZipFile, an empty one an EOFError
        raise ModelError(
            str(path), f"cannot load sentiment model: {exc or type(exc).__name__}"
        ) from None


def load_default_model() -> LinearModel:
    """The model shipped in the package (no network, no files outside the package)."""
    ref = resources.files("monitor.enrich.models").joinpath(DEFAULT_MODEL)
    with resources.as_file(ref) as path:
        return load_model(path)
