#!/usr/bin/env python3
"""PyTorch reference for `longtail train` + `longtail eval`: fine-tune the same base model with the
same recipe on the same prepared split, and print validation/test ROC-AUC as JSON.

This is a comparison tool, not part of the product. It reads the recipe from the same TOML file
longtail reads (`--config configs/train.toml`, table [train]) so the two runs cannot drift apart;
flags override single keys. Differences that remain, on purpose:
  - batches: longtail groups items of similar length into batches (seeded); here batches are
    plain seeded shuffles, padded to the longest item of the batch;
  - truncation: longtail cuts the description first, then categories, brand, title (field
    priority); here the prepared `text` (title | brand | categories | description) is cut from
    its end, which drops the same fields in the same order.

Usage:
  python3 scripts/finetune_torch.py --data runs/office --model checkpoints/base/all-MiniLM-L6-v2 \
      --config configs/train.toml [--threads 2] [--out runs/office-ft-torch.json]
"""
import argparse
import json
import math
import os
import random
import sys
import time
import tomllib
from pathlib import Path


def load_split(data_dir):
    rows = {"train": [], "validation": [], "test": []}
    with open(Path(data_dir) / "items.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") in rows and r.get("label") in ("head", "tail"):
                rows[r["split"]].append((r["text"], 1 if r["label"] == "tail" else 0))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", default="configs/train.toml")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LONGTAIL_BENCH_THREADS", "2")))
    ap.add_argument("--out", help="write the result JSON here too")
    for key in ["learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm", "label_smoothing"]:
        ap.add_argument("--" + key.replace("_", "-"), type=float)
    for key in ["max_len", "per_device_train_batch_size", "num_train_epochs", "seed"]:
        ap.add_argument("--" + key.replace("_", "-"), type=int)
    ap.add_argument("--pooling", choices=["mean", "cls", "cls_pooler"])
    ap.add_argument("--lr-scheduler-type", choices=["linear", "cosine", "constant_with_warmup"])
    args = ap.parse_args()

    cfg = {
        "max_len": 128, "per_device_train_batch_size": 16, "num_train_epochs": 2,
        "learning_rate": 5e-5, "weight_decay": 0.01, "warmup_ratio": 0.1, "max_grad_norm": 1.0,
        "lr_scheduler_type": "linear", "pooling": "mean", "label_smoothing": 0.0, "seed": 42,
        "class_weights": "none",
    }
    if args.config:
        cfg.update(tomllib.loads(Path(args.config).read_text()).get("train", {}))
    for k, v in vars(args).items():
        if k in cfg and v is not None:
            cfg[k] = v

    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModel, AutoTokenizer, get_scheduler

    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])

    rows = load_split(args.data)
    tok = AutoTokenizer.from_pretrained(args.model)
    enc = AutoModel.from_pretrained(args.model)
    hidden = enc.config.hidden_size
    head = torch.nn.Linear(hidden, 2)
    torch.nn.init.normal_(head.weight, std=enc.config.initializer_range)
    torch.nn.init.zeros_(head.bias)
    drop = torch.nn.Dropout(enc.config.hidden_dropout_prob)

    def encode(texts):
        return tok(texts, truncation=True, max_length=cfg["max_len"], padding=True, return_tensors="pt")

    def logits_of(batch, train):
        out = enc(**batch)
        h = out.last_hidden_state
        if cfg["pooling"] == "mean":
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        elif cfg["pooling"] == "cls":
            pooled = h[:, 0]
        else:
            pooled = out.pooler_output
        return head(drop(pooled) if train else pooled)

    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    named = [("bert." + n, p) for n, p in enc.named_parameters()] + [("classifier." + n, p) for n, p in head.named_parameters()]
    groups = [
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": cfg["weight_decay"]},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    train = rows["train"]
    bs = cfg["per_device_train_batch_size"]
    steps_per_epoch = math.ceil(len(train) / bs)
    total = steps_per_epoch * cfg["num_train_epochs"]
    sched = get_scheduler(cfg["lr_scheduler_type"], opt, num_warmup_steps=math.ceil(cfg["warmup_ratio"] * total),
                          num_training_steps=total)
    weights = None
    if cfg["class_weights"] == "auto":
        counts = np.bincount([y for _, y in train], minlength=2)
        weights = torch.tensor(len(train) / (2.0 * counts), dtype=torch.float32)

    def predict(split):
        enc.eval()
        probs = []
        with torch.no_grad():
            for i in range(0, len(split), 64):
                texts = [t for t, _ in split[i:i + 64]]
                probs.extend(torch.softmax(logits_of(encode(texts), False), -1)[:, 1].tolist())
        return probs

    history, best = [], None
    started = time.time()
    seen, train_seconds = 0, 0.0
    for epoch in range(cfg["num_train_epochs"]):
        enc.train()
        epoch_started = time.time()
        order = list(range(len(train)))
        random.Random(cfg["seed"] + epoch).shuffle(order)
        for s in range(steps_per_epoch):
            idx = order[s * bs:(s + 1) * bs]
            batch = encode([train[i][0] for i in idx])
            labels = torch.tensor([train[i][1] for i in idx])
            loss = F.cross_entropy(logits_of(batch, True), labels, weight=weights,
                                   label_smoothing=cfg["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], cfg["max_grad_norm"])
            opt.step()
            sched.step()
            seen += len(idx)
        train_seconds += time.time() - epoch_started
        val = rows["validation"]
        val_auc = roc_auc_score([y for _, y in val], predict(val))
        history.append({"epoch": epoch + 1, "val_auc": val_auc})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
        if best is None or val_auc > best[0]:
            test = rows["test"]
            best = (val_auc, roc_auc_score([y for _, y in test], predict(test)), epoch + 1)
    result = {
        "recipe": cfg, "threads": args.threads, "history": history,
        "best_epoch": best[2], "val_auc": best[0], "test_auc": best[1],
        "train_samples_per_second": seen / max(train_seconds, 1e-9),
        "seconds": time.time() - started,
    }
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
