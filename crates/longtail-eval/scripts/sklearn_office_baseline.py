#!/usr/bin/env python3
"""The TF-IDF + logistic regression baseline in scikit-learn, for comparison
with longtail-eval's Rust implementation on a `longtail prepare` output.

Same setup as `longtail_eval::baselines`: TfidfVectorizer(ngram_range=(1, 2),
min_df=2, sublinear_tf=True) fitted on the train split's `text`,
LogisticRegression(C) for C in 0.25, 1, 4, 16 chosen by validation ROC-AUC
(ties: smaller C), threshold maximising validation macro-F1 (midpoints between
distinct scores; ties nearest 0.5), metrics on test. Positive class = tail.

Usage: python3 crates/longtail-eval/scripts/sklearn_office_baseline.py [runs/office]
Reads DIR/items.jsonl; prints numbers only (nothing is written).
"""

import json
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

GRID = [0.25, 1.0, 4.0, 16.0]


def load(path):
    splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            texts, labels = splits[row["split"]]
            texts.append(row["text"])
            labels.append(row["label"] == "tail")
    return {k: (t, np.array(l)) for k, (t, l) in splits.items()}


def select_threshold(p, y):
    distinct = np.unique(p)
    candidates = [distinct[0], np.nextafter(distinct[-1], np.inf)]
    candidates += list((distinct[:-1] + distinct[1:]) / 2)
    best = None
    for t in candidates:
        f1 = f1_score(y, p >= t, average="macro", zero_division=0)
        key = (f1, -abs(t - 0.5), -t)
        if best is None or key > best[0]:
            best = (key, t)
    return best[1]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "runs/office"
    data = load(f"{root}/items.jsonl")
    (xtr_t, ytr), (xva_t, yva), (xte_t, yte) = data["train"], data["validation"], data["test"]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    xtr = vec.fit_transform(xtr_t)
    xva, xte = vec.transform(xva_t), vec.transform(xte_t)
    print(f"train {len(ytr)} ({ytr.sum()} tail), validation {len(yva)}, test {len(yte)}; "
          f"{xtr.shape[1]} features")
    fits = []
    for c in GRID:
        for tol, label in [(1e-4, "default tol"), (1e-10, "tight tol")]:
            lr = LogisticRegression(C=c, tol=tol, max_iter=100000).fit(xtr, ytr)
            fits.append((c, label, lr, roc_auc_score(yva, lr.predict_proba(xva)[:, 1])))
    for label in ["default tol", "tight tol"]:
        rows = [f for f in fits if f[1] == label]
        print(f"\n[{label}] validation ROC-AUC by C: "
              + ", ".join(f"{c}: {auc:.4f}" for c, _, _, auc in rows))
        c, _, lr, _ = max(rows, key=lambda f: (f[3], -f[0]))
        pva, pte = lr.predict_proba(xva)[:, 1], lr.predict_proba(xte)[:, 1]
        t = select_threshold(pva, yva)
        print(f"[{label}] chosen C = {c}; test ROC-AUC {roc_auc_score(yte, pte):.4f} "
              f"PR-AUC {average_precision_score(yte, pte):.4f} "
              f"macro-F1 {f1_score(yte, pte >= t, average='macro'):.4f} "
              f"accuracy {accuracy_score(yte, pte >= t):.4f} (threshold {t:.4f})")
        print(f"[{label}] test ROC-AUC for every C: "
              + ", ".join(f"{f[0]}: {roc_auc_score(yte, f[2].predict_proba(xte)[:, 1]):.4f}" for f in rows))


if __name__ == "__main__":
    main()
