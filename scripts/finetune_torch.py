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

On a GPU (`--device cuda`) the weights are f32 and `--precision bf16` runs the forward pass
under `torch.autocast(bfloat16)`, the counterpart of `longtail train --precision bf16`;
samples/s is measured with the device synchronised at the end of each epoch.

Usage:
  python3 scripts/finetune_torch.py --data runs/office --model checkpoints/base/all-MiniLM-L6-v2 \
      --config configs/train.toml [--threads 2] [--device cuda] [--out runs/office-ft-torch.json]
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


def roc_auc_score(labels, scores):
    """ROC-AUC as the Mann-Whitney statistic with mid-ranks for ties (sklearn's value, without
    needing sklearn)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(labels)
    neg = len(labels) - pos
    rank_sum = sum(r for r, y in zip(ranks, labels) if y == 1)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", default="configs/train.toml")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LONGTAIL_BENCH_THREADS", "2")))
    ap.add_argument("--out", help="write the result JSON here too")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    for key in ["learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm", "label_smoothing"]:
        ap.add_argument("--" + key.replace("_", "-"), type=float)
    for key in ["max_len", "per_device_train_batch_size", "num_train_epochs", "seed", "max_steps"]:
        ap.add_argument("--" + key.replace("_", "-"), type=int)
    ap.add_argument("--pooling", choices=["mean", "cls", "cls_pooler"])
    ap.add_argument("--lr-scheduler-type", choices=["linear", "cosine", "constant_with_warmup"])
    args = ap.parse_args()

    cfg = {
        "max_len": 128, "per_device_train_batch_size": 16, "num_train_epochs": 2,
        "learning_rate": 5e-5, "weight_decay": 0.01, "warmup_ratio": 0.1, "max_grad_norm": 1.0,
        "lr_scheduler_type": "linear", "pooling": "mean", "label_smoothing": 0.0, "seed": 42, "max_steps": -1,
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
    from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast, get_scheduler

    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])

    rows = load_split(args.data)
    device = torch.device(args.device)
    if (Path(args.model) / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(args.model)
    else:  # a bare tokenizer.json (longtail checkpoints, the GPU bundle's MiniLM)
        tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(args.model) / "tokenizer.json"),
                                      pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                      unk_token="[UNK]", mask_token="[MASK]")
    # f32 master weights whatever the file stores (the GPU bundle's MiniLM is f16).
    enc = AutoModel.from_pretrained(args.model).float().to(device)
    hidden = enc.config.hidden_size
    head = torch.nn.Linear(hidden, 2).to(device)
    torch.nn.init.normal_(head.weight, std=enc.config.initializer_range)
    torch.nn.init.zeros_(head.bias)
    drop = torch.nn.Dropout(enc.config.hidden_dropout_prob)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
                else torch.autocast(device.type, enabled=False))

    def encode(texts):
        return tok(texts, truncation=True, max_length=cfg["max_len"], padding=True,
                   return_tensors="pt").to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def logits_of(batch, train):
        with autocast:
            return logits_of_f32(batch, train).float()

    def logits_of_f32(batch, train):
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
    # As the HF Trainer: max_steps > 0 sets the number of updates (and the schedule) and the
    # epochs needed to reach it.
    if cfg["max_steps"] > 0:
        total = cfg["max_steps"]
        cfg["num_train_epochs"] = math.ceil(total / steps_per_epoch)
    else:
        total = steps_per_epoch * cfg["num_train_epochs"]
    sched = get_scheduler(cfg["lr_scheduler_type"], opt, num_warmup_steps=math.ceil(cfg["warmup_ratio"] * total),
                          num_training_steps=total)
    weights = None
    if cfg["class_weights"] == "auto":
        counts = np.bincount([y for _, y in train], minlength=2)
        weights = torch.tensor(len(train) / (2.0 * counts), dtype=torch.float32, device=device)

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
        sync()
        epoch_started = time.time()
        order = list(range(len(train)))
        random.Random(cfg["seed"] + epoch).shuffle(order)
        for s in range(min(steps_per_epoch, total - epoch * steps_per_epoch)):
            idx = order[s * bs:(s + 1) * bs]
            batch = encode([train[i][0] for i in idx])
            labels = torch.tensor([train[i][1] for i in idx], device=device)
            loss = F.cross_entropy(logits_of(batch, True), labels, weight=weights,
                                   label_smoothing=cfg["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], cfg["max_grad_norm"])
            opt.step()
            sched.step()
            seen += len(idx)
        sync()
        train_seconds += time.time() - epoch_started
        val = rows["validation"]
        val_auc = roc_auc_score([y for _, y in val], predict(val))
        history.append({"epoch": epoch + 1, "val_auc": val_auc})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
        if best is None or val_auc > best[0]:
            test = rows["test"]
            best = (val_auc, roc_auc_score([y for _, y in test], predict(test)), epoch + 1)
    result = {
        "recipe": cfg, "threads": args.threads, "device": args.device, "precision": args.precision,
        "history": history,
        "best_epoch": best[2], "val_auc": best[0], "test_auc": best[1],
        "train_samples_per_second": seen / max(train_seconds, 1e-9),
        "seconds": time.time() - started,
    }
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
