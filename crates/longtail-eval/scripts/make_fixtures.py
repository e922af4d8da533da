#!/usr/bin/env python3
"""Reference values from scikit-learn for longtail-eval's unit tests.

Writes small JSON fixtures of synthetic numbers (seeded random scores and
texts built from a fixed toy vocabulary; no data set is read) into
crates/longtail-eval/fixtures/:

* metrics.json  roc_auc_score, average_precision_score, roc_curve
                (drop_intermediate=False), accuracy, per-class
                precision/recall/F1/support, macro-F1, confusion_matrix at a
                fixed threshold, and top-label ECE (15 bins; numpy, since
                sklearn has no ECE)
* tfidf.json    TfidfVectorizer(ngram_range=(1, 2), min_df=2,
                sublinear_tf=True): vocabulary, idf, and transformed rows
* logreg.json   LogisticRegression(C, l2, lbfgs, tight tol) on those TF-IDF
                rows: coefficients, intercept, predicted probabilities. lbfgs
                stops on its relative-decrease test with a gradient of ~1e-6
                left at C=16, so sklearn's solution is polished with exact
                Newton steps (dense, 131 features) to a 1e-12 gradient; both
                are stored, and they must agree to 1e-4

Usage: python3 crates/longtail-eval/scripts/make_fixtures.py
Requires scikit-learn (pip install scikit-learn).
"""

import json
import os

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures")


def top_label_ece(p, y, n_bins=15):
    """Guo et al. (2017): confidence = max(p, 1-p), bins (lo, hi]."""
    conf = np.maximum(p, 1.0 - p)
    pred = p >= 0.5
    correct = (pred == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def metric_case(name, p, y, threshold):
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    pred = (p >= threshold).astype(int)
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0
    )
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return {
        "name": name,
        "scores": p.tolist(),
        "labels": [bool(v) for v in y],
        "threshold": threshold,
        "auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "roc_fpr": fpr.tolist(),
        "roc_tpr": tpr.tolist(),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "precision": prec.tolist(),
        "recall": rec.tolist(),
        "f1": f1.tolist(),
        "support": [int(s) for s in sup],
        "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "ece": top_label_ece(p, y),
    }


def metrics_fixture(rng):
    cases = []
    # continuous scores, informative
    y = rng.random(60) < 0.4
    p = np.clip(0.35 + 0.3 * y + rng.normal(0, 0.2, 60), 0, 1)
    cases.append(metric_case("continuous", p, y, 0.5))
    # heavy ties: scores rounded to one decimal
    y = rng.random(50) < 0.55
    p = np.round(np.clip(0.4 + 0.2 * y + rng.normal(0, 0.25, 50), 0, 1), 1)
    cases.append(metric_case("ties", p, y, 0.45))
    # all-equal scores (AUC 0.5), threshold below them: everything positive
    y = rng.random(20) < 0.3
    p = np.full(20, 0.3)
    cases.append(metric_case("constant", p, y, 0.3))
    # threshold above every score: a class is never predicted (zero division)
    y = rng.random(25) < 0.5
    p = rng.random(25) * 0.6
    cases.append(metric_case("nothing_predicted", p, y, 0.9))
    # imbalanced, tiny
    cases.append(metric_case("tiny", [0.1, 0.4, 0.35, 0.8], [False, False, True, True], 0.5))
    return cases


WORDS = (
    "paper pen stapler ink toner desk chair lamp folder binder label printer "
    "envelope marker tape clip note pad calendar planner"
).split()
FILLER = ["a", "I", "x", "2", "10", "of", "the", "and", "Pro", "XL", "A4", "café", "self_inking"]


def make_text(rng, tail):
    n = int(rng.integers(3, 12))
    # tail docs lean towards the second half of the vocabulary
    lo, hi = (8, len(WORDS)) if tail else (0, 14)
    words = []
    for _ in range(n):
        if rng.random() < 0.25:
            words.append(str(rng.choice(FILLER)))
        else:
            w = WORDS[int(rng.integers(lo, hi))]
            words.append(w.upper() if rng.random() < 0.1 else w)
    sep = [" ", " ", ", ", " | ", "-", "  "]
    out = words[0]
    for w in words[1:]:
        out += str(rng.choice(sep)) + w
    return out


def polish(x, y, c, coef, intercept):
    """Newton steps on C * sum(logloss) + |w|^2 / 2 (intercept unpenalised)."""
    y = np.asarray(y, dtype=float)
    xa = np.hstack([x, np.ones((x.shape[0], 1))])
    theta = np.append(coef, intercept)
    reg = np.append(np.ones(x.shape[1]), 0.0)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xa @ theta)))
        grad = c * xa.T @ (p - y) + reg * theta
        if np.abs(grad).max() < 1e-12:
            break
        hess = c * (xa.T * (p * (1 - p))) @ xa + np.diag(reg)
        theta = theta - np.linalg.solve(hess, grad)
    else:
        raise RuntimeError("Newton polishing did not converge")
    return theta[:-1], theta[-1]


def text_fixtures(rng):
    y_train = rng.random(80) < 0.5
    y_test = rng.random(30) < 0.5
    train = [make_text(rng, t) for t in y_train]
    test = [make_text(rng, t) for t in y_test] + ["zzz unknown words only", ""]
    y_test = list(y_test) + [False, True]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform(train)
    x_test = vec.transform(test)
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)

    def rows(x):
        x = x.tocsr()
        out = []
        for i in range(x.shape[0]):
            s, e = x.indptr[i], x.indptr[i + 1]
            idx = x.indices[s:e]
            order = np.argsort(idx)
            out.append([[int(idx[j]), float(x.data[s:e][j])] for j in order])
        return out

    tfidf = {
        "train_texts": train,
        "test_texts": test,
        "vocabulary": vocab,
        "idf": vec.idf_.tolist(),
        "train_rows": rows(x_train),
        "test_rows": rows(x_test),
    }
    fits = []
    for c in [0.25, 1.0, 16.0]:
        lr = LogisticRegression(C=c, solver="lbfgs", tol=1e-12, max_iter=100000)
        lr.fit(x_train, y_train)
        coef, intercept = polish(x_train.toarray(), y_train, c, lr.coef_[0], lr.intercept_[0])
        assert np.abs(coef - lr.coef_[0]).max() < 1e-4
        z_test = x_test.toarray() @ coef + intercept
        proba = 1.0 / (1.0 + np.exp(-z_test))
        fits.append(
            {
                "c": c,
                "coef": coef.tolist(),
                "intercept": float(intercept),
                "test_proba": proba.tolist(),
                "sklearn_coef": lr.coef_[0].tolist(),
                "sklearn_intercept": float(lr.intercept_[0]),
                "sklearn_test_proba": lr.predict_proba(x_test)[:, 1].tolist(),
                "test_auc": float(roc_auc_score(y_test, lr.predict_proba(x_test)[:, 1])),
            }
        )
    logreg = {
        "train_labels": [bool(v) for v in y_train],
        "test_labels": [bool(v) for v in y_test],
        "fits": fits,
    }
    return tfidf, logreg


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    meta = {"generator": "scripts/make_fixtures.py", "sklearn": sklearn.__version__}
    tfidf, logreg = text_fixtures(rng)
    for name, body in [
        ("metrics.json", {"meta": meta, "cases": metrics_fixture(rng)}),
        ("tfidf.json", {"meta": meta, **tfidf}),
        ("logreg.json", {"meta": meta, **logreg}),
    ]:
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(body, f, indent=1)
            f.write("\n")
        print("wrote", os.path.join(OUT, name))


if __name__ == "__main__":
    main()
