#!/usr/bin/env python3
"""Independent re-computation of `longtail eval-rec` (numpy/scipy only).

Written from the protocol description, not from the Rust code:
  * items = items.jsonl order; each user's events sorted by (timestamp, row in
    interactions.csv); a repeated (user, item) keeps its first event only;
  * users with >= 3 distinct items: last = test target, second last =
    validation target, the rest = training; others: all training, not scored;
  * tail items: rank items by training count desc, then item id asc; head =
    items up to and including the first whose cumulative share >= 0.8;
  * tail users: evaluated users with <= N training items, N the smallest value
    with at least 20% of evaluated users at or below it;
  * full ranking over the catalogue, history excluded (train; train + the
    validation item at test); ties broken by lower item index;
  * most popular = training counts; item-kNN = cosine of binary training item
    columns, self-similarity 0, summed over history; EASE = -P/diag(P) with
    P = (X'X + lambda I)^-1, diagonal 0, summed over history, lambda chosen by
    validation NDCG@10 over the report's grid.

Usage: check_eval_rec.py PREPARED_DIR REPORT.json [--tol 0.002]
Exits 1 when any reported number differs by more than --tol.
"""
import argparse
import csv
import json
import math
import sys

import numpy as np

# scipy is imported where the sparse matrices are built, so that other scripts can import this
# module's protocol functions (load, split, pareto_tail) without it.


def load(dir_):
    item_ids = []
    with open(f"{dir_}/items.jsonl", encoding="utf-8") as f:
        for line in f:
            item_ids.append(json.loads(line)["item_id"])
    index = {iid: i for i, iid in enumerate(item_ids)}
    events = {}
    with open(f"{dir_}/interactions.csv", newline="", encoding="utf-8") as f:
        for row, rec in enumerate(csv.DictReader(f)):
            events.setdefault(rec["user_id"], []).append(
                (int(rec["timestamp"]), row, index[rec["item_id"]]))
    return item_ids, events


def first_purchases(evs):
    """One user's events in (timestamp, row) order, a repeated item keeping its first event:
    [(timestamp, item)]. Sorts `evs` in place."""
    evs.sort()
    out, seen = [], set()
    for t, _, item in evs:
        if item not in seen:
            seen.add(item)
            out.append((t, item))
    return out


def split(events):
    train, valid, test = [], [], []
    dropped = 0
    for evs in events.values():
        seq = [item for _, item in first_purchases(evs)]
        dropped += len(evs) - len(seq)
        if len(seq) >= 3:
            train.append(seq[:-2]); valid.append(seq[-2]); test.append(seq[-1])
        else:
            train.append(seq); valid.append(None); test.append(None)
    return train, valid, test, dropped


def pareto_tail(item_ids, counts, share=0.8):
    order = sorted(range(len(item_ids)), key=lambda i: (-counts[i], item_ids[i].encode()))
    total = counts.sum()
    tail = np.ones(len(item_ids), dtype=bool)
    cum = 0
    for i in order:
        cum += counts[i]
        tail[i] = False
        if cum / total >= share:
            break
    tail[counts == 0] = True
    return tail


def evaluate(score_fn, histories, targets, n_items, batch=512):
    import scipy.sparse as sp

    """Ranks of targets and top-10 lists, for users with a target."""
    ranks, tops = [], []
    users = [u for u, t in enumerate(targets) if t is not None]
    for start in range(0, len(users), batch):
        ub = users[start:start + batch]
        rows = np.repeat(np.arange(len(ub)), [len(histories[u]) for u in ub])
        cols = np.concatenate([np.asarray(histories[u], dtype=np.int64) for u in ub])
        H = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(ub), n_items))
        S = np.asarray(score_fn(H), dtype=np.float64)
        S[rows, cols] = -np.inf
        t = np.array([targets[u] for u in ub])
        ts = S[np.arange(len(ub)), t][:, None]
        idx = np.arange(n_items)[None, :]
        better = (S > ts) | ((S == ts) & (idx < t[:, None]))
        ranks.append(1 + better.sum(axis=1))
        top = np.argsort(-S, axis=1, kind="stable")[:, :10]
        # a list never holds excluded items (it is shorter on tiny catalogues)
        top[np.take_along_axis(S, top, axis=1) == -np.inf] = -1
        tops.append(top)
    return users, np.concatenate(ranks), np.concatenate(tops)


def metrics(users, ranks, tops, targets, tail_item, tail_user, n_items):
    def seg(mask):
        r = ranks[mask]
        out = {"users": int(mask.sum())}
        for k in (10, 20):
            hit = r <= k
            out[f"recall@{k}"] = float(hit.mean()) if len(r) else 0.0
            out[f"ndcg@{k}"] = float(np.where(hit, 1 / np.log2(r + 1), 0).mean()) if len(r) else 0.0
        return out
    t = np.array([targets[u] for u in users])
    tu = np.array([tail_user[u] for u in users])
    shown = tops >= 0
    exposure = np.bincount(tops[shown], minlength=n_items)
    x = np.sort(exposure).astype(float)
    n = len(x)
    gini = float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))
    return {
        "overall": seg(np.ones(len(users), dtype=bool)),
        "tail_items": seg(tail_item[t]),
        "head_items": seg(~tail_item[t]),
        "tail_users": seg(tu),
        "coverage@10": float((exposure > 0).mean()),
        "aplt@10": float(((tail_item[tops] & shown).sum(axis=1) / shown.sum(axis=1)).mean()),
        "gini@10": gini,
    }


def main():
    import scipy.sparse as sp

    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("report")
    ap.add_argument("--tol", type=float, default=0.001)
    args = ap.parse_args()
    report = json.load(open(args.report))
    item_ids, events = load(args.data)
    n = len(item_ids)
    train, valid, test, dropped = split(events)
    n_users = len(train)
    counts = np.zeros(n, dtype=np.int64)
    for h in train:
        for i in h:
            counts[i] += 1
    tail_item = pareto_tail(item_ids, counts)
    lens = sorted(len(train[u]) for u in range(n_users) if test[u] is not None)
    max_len = lens[max(1, math.ceil(0.2 * len(lens))) - 1]
    tail_user = [test[u] is not None and len(train[u]) <= max_len for u in range(n_users)]
    hist_test = [h + ([v] if v is not None else []) for h, v in zip(train, valid)]

    rows = np.repeat(np.arange(n_users), [len(h) for h in train])
    X = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(train))), shape=(n_users, n))
    G = (X.T @ X).toarray()
    norm = np.sqrt(np.diag(G))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.where(np.outer(norm, norm) > 0, G / np.outer(norm, norm), 0.0)
    np.fill_diagonal(sim, 0.0)

    def ease_b(lam):
        P = np.linalg.inv(G + lam * np.eye(n))
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        return B

    mine = {}
    mine["most_popular"] = lambda H: np.tile(counts.astype(float), (H.shape[0], 1))
    mine["item_knn"] = lambda H: H @ sim
    grid = report.get("ease_lambda", {}).get("grid", [])
    best = None
    for lam, reported in grid:
        B = ease_b(lam)
        u, r, tp = evaluate(lambda H: H @ B, train, valid, n)
        ndcg = float(np.where(r <= 10, 1 / np.log2(r + 1), 0).mean())
        print(f"ease lambda={lam}: validation NDCG@10 {ndcg:.5f} (report {reported:.5f})")
        if best is None or ndcg > best[1]:
            best = (lam, ndcg, B)
    failures = []
    if best is not None:
        if best[0] != report["ease_lambda"]["chosen"]:
            failures.append(f"EASE lambda: checker picks {best[0]}, report {report['ease_lambda']['chosen']}")
        B = best[2]
        mine["ease"] = lambda H: H @ B

    counts_ok = (report["protocol"]["split"]["duplicates_dropped"] == dropped
                 and report["protocol"]["segments"]["tail_items"] == int(tail_item.sum())
                 and report["protocol"]["segments"]["tail_user_max_train"] == max_len)
    if not counts_ok:
        failures.append("split/segment counts differ")
    worst = 0.0
    for name, fn in mine.items():
        if name not in report["models"]:
            failures.append(f"{name} missing from report")
            continue
        u, r, tp = evaluate(fn, hist_test, test, n)
        got = metrics(u, r, tp, test, tail_item, tail_user, n)
        rep = report["models"][name]
        for key, val in got.items():
            pairs = val.items() if isinstance(val, dict) else [("", val)]
            for sub, v in pairs:
                w = rep[key][sub] if sub else rep[key]
                d = abs(float(w) - float(v))
                worst = max(worst, d if sub != "users" else 0)
                if (sub == "users" and w != v) or d > args.tol:
                    failures.append(f"{name}.{key}.{sub}: report {w} vs checker {v}")
        print(f"{name}: recall@10 {got['overall']['recall@10']:.4f} ndcg@10 "
              f"{got['overall']['ndcg@10']:.4f} tail recall@10 {got['tail_items']['recall@10']:.4f} "
              f"head recall@10 {got['head_items']['recall@10']:.4f} coverage {got['coverage@10']:.4f} "
              f"aplt {got['aplt@10']:.4f} gini {got['gini@10']:.4f}")
    print(f"largest absolute difference: {worst:.6f} (tolerance {args.tol})")
    if failures:
        print("MISMATCH:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("OK: report agrees with the independent implementation")


if __name__ == "__main__":
    main()
