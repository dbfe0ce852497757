"""Train the shipped sentiment model (English + German) reproducibly.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python scripts/train_sentiment.py                      # CV, fit, val report, save
    .venv/bin/python scripts/train_sentiment.py --experiments        # + German transfer study

Data: ``../shared/data/tweeteval-sentiment`` and ``../shared/data/umsab-de-sentiment``
(train and val splits; labels 0 negative, 1 neutral, 2 positive).

Honest model selection: the regularisation ``C`` and the German sample weight are chosen by
stratified 3-fold cross-validation on the *train* splits only (English macro-recall and German
macro-F1, averaged); the validation splits are scored once, after the final fit on all of train,
and only reported. The vocabulary and idf are computed on train without labels.

Everything is seeded; scikit-learn is needed here only (the service uses numpy/scipy).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.enrich.features import analyze  # noqa: E402
from monitor.enrich.linear import LinearModel, Vocabulary, load_model  # noqa: E402
from monitor.enrich.sentiment import LexiconScorer  # noqa: E402

LABELS = ("negative", "neutral", "positive")
SEED = 0


def read_split(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")
    labels = (folder / f"{split}_labels.txt").read_text(encoding="utf-8").split()
    texts = texts[: len(labels)]  # the files may or may not end in a newline
    return texts, np.array([int(x) for x in labels], dtype=np.int64)


def build_vocab(rows: Sequence[Sequence[str]], min_df: int) -> Vocabulary:
    df: Counter[str] = Counter()
    for feats in rows:
        df.update(set(feats))
    names = sorted(f for f, c in df.items() if c >= min_df)
    n = len(rows)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in names], dtype=np.float32)
    return Vocabulary(names, idf)


def sample_weights(y: np.ndarray, is_de: np.ndarray, de_weight: float) -> np.ndarray:
    """Balance classes within each language, then up-weight German."""
    w = np.zeros(len(y), dtype=np.float64)
    for lang_mask, factor in ((~is_de, 1.0), (is_de, de_weight)):
        n = lang_mask.sum()
        for k in range(3):
            m = lang_mask & (y == k)
            if m.any():
                w[m] = factor * n / (3.0 * m.sum())
    out: np.ndarray = w * (len(y) / w.sum())
    return out


def fit(X: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, C: float) -> LogisticRegression:
    clf = LogisticRegression(C=C, max_iter=300, tol=1e-4, random_state=SEED)
    clf.fit(X, y, sample_weight=w)
    return clf


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "macro_recall": float(recall_score(y, pred, average="macro")),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "accuracy": float((y == pred).mean()),
    }


def cross_validate(
    X: sparse.csr_matrix, y: np.ndarray, is_de: np.ndarray, C: float, de_weight: float, folds: int
) -> dict[str, float]:
    strata = y + 3 * is_de.astype(np.int64)
    pred = np.zeros_like(y)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(X, strata):
        clf = fit(X[tr], y[tr], sample_weights(y[tr], is_de[tr], de_weight), C)
        pred[te] = clf.predict(X[te])
    en, de = ~is_de, is_de
    return {
        "en_macro_recall": scores(y[en], pred[en])["macro_recall"],
        "de_macro_f1": scores(y[de], pred[de])["macro_f1"],
    }


def strip_tagged(rows: list[list[str]]) -> list[list[str]]:
    return [[f for f in feats if not f.startswith("de|")] for feats in rows]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "monitor/enrich/models/sentiment-v1.npz")
    ap.add_argument("--min-df", type=int, default=2)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--C", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    ap.add_argument("--de-weight", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--experiments", action="store_true", help="also compare German set-ups")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    en_tr, y_en_tr = read_split(args.data / "tweeteval-sentiment", "train")
    en_va, y_en_va = read_split(args.data / "tweeteval-sentiment", "val")
    de_tr, y_de_tr = read_split(args.data / "umsab-de-sentiment", "train")
    de_va, y_de_va = read_split(args.data / "umsab-de-sentiment", "val")
    print(f"data: en {len(en_tr)}/{len(en_va)}  de {len(de_tr)}/{len(de_va)}")

    rows = [analyze(t, "en") for t in en_tr] + [analyze(t, "de") for t in de_tr]
    y = np.concatenate([y_en_tr, y_de_tr])
    is_de = np.concatenate([np.zeros(len(en_tr), bool), np.ones(len(de_tr), bool)])
    vocab = build_vocab(rows, args.min_df)
    X = vocab.transform_features(rows)
    print(f"features: {len(vocab)} columns, {X.nnz} non-zeros ({time.perf_counter() - t0:.0f}s)")

    experiments: dict[str, Any] = {}
    if args.experiments:
        # German set-ups at a fixed C, German macro-F1 by CV on German train (English, when used,
        # is always fully in the training folds).
        C0 = args.C[len(args.C) // 2]
        rows_plain = strip_tagged(rows)
        v_plain = build_vocab(rows_plain, args.min_df)
        X_plain = v_plain.transform_features(rows_plain)
        de_rows = rows[len(en_tr) :]
        v_de = build_vocab(de_rows, args.min_df)
        X_de = v_de.transform_features(de_rows)
        setups = {
            "german only": (X_de, y_de_tr, np.ones(len(de_tr), bool)),
            "joint, shared features": (X_plain, y, is_de),
            "joint, shared + German-tagged": (X, y, is_de),
        }
        for name, (Xs, ys, des) in setups.items():
            f1 = _de_cv(Xs, ys, des, C0, 3.0, args.folds)
            experiments[name] = f1
            print(f"  experiment {name:32s} de macro-F1 (CV) {f1:.4f}")

    table = []
    for C in args.C:
        for dw in args.de_weight:
            r = cross_validate(X, y, is_de, C, dw, args.folds)
            r |= {"C": C, "de_weight": dw, "mean": (r["en_macro_recall"] + r["de_macro_f1"]) / 2}
            table.append(r)
            print(
                f"  CV C={C:<5g} de_weight={dw:<4g} en macro-recall {r['en_macro_recall']:.4f}"
                f"  de macro-F1 {r['de_macro_f1']:.4f}  ({time.perf_counter() - t0:.0f}s)"
            )
    best = max(table, key=lambda r: r["mean"])
    print(f"chosen by CV: C={best['C']} de_weight={best['de_weight']}")

    clf = fit(X, y, sample_weights(y, is_de, best["de_weight"]), best["C"])
    weights = clf.coef_.T.astype(np.float32)
    bias = clf.intercept_.astype(np.float32)
    meta: dict[str, Any] = {
        "name": args.out.name,
        "classes": list(LABELS),
        "train": {"en": len(en_tr), "de": len(de_tr)},
        "min_df": args.min_df,
        "C": best["C"],
        "de_weight": best["de_weight"],
        "cv": table,
        "experiments": experiments,
    }
    model = LinearModel(vocab, weights, bias, meta)
    val: dict[str, Any] = {
        "en": scores(y_en_va, _predict(model, en_va, "en")),
        "de": scores(y_de_va, _predict(model, de_va, "de")),
    }
    lex = LexiconScorer()
    val["lexicon_baseline"] = {
        "en": scores(y_en_va, _labels(lex.score_batch(en_va, ["en"] * len(en_va)))),
        "de": scores(y_de_va, _labels(lex.score_batch(de_va, ["de"] * len(de_va)))),
    }
    meta["val"] = val
    model.save(args.out)
    t = time.perf_counter()
    load_model(args.out)
    load_s = time.perf_counter() - t
    print(json.dumps(val, indent=1))
    print(
        f"saved {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, loads in {load_s:.2f}s);"
        f" total {time.perf_counter() - t0:.0f}s"
    )
    return 0


def _de_cv(
    X: sparse.csr_matrix, y: np.ndarray, is_de: np.ndarray, C: float, dw: float, folds: int
) -> float:
    de_idx = np.flatnonzero(is_de)
    en_idx = np.flatnonzero(~is_de)
    pred = np.zeros(len(de_idx), dtype=np.int64)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(de_idx, y[de_idx]):
        train_idx = np.concatenate([en_idx, de_idx[tr]])
        clf = fit(X[train_idx], y[train_idx], sample_weights(y[train_idx], is_de[train_idx], dw), C)
        pred[te] = clf.predict(X[de_idx[te]])
    return float(f1_score(y[de_idx], pred, average="macro"))


def _predict(model: LinearModel, texts: list[str], lang: str) -> np.ndarray:
    return np.asarray(model.predict_proba(texts, [lang] * len(texts)).argmax(axis=1))


def _labels(sents: Sequence[Any]) -> np.ndarray:
    return np.array([LABELS.index(s.label) for s in sents])


if __name__ == "__main__":
    raise SystemExit(main())
