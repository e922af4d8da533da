#!/usr/bin/env python3
"""CPU prototype of a UniSRec/SASRec-style next-item model over frozen text embeddings.

Validation-only tuning (the test targets are never read into any metric). Protocol = that of
scripts/check_eval_rec.py (its load/split/pareto_tail functions are imported): items in
items.jsonl order, events sorted by (timestamp, row), repeated (user, item) keep the first,
users with >= 3 distinct items: second-last item = validation target, items before it =
history; full ranking over the catalogue with the history excluded, ties by lower item index.
Tail items: pareto 0.8 on training counts.

Item text = "{title} | {brand} | {categories} | {description}" (blank fields dropped with the
separator before them), all-MiniLM-L6-v2, max_len 48 tokens incl. [CLS]/[SEP], mean pooling
over the attention mask, L2-normalised; cached to /tmp/proto/text_emb.npy (PROTO_MAX_LEN=N for
another length: text_emb_N.npy). The cache is not keyed by the data: delete it for other data.

usage: proto_seqrec.py DATA_DIR CKPT_DIR [--refs] [--sweep NAME ...] [--out /tmp/proto/results.md]
Needs numpy, torch, transformers. Single-threaded (torch.set_num_threads(1)).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_eval_rec import first_purchases, load, pareto_tail, split  # noqa: E402  (the eval-rec protocol)

torch.set_num_threads(1)
CACHE = "/tmp/proto"


def render(item):
    if "text" in item:  # a prepared items.jsonl (`longtail prepare`): already rendered
        return item["text"]
    parts = [(item.get(k) or "").strip() for k in ("title", "brand", "categories", "description")]
    parts = [p for p in parts if p]
    return " | ".join(parts)


def text_embeddings(data, ckpt, max_len=48):
    max_len = int(os.environ.get("PROTO_MAX_LEN", max_len))
    path = f"{CACHE}/text_emb.npy" if max_len == 48 else f"{CACHE}/text_emb_{max_len}.npy"
    if os.path.exists(path):
        return np.load(path)
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModel.from_pretrained(ckpt).eval()
    items = [json.loads(l) for l in open(f"{data}/items.jsonl", encoding="utf-8")]
    cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    bar = tok("|", add_special_tokens=False)["input_ids"]
    ids = []
    for it in items:
        x = tok(render(it), add_special_tokens=False)["input_ids"]
        if len(x) > max_len - 2:
            x = x[:max_len - 2]
            while x and x[-1:] == bar:  # drop a separator left dangling by the cut
                x = x[:-1]
        ids.append([cls] + x + [sep])
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for s in range(0, len(order), 64):
            b = order[s:s + 64]
            w = max(len(ids[i]) for i in b)
            t = torch.tensor([ids[i] + [pad] * (w - len(ids[i])) for i in b])
            m = torch.tensor([[1] * len(ids[i]) + [0] * (w - len(ids[i])) for i in b])
            h = model(input_ids=t, attention_mask=m).last_hidden_state
            mf = m.unsqueeze(-1).float()
            v = F.normalize((h * mf).sum(1) / mf.sum(1), dim=-1)
            out[b] = v.numpy()
    os.makedirs(CACHE, exist_ok=True)
    np.save(path, out)
    return out


class Data:
    def __init__(self, data_dir):
        item_ids, events = load(data_dir)
        self.n = len(item_ids)
        train, valid, test, _ = split(events)
        del test  # never used: tuning on validation only
        self.train = train
        self.counts = np.zeros(self.n, dtype=np.int64)
        for h in train:
            for i in h:
                self.counts[i] += 1
        self.tail = pareto_tail(item_ids, self.counts)
        self.eval_users = [u for u, v in enumerate(valid) if v is not None]
        self.targets = np.array([valid[u] for u in self.eval_users])
        self.hists = [train[u] for u in self.eval_users]
        self.time_tables(events)

    def time_tables(self, events):
        """Day of every training item (split()'s first purchases) and cumulative daily counts of
        the training events, for the time-aware popularity prior (`time_prior`)."""
        days = []
        for evs in events.values():
            d = [t // 86400 for t, _ in first_purchases(evs)]
            days.append(d[:-2] if len(d) >= 3 else d)
        d0 = min(x for d in days for x in d)
        self.train_days = [[x - d0 + 1 for x in d] for d in days]  # day 0 = before everything
        nd = max(x for d in self.train_days for x in d) + 1
        C = np.zeros((nd, self.n), dtype=np.float32)
        for h, d in zip(self.train, self.train_days):
            np.add.at(C, (np.array(d, dtype=np.int64), np.array(h, dtype=np.int64)), 1)
        self.cum = np.cumsum(C, axis=0)  # cum[d, i] = training events of i on days <= d
        self.first_day = np.argmax(self.cum > 0, axis=0)  # per item, its first purchase day
        # query day of an evaluated user = day of the last history item
        self.hist_days = np.array([self.train_days[u][-1] for u in self.eval_users])


def rank_metrics(S, hists, targets, tail):
    """S: (users, items) float64 scores. Returns dict of validation metrics."""
    S = np.array(S, dtype=np.float64, copy=True)
    for r, h in enumerate(hists):
        S[r, h] = -np.inf
    t = targets
    ts = S[np.arange(len(t)), t][:, None]
    idx = np.arange(S.shape[1])[None, :]
    rank = 1 + ((S > ts) | ((S == ts) & (idx < t[:, None]))).sum(axis=1)
    hit = rank <= 10
    ndcg = np.where(hit, 1 / np.log2(rank + 1), 0.0)
    tt = tail[t]
    return {"ndcg": ndcg.mean(), "r10": hit.mean(), "tail_r10": hit[tt].mean(),
            "head_r10": hit[~tt].mean(), "n_tail": int(tt.sum())}


# --------------------------------------------------------------------------- references
def references(d, T):
    rows = []
    U = T[[h[-1] for h in d.hists]]
    rows.append(("frozen text, last item, cosine", rank_metrics(U @ T.T, d.hists, d.targets, d.tail)))
    X = np.zeros((len(d.train), d.n))
    for r, h in enumerate(d.train):
        X[r, h] = 1
    G = X.T @ X
    H = np.zeros((len(d.hists), d.n))
    for r, h in enumerate(d.hists):
        H[r, h] = 1
    for lam in (10, 50, 100, 200, 500):
        P = np.linalg.inv(G + lam * np.eye(d.n))
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        rows.append((f"EASE lambda={lam}", rank_metrics(H @ B, d.hists, d.targets, d.tail)))
    norm = np.sqrt(np.diag(G))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.where(np.outer(norm, norm) > 0, G / np.outer(norm, norm), 0.0)
    np.fill_diagonal(sim, 0.0)
    rows.append(("item-kNN (cosine, sum)", rank_metrics(H @ sim, d.hists, d.targets, d.tail)))
    return rows


# --------------------------------------------------------------------------- model
DEFAULT = dict(
    text=True, whiten=False, id=False, id_min_count=1, width=64, layers=2, heads=2, ffn_mult=4,
    pre_ln=False, dropout=0.2, emb_dropout=None, attn_dropout=None, score="cos", tau=0.07,
    lr=1e-3, wd=0.01, batch=128, max_hist=50, epochs=200, patience=8, max_seconds=170,
    seed=0, id_init=0.02,
    # tail-item options (all off by default; training-only, serving is plain cos/tau):
    # id_dropout p: per step, each item's ID embedding is zeroed with prob. p (one mask for the
    #   history inputs and the catalogue outputs), so the text path must carry head items too.
    # logq b: training logits += b * log q_i, q_i = (count_i + 1) / sum; the popularity prior
    #   is absorbed in training and left out at serving, so b > 0 shifts scores towards the tail.
    # tail_loss_alpha a: per-target loss weight (count_target + 1)^-a, mean 1 over the batch.
    # id_gate g: ID part scaled by a learned scalar initialised at g (None = no gate).
    # recency g: per-target loss weight g^(positions from the end of the training sequence),
    #   mean 1 over the batch (1.0 = off; 0.0 = only each sequence's last target).
    id_dropout=0.0, logq=0.0, tail_loss_alpha=0.0, id_gate=None, recency=1.0,
    # time_prior: logits += w . f(day, item), f = log1p of the item's training events in the 30 /
    #   180 days before the query day and before it at all, and log1p(age in days); counts stop the
    #   day before the query (no same-day leak). w learned; kept at serving (part of the model).
    time_prior=False, time_windows=(30, 180),
    # text_skip b: a second score head in the frozen text space, logits += beta cos(P u, t_i) / tau
    #   (P: width -> 384 learned, beta learned from b; 0 = off): fine-grained text matches for
    #   items the adaptor + ID space ranks by popularity.
    text_skip=0.0,
    # id_unk: items below id_min_count share one learned "unknown ID" vector instead of a zero
    #   ID part, so the text-only (tail) items can be placed as a group relative to the head.
    # two_channel: score = cos(A u, text part)/tau + cos(B u, ID part)/tau, the ID channel of an
    #   item without an ID being a learned shared vector: text matching is not bent by ID geometry.
    # group_la g: group-level logit adjustment, training logits += g * log(share of the item's
    #   group, head or tail, among training targets); left out at serving, so the served score
    #   is the head/tail-balanced posterior with each group's inner order kept.
    # moe k: UniSRec's mixture-of-adaptors, text part = LN(sum_k softmax(G t)_k (W_k (t - c_k)))
    #   with k experts (0 = the single linear adaptor).
    id_unk=False, two_channel=False, group_la=0.0, moe=0,
)


class Block(nn.Module):
    def __init__(self, w, heads, ffn, drop, attn_drop, pre_ln):
        super().__init__()
        self.h, self.pre = heads, pre_ln
        self.qkv = nn.Linear(w, 3 * w)
        self.proj = nn.Linear(w, w)
        self.ln1, self.ln2 = nn.LayerNorm(w, eps=1e-12 if not pre_ln else 1e-5), nn.LayerNorm(w)
        self.ff1, self.ff2 = nn.Linear(w, ffn), nn.Linear(ffn, w)
        self.drop, self.adrop = nn.Dropout(drop), nn.Dropout(attn_drop)

    def attn(self, x, mask):
        B, L, W = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.h, W // self.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-1, -2)) / (W // self.h) ** 0.5 + mask[:, None]
        a = self.adrop(a.softmax(-1))
        return self.proj((a @ v).transpose(1, 2).reshape(B, L, W))

    def ffn(self, x):
        return self.ff2(self.drop(F.gelu(self.ff1(x))))

    def forward(self, x, mask):
        if self.pre:
            x = x + self.drop(self.attn(self.ln1(x), mask))
            return x + self.drop(self.ffn(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attn(x, mask)))
        return self.ln2(x + self.drop(self.ffn(x)))


class SeqRec(nn.Module):
    def __init__(self, c, T, counts):
        super().__init__()
        self.c = c
        n, w = T.shape[0], c["width"]
        if c["text"]:
            self.register_buffer("T", torch.tensor(T, dtype=torch.float32))
            self.tproj = nn.Linear(T.shape[1], w)
            self.tln = nn.LayerNorm(w)
            if c["moe"]:
                k, dt = c["moe"], T.shape[1]
                self.experts = nn.Parameter(torch.randn(k, dt, w) * 0.02)
                self.centres = nn.Parameter(torch.zeros(k, dt))
                self.gate_w = nn.Linear(dt, k)
        if c["id"]:
            self.idemb = nn.Embedding(n, w)
            nn.init.normal_(self.idemb.weight, std=c["id_init"])
            self.register_buffer("idmask", torch.tensor(counts >= c["id_min_count"],
                                                        dtype=torch.float32)[:, None])
            if c["id_gate"] is not None:
                self.gate = nn.Parameter(torch.tensor(float(c["id_gate"])))
            if c["id_unk"] or c["two_channel"]:
                self.unk = nn.Parameter(torch.randn(w) * c["id_init"])
            if c["two_channel"]:
                self.ch_t = nn.Linear(w, w)
                self.ch_i = nn.Linear(w, w)
        if c["time_prior"]:
            self.tw = nn.Parameter(torch.zeros(len(c["time_windows"]) + 2))
        if c["text_skip"]:
            self.skip = nn.Linear(w, T.shape[1])
            self.beta = nn.Parameter(torch.tensor(float(c["text_skip"])))
        self.pos = nn.Embedding(c["max_hist"], w)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.ln_in = nn.LayerNorm(w)
        drop = c["dropout"]
        self.edrop = nn.Dropout(c["emb_dropout"] if c["emb_dropout"] is not None else drop)
        ad = c["attn_dropout"] if c["attn_dropout"] is not None else drop
        self.blocks = nn.ModuleList(Block(w, c["heads"], c["ffn_mult"] * w, drop, ad, c["pre_ln"])
                                    for _ in range(c["layers"]))
        self.ln_out = nn.LayerNorm(w) if c["pre_ln"] else nn.Identity()

    def items(self):
        """Catalogue vectors; called once per step, so one ID-dropout mask serves inputs and outputs."""
        e = 0
        if self.c["text"] and self.c["moe"]:
            X = self.T[None] - self.centres[:, None]  # (k, n, dt)
            Y = torch.einsum("knd,kdw->nkw", X, self.experts)
            g = torch.softmax(self.gate_w(self.T), -1)[..., None]
            e = self.tln((g * Y).sum(1))
        elif self.c["text"]:
            e = self.tln(self.tproj(self.T))
        if self.c["id"]:
            mask = self.idmask
            if self.training and self.c["id_dropout"] > 0:
                # no 1/(1-p) rescale: a dropped item must look exactly like a text-only (tail) item
                mask = mask * (torch.rand_like(mask) >= self.c["id_dropout"])
            idv = self.idemb.weight * mask
            if self.c["id_unk"] or self.c["two_channel"]:
                idv = idv + (1 - mask) * self.unk
            if self.c["two_channel"]:
                return (e, idv)
            e = e + (self.gate * idv if self.c["id_gate"] is not None else idv)
        return e

    def encode(self, seq, E):
        """seq: (B, L) left-padded with -1. Returns (B, L, w) outputs."""
        B, L = seq.shape
        pad = seq < 0
        if isinstance(E, tuple):
            E = E[0] + E[1]
        x = E[seq.clamp(min=0)] * (~pad)[..., None]
        x = x + self.pos.weight[self.c["max_hist"] - L:][None]
        x = self.edrop(self.ln_in(x))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
        bad = causal[None] | pad[:, None, :]
        bad = bad & ~torch.eye(L, dtype=torch.bool)[None]  # a row never has all keys masked
        mask = torch.zeros(B, L, L).masked_fill(bad, float("-inf"))
        for b in self.blocks:
            x = b(x, mask)
        return self.ln_out(x)

    def logits(self, u, E):
        if isinstance(E, tuple):
            et, ei = E
            return (F.normalize(self.ch_t(u), dim=-1) @ F.normalize(et, dim=-1).T
                    + F.normalize(self.ch_i(u), dim=-1) @ F.normalize(ei, dim=-1).T) / self.c["tau"]
        if self.c["score"] == "cos":
            lg = F.normalize(u, dim=-1) @ F.normalize(E, dim=-1).T / self.c["tau"]
        else:
            lg = u @ E.T
        if self.c["text_skip"]:
            lg = lg + self.beta * F.normalize(self.skip(u), dim=-1) @ self.T.T / self.c["tau"]
        return lg


def time_features(d, days, windows):
    """(len(days), n, k) features of every item at each query day (events before that day)."""
    prev = np.maximum(days - 1, 0)
    tot = d.cum[prev]
    f = [np.log1p(tot - d.cum[np.maximum(prev - w, 0)]) for w in windows]
    f.append(np.log1p(tot))
    age = np.where(tot > 0, days[:, None] - d.first_day[None, :], 0)
    f.append(np.log1p(age))
    return torch.tensor(np.stack(f, -1), dtype=torch.float32)


def time_bias(m, d, days, windows):
    u, inv = np.unique(days, return_inverse=True)
    return (time_features(d, u, windows) @ m.tw)[torch.tensor(inv)]


def pad_left(seqs, L):
    out = np.full((len(seqs), L), -1, dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-L:]
        if len(s):
            out[r, L - len(s):] = s
    return torch.tensor(out)


def whiten(T):
    X = T - T.mean(0)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    W = Vt.T / (s / np.sqrt(len(X)) + 1e-6)
    Z = X @ W
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)


def train_eval(d, T, **kw):
    c = dict(DEFAULT, **kw)
    torch.manual_seed(c["seed"])
    rng = np.random.default_rng(c["seed"])
    Tm = whiten(T) if c["whiten"] else T
    m = SeqRec(c, Tm, d.counts)
    opt = torch.optim.AdamW(m.parameters(), lr=c["lr"], weight_decay=c["wd"])
    L = c["max_hist"]
    seqs = [h[-(L + 1):] for h in d.train if len(h) >= 2]
    X = pad_left([s[:-1] for s in seqs], L)
    Y = pad_left([s[1:] for s in seqs], L)
    if c["time_prior"]:
        dseqs = [ds[-(L + 1):] for h, ds in zip(d.train, d.train_days) if len(h) >= 2]
        XD = pad_left([x[:-1] for x in dseqs], L)  # day of each input position
    lens = np.array([len(x) for x in seqs])
    H = pad_left(d.hists, L)
    eorder = np.argsort([len(h) for h in d.hists], kind="stable")
    einv = np.argsort(eorder)
    H = H[torch.tensor(eorder)]
    cnt = torch.tensor(d.counts, dtype=torch.float32) + 1
    logq = c["logq"] * (cnt / cnt.sum()).log()  # added to training logits only
    if c["group_la"]:
        tail_t = torch.tensor(d.tail)
        share = float(tail_t[Y[Y >= 0]].float().mean())
        logq = logq + c["group_la"] * torch.where(tail_t, torch.tensor(share).log(),
                                                  torch.tensor(1 - share).log())
    best, best_ep, since, t0, hist = None, 0, 0, time.time(), []
    ep = 0
    for ep in range(1, c["epochs"] + 1):
        m.train()
        # length buckets: sort by length (random ties), cut into batches, shuffle the batches
        perm = np.lexsort((rng.random(len(seqs)), lens))
        batches = [perm[s:s + c["batch"]] for s in range(0, len(perm), c["batch"])]
        tot = 0.0
        for bi in rng.permutation(len(batches)):
            b = torch.tensor(batches[bi])
            x, y = X[b], Y[b]
            # trim the all-pad left columns of this batch
            keep = int((x >= 0).any(0).nonzero().min())
            x, y = x[:, keep:], y[:, keep:]
            E = m.items()
            out = m.encode(x, E)
            valid = y >= 0
            t = y[valid]
            lg = m.logits(out[valid], E)
            if c["logq"] or c["group_la"]:
                lg = lg + logq
            if c["time_prior"]:
                qd = XD[b][:, keep:][valid].numpy()
                lg = lg + time_bias(m, d, qd, c["time_windows"])
            w = torch.ones(len(t))
            if c["tail_loss_alpha"]:
                w = w * cnt[t] ** -c["tail_loss_alpha"]
            if c["recency"] != 1.0:
                back = torch.arange(y.shape[1] - 1, -1, -1, dtype=torch.float32)
                w = w * (torch.tensor(c["recency"]) ** back).expand(y.shape)[valid]
            if c["tail_loss_alpha"] or c["recency"] != 1.0:
                loss = (F.cross_entropy(lg, t, reduction="none") * (w / w.mean())).mean()
            else:
                loss = F.cross_entropy(lg, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
        m.eval()
        with torch.no_grad():
            E = m.items()
            S = []
            for s in range(0, len(H), 512):
                h = H[s:s + 512]
                h = h[:, int((h >= 0).any(0).nonzero().min()):]
                lg = m.logits(m.encode(h, E)[:, -1], E)
                if c["time_prior"]:
                    qd = d.hist_days[eorder[s:s + 512]]
                    lg = lg + time_bias(m, d, qd, c["time_windows"])
                S.append(lg.numpy())
            S = np.concatenate(S)[einv]
        met = rank_metrics(S, d.hists, d.targets, d.tail)
        hist.append(round(met["ndcg"], 4))
        if best is None or met["ndcg"] > best["ndcg"]:
            best, best_ep, since = met, ep, 0
        else:
            since += 1
        if since >= c["patience"] or time.time() - t0 > c["max_seconds"]:
            break
    if c["time_prior"]:
        print("time prior weights", m.tw.detach().numpy().round(3), flush=True)
    if c["text_skip"]:
        print("text skip beta", round(float(m.beta.detach()), 3), flush=True)
    best = dict(best, epochs=ep, best_epoch=best_ep, seconds=time.time() - t0, curve=hist)
    return c, best


# --------------------------------------------------------------------------- sweeps
def describe(kw):
    return ", ".join(f"{k}={v}" for k, v in kw.items()) or "default"


SWEEPS = {
    "base": [
        {},
        dict(score="dot"),
        dict(text=False, id=True, score="dot", dropout=0.5),
        dict(id=True, id_min_count=1),
    ],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("ckpt")
    ap.add_argument("--refs", action="store_true")
    ap.add_argument("--runs", default=None, help="JSON list of config overrides")
    ap.add_argument("--sweep", nargs="*", default=[])
    ap.add_argument("--out", default=f"{CACHE}/results.md")
    args = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    d = Data(args.data)
    T = text_embeddings(args.data, args.ckpt)
    log = open(args.out, "a")

    def emit(s):
        print(s, flush=True)
        log.write(s + "\n")
        log.flush()

    if args.refs:
        emit(f"\n## references (validation, {len(d.eval_users)} users, {int(d.tail[d.targets].sum())} tail targets)\n")
        emit("| model | NDCG@10 | R@10 | tail R@10 | head R@10 |\n|---|---|---|---|---|")
        for name, r in references(d, T):
            emit(f"| {name} | {r['ndcg']:.4f} | {r['r10']:.4f} | {r['tail_r10']:.4f} | {r['head_r10']:.4f} |")
    runs = []
    for s in args.sweep:
        runs += SWEEPS[s]
    if args.runs:
        runs += json.loads(args.runs)
    for kw in runs:
        c, r = train_eval(d, T, **kw)
        emit(f"| {describe(kw)} | {r['ndcg']:.4f} | {r['r10']:.4f} | {r['tail_r10']:.4f} | "
             f"{r['head_r10']:.4f} | {r['best_epoch']}/{r['epochs']} | {r['seconds']:.0f} | "
             f"{' '.join(map(str, r['curve'][-4:]))} |")


if __name__ == "__main__":
    main()
