#!/usr/bin/env python3
"""Reference values from PyTorch for longtail-train's parity tests.

Writes tests/fixtures/torch_adamw.json: a small, fully synthetic example
(parameter values and gradients come from sin/cos formulas, not from any data
set) run through torch.optim.AdamW with HF-style parameter groups, with and
without torch.nn.utils.clip_grad_norm_.

Usage (from the repository root or anywhere):
    python3 crates/longtail-train/scripts/torch_reference.py

Requires torch (pip install torch). The single-tensor AdamW path is forced
(foreach=False, fused=False), which is what torch uses for CPU tensors and
what the HF Trainer gets with optim="adamw_torch" on CPU.
"""

import json
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "torch_adamw.json")

# name, shape, lr_scale, frozen
PARAMS = [
    ("embeddings.word_embeddings.weight", (5, 4), 0.5, True),
    ("encoder.layer.0.attention.self.query.weight", (3, 4), 0.5, False),
    ("encoder.layer.0.attention.self.query.bias", (3,), 0.5, False),
    ("encoder.layer.0.output.LayerNorm.weight", (4,), 0.5, False),
    ("classifier.weight", (2, 4), 1.0, False),
    ("classifier.bias", (2,), 1.0, False),
]
NO_DECAY_MARKERS = ("bias", "layernorm")  # the HF rule, enough for these names

LEARNING_RATE = 0.05
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.999)
EPS = 1e-8
MAX_GRAD_NORM = 1.0
NUM_STEPS = 5
WARMUP = 1
# HF get_linear_schedule_with_warmup over 6 training steps, 1 warmup step.
TOTAL = 6
# (step, parameter) pairs that get no gradient at that step (torch skips them).
NO_GRAD = {(2, "classifier.bias")}


def linear_lambda(step):
    if step < WARMUP:
        return step / max(1, WARMUP)
    return max(0.0, (TOTAL - step) / max(1, TOTAL - WARMUP))


def initial(i, shape):
    n = math.prod(shape)
    vals = [math.sin(0.37 * (7 * i + 3 * j) + 0.1) for j in range(n)]
    return torch.tensor(vals, dtype=torch.float32).reshape(shape)


def gradient(step, i, shape):
    n = math.prod(shape)
    # mixed magnitudes, including a large one so that clipping engages
    scale = [0.05, 3.0, 0.2, 1e-3, 0.7][step % 5]
    vals = [scale * math.cos(0.71 * (5 * step + 3 * i + j)) for j in range(n)]
    return torch.tensor(vals, dtype=torch.float32).reshape(shape)


def as_list(t):
    # float32 values as exact Python floats (repr round-trips)
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def run(clip):
    params = {}
    for i, (name, shape, _, frozen) in enumerate(PARAMS):
        p = torch.nn.Parameter(initial(i, shape), requires_grad=not frozen)
        params[name] = p
    groups = {}
    for name, _, scale, frozen in PARAMS:
        if frozen:
            continue
        decay = not any(m in name.lower() for m in NO_DECAY_MARKERS)
        key = (decay, scale)
        groups.setdefault(
            key,
            {"params": [], "weight_decay": WEIGHT_DECAY if decay else 0.0, "lr_scale": scale},
        )
        groups[key]["params"].append(params[name])
    param_groups = [
        {"params": g["params"], "weight_decay": g["weight_decay"], "lr": LEARNING_RATE * g["lr_scale"]}
        for g in groups.values()
    ]
    opt = torch.optim.AdamW(
        param_groups, lr=LEARNING_RATE, betas=BETAS, eps=EPS, foreach=False, fused=False
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps = []
    for step in range(NUM_STEPS):
        lam = linear_lambda(step)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lam
        grads = {}
        for i, (name, shape, _, frozen) in enumerate(PARAMS):
            g = gradient(step, i, shape)
            grads[name] = as_list(g)
            if frozen or (step, name) in NO_GRAD:
                params[name].grad = None
                if (step, name) in NO_GRAD:
                    grads[name] = None
            else:
                params[name].grad = g.clone()
        record = {"learning_rate": LEARNING_RATE * lam, "grads": grads}
        if clip:
            trainable = [p for p in params.values() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM, foreach=False)
            record["grad_norm"] = float(norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        record["params_after"] = {name: as_list(p) for name, p in params.items()}
        steps.append(record)
    return steps


def main():
    fixture = {
        "generated_by": "crates/longtail-train/scripts/torch_reference.py",
        "torch_version": torch.__version__,
        "config": {
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "adam_beta1": BETAS[0],
            "adam_beta2": BETAS[1],
            "adam_epsilon": EPS,
            "max_grad_norm": MAX_GRAD_NORM,
        },
        "params": [
            {
                "name": name,
                "shape": list(shape),
                "lr_scale": scale,
                "frozen": frozen,
                "initial": as_list(initial(i, shape)),
            }
            for i, (name, shape, scale, frozen) in enumerate(PARAMS)
        ],
        "adamw": run(clip=False),
        "adamw_clip": run(clip=True),
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
