#!/usr/bin/env python3
"""Validation comparison of user representations for the interest model (frozen encoder).

Protocol = `longtail eval-rec` at the validation stage, via scripts/check_eval_rec.py's
functions (order by (timestamp, row), repeated (user, item) keep the first event, users with
>= 3 distinct items, target = second-last item, history = the items before it, full ranking
with the history excluded, ties by item index; tail items by pareto:0.8 on training counts).

Item side, for every variant: the checkpoint's cached item embeddings
(CKPT/item_embeddings.safetensors, written by `longtail train-interest`).
User side:
  * pooled N/decay: recency-weighted mean of the last N item embeddings (weight decay^k for the
    item k steps before the most recent), L2-normalised: what longtail-interest does.
  * text N/T: the last N items' texts (most recent first, each cut to (T-2)//N tokens so every
    item is represented, joined with " ; ") encoded by the same frozen encoder in one pass of
    at most T tokens (mean pooling, L2 norm).

usage: interest_user_repr.py DATA_DIR CKPT_DIR [--text N:T ...] [--no-pooled]
Needs numpy, scipy; torch + transformers for --text.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_eval_rec import load, pareto_tail, split  # noqa: E402

POOLED = [(n, d) for n in (1, 3, 5, 10, 20, 50, 10_000) for d in (1.0, 0.9, 0.8, 0.7, 0.5, 0.3)
          if n > 1 or d == 1.0]


def load_embeddings(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["embeddings"]
        f.seek(8 + n + t["data_offsets"][0])
        data = f.read(t["data_offsets"][1] - t["data_offsets"][0])
    return np.frombuffer(data, dtype="<f4").reshape(t["shape"]).astype(np.float64)


def validation_metrics(U, E, hists, targets, tail):
    """Recall@10, NDCG@10, tail-target Recall@10 of user vectors U against items E."""
    S = U @ E.T
    for r, h in enumerate(hists):
        S[r, h] = -np.inf
    t = np.asarray(targets)
    ts = S[np.arange(len(t)), t][:, None]
    idx = np.arange(E.shape[0])[None, :]
    rank = 1 + ((S > ts) | ((S == ts) & (idx < t[:, None]))).sum(axis=1)
    hit = rank <= 10
    ndcg = np.where(hit, 1 / np.log2(rank + 1), 0.0)
    tt = tail[t]
    return hit.mean(), ndcg.mean(), hit[tt].mean(), int(tt.sum())


def pooled_users(E, hists, n, decay):
    U = np.zeros((len(hists), E.shape[1]))
    for r, h in enumerate(hists):
        recent = h[-n:]
        w = decay ** np.arange(len(recent) - 1, -1, -1)
        U[r] = w @ E[recent]
    return U / (np.linalg.norm(U, axis=1, keepdims=True) + 1e-12)


def render(item):
    f = item.get("fields") or {}
    parts = [f.get(k, "").strip() for k in ("title", "brand", "categories", "description")]
    parts = [p for p in parts if p]
    return " | ".join(parts) if parts else item["text"]


class Encoder:
    def __init__(self, model_dir):
        import torch
        from transformers import AutoModel, AutoTokenizer
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()

    def ids(self, text, max_tokens):
        return self.tok(text, add_special_tokens=False, truncation=True,
                        max_length=max_tokens)["input_ids"]

    def encode(self, id_lists, batch=32):
        torch = self.torch
        cls, sep, pad = self.tok.cls_token_id, self.tok.sep_token_id, self.tok.pad_token_id
        # length-sorted batches: most users' texts are far shorter than T, padding is waste
        order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
        out = []
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                seqs = [[cls] + id_lists[i] + [sep] for i in order[s:s + batch]]
                width = max(map(len, seqs))
                ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs])
                mask = (ids != pad).long()
                h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).float()
                v = (h * m).sum(1) / m.sum(1)
                out.append(torch.nn.functional.normalize(v, dim=-1).numpy())
        vecs = np.empty((len(id_lists), out[0].shape[1]))
        vecs[order] = np.concatenate(out)
        return vecs


def text_users(enc, items, hists, n, max_tokens):
    budget = (max_tokens - 2) // n
    join = enc.ids(" ;", 4)
    cache = {}
    lists = []
    for h in hists:
        ids = []
        for i in reversed(h[-n:]):  # most recent first: truncation drops the oldest
            if i not in cache:
                cache[i] = enc.ids(render(items[i]), budget)
            ids += (join if ids else []) + cache[i]
        lists.append(ids[:max_tokens - 2])
    return enc.encode(lists)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("ckpt")
    ap.add_argument("--text", nargs="*", default=[], help="N:T variants of the text user tower")
    ap.add_argument("--no-pooled", action="store_true")
    ap.add_argument("--model", help="HF directory of the frozen encoder (default: interest.json "
                    "init_model)")
    ap.add_argument("--check-items", type=int, default=50,
                    help="items re-encoded in torch to check the Rust cache is the same space")
    args = ap.parse_args()
    item_ids, events = load(args.data)
    items = [json.loads(line) for line in open(f"{args.data}/items.jsonl", encoding="utf-8")]
    train, valid, _, _ = split(events)
    counts = np.zeros(len(item_ids))
    for h in train:
        for i in h:
            counts[i] += 1
    tail = pareto_tail(item_ids, counts)
    users = [u for u, v in enumerate(valid) if v is not None]
    hists = [train[u] for u in users]
    targets = [valid[u] for u in users]
    E = load_embeddings(f"{args.ckpt}/item_embeddings.safetensors")
    meta = json.load(open(f"{args.ckpt}/interest.json"))
    print(f"{len(users)} validation users ({int(tail[targets].sum())} tail-item targets), "
          f"{E.shape[0]} items ({int(tail.sum())} tail), item max_len {meta['max_len']}")
    print("| user representation | valid NDCG@10 | valid Recall@10 | valid tail-item R@10 |")
    print("|---|---|---|---|")
    if not args.no_pooled:
        for n, d in POOLED:
            r, nd, tr, _ = validation_metrics(pooled_users(E, hists, n, d), E, hists, targets, tail)
            name = "all" if n >= 10_000 else n
            print(f"| pooled N={name} decay={d} | {nd:.4f} | {r:.4f} | {tr:.4f} |", flush=True)
    if args.text:
        enc = Encoder(args.model or meta["init_model"])
        check = list(range(min(args.check_items, len(items))))
        got = enc.encode([enc.ids(render(items[i]), meta["max_len"] - 2) for i in check])
        cos = (got * E[check]).sum(1)
        print(f"torch vs cached item embeddings ({len(check)} items): min cos {cos.min():.5f}",
              flush=True)
        for spec in args.text:
            n, t = map(int, spec.split(":"))
            started = time.time()
            U = text_users(enc, items, hists, n, t)
            r, nd, tr, _ = validation_metrics(U, E, hists, targets, tail)
            print(f"| text N={n} T={t} ({(t - 2) // n} tok/item) | {nd:.4f} | {r:.4f} | "
                  f"{tr:.4f} |  ({time.time() - started:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
