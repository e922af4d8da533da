#!/usr/bin/env python3
"""Validation Recall@10 / NDCG@10 of user representations over cached item embeddings.

Compares the user tower choices of longtail-interest (recency-weighted mean of the last N item
embeddings) for several N and decays, on the leave-last-out validation targets (same protocol
as `longtail eval-rec`: order by (timestamp, row), repeated (user, item) keep the first, users
with >= 3 distinct items, full ranking with training items excluded). Tail = items.jsonl label.

usage: interest_user_repr.py DATA_DIR CKPT_DIR/item_embeddings.safetensors
Needs numpy only.
"""
import csv, json, struct, sys
import numpy as np


def load_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["embeddings"]
        f.seek(8 + n + t["data_offsets"][0])
        data = f.read(t["data_offsets"][1] - t["data_offsets"][0])
    return np.frombuffer(data, dtype="<f4").reshape(t["shape"])


def main(data_dir, emb_path):
    items = [json.loads(l) for l in open(f"{data_dir}/items.jsonl")]
    index = {it["item_id"]: i for i, it in enumerate(items)}
    tail = np.array([it["label"] == "tail" for it in items])
    per_user = {}
    with open(f"{data_dir}/interactions.csv") as f:
        for row, r in enumerate(csv.DictReader(f)):
            per_user.setdefault(r["user_id"], []).append((int(r["timestamp"]), row, index[r["item_id"]]))
    seqs = []
    for evs in per_user.values():
        evs.sort()
        seen, seq = set(), []
        for _, _, i in evs:
            if i not in seen:
                seen.add(i)
                seq.append(i)
        if len(seq) >= 3:
            seqs.append(seq)
    E = load_st(emb_path).astype(np.float64)
    print(f"{len(seqs)} evaluated users, {E.shape[0]} items")
    for n in (1, 5, 10, 1000):
        for decay in (1.0, 0.8):
            if n == 1 and decay != 1.0:
                continue
            hits, nd, th, tn = 0, 0.0, 0, 0
            for seq in seqs:
                hist, target = seq[:-2], seq[-2]
                recent = hist[-n:]
                w = decay ** np.arange(len(recent) - 1, -1, -1)
                u = (w[:, None] * E[recent]).sum(0)
                u /= np.linalg.norm(u) + 1e-12
                s = E @ u
                s[hist] = -np.inf
                ts = s[target]
                rank = 1 + np.sum(s > ts) + np.sum((s == ts)[:target])
                hit = rank <= 10
                hits += hit
                nd += hit / np.log2(rank + 1)
                if tail[target]:
                    tn += 1
                    th += hit
            print(f"N={n:5d} decay={decay:.1f}: valid Recall@10 {hits/len(seqs):.4f} "
                  f"NDCG@10 {nd/len(seqs):.4f} tail-target Recall@10 {th/max(tn,1):.4f} ({tn})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
