#!/usr/bin/env python3
"""PyTorch side of `make bench`, run beside longtail in one go so the ratio is taken under the
same machine load (this machine is shared: absolute numbers drift, ratios from one run hold).

  bench_torch.py train --rust target/release/examples/bench_train [--batch 16] [--seq 128]
      Training step throughput (forward + backward + AdamW, dropout on) and peak RSS of
      longtail's encoder vs transformers' BertForSequenceClassification, same model, shape and
      thread count. Prints both and the ratio.
  bench_torch.py score ...
      Batch scoring of a catalogue (see scripts/bench_torch_score.py).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_cpu import describe

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = Path(os.environ.get("LONGTAIL_TEST_BASE_MODEL", ROOT / "checkpoints/base/all-MiniLM-L6-v2"))


def torch_train(batch, seq, steps, threads):
    import torch
    from transformers import BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        str(MODEL_DIR), num_labels=2, attn_implementation="eager"
    ).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(1000, 30000, (batch, seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()

    step()  # warm-up, as on the longtail side
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t) / steps
    return {
        "impl": f"pytorch {torch.__version__}", "batch": batch, "seq": seq, "threads": threads,
        "samples_per_second": batch / dt,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def train(argv):
    ap = argparse.ArgumentParser(prog="bench_torch.py train")
    ap.add_argument("--rust", required=True, help="the bench_train example binary")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate the two sides this many times; each side's best round counts")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LONGTAIL_BENCH_THREADS", "2")))
    a = ap.parse_args(argv)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    shape = ["--batch", str(a.batch), "--seq", str(a.seq), "--steps", str(a.steps)]
    ours, theirs = [], []
    # Alternating rounds, each in a fresh process (peak RSS is per process): on a shared
    # machine the load drifts within minutes, and the best round of each side is the one
    # least disturbed by it.
    for _ in range(a.rounds):
        ours.append(run_json([a.rust, *shape, "--json"], env))
        theirs.append(run_json([sys.executable, __file__, "torch-once", *shape,
                                "--threads", str(a.threads)], env))
    best = lambda rs: max(rs, key=lambda r: r["samples_per_second"])
    o, t = best(ours), best(theirs)
    peak = lambda rs: max(r["peak_rss_mb"] for r in rs)
    print(f"cpu: {describe()}")
    print(f"training step, all-MiniLM-L6-v2 + classifier, batch {a.batch} x {a.seq} tokens, "
          f"{a.threads} threads, fp32, mean of {a.steps} steps after a warm-up, best of "
          f"{a.rounds} alternating rounds")
    for name, r, rs in (("longtail", o, ours), (t["impl"], t, theirs)):
        all_sps = ", ".join(f"{x['samples_per_second']:.2f}" for x in rs)
        print(f"  {name:<24} {r['samples_per_second']:7.2f} samples/s ({all_sps})   "
              f"peak RSS {peak(rs):6.0f} MB")
    print(f"  ratio longtail/pytorch: throughput {o['samples_per_second'] / t['samples_per_second']:.2f}x "
          f"(target >= 1.0), peak RSS {peak(ours) / peak(theirs):.2f}x (target <= 1.0)")


def torch_once(argv):
    ap = argparse.ArgumentParser(prog="bench_torch.py torch-once")
    for flag, default in (("--batch", 16), ("--seq", 128), ("--steps", 5), ("--threads", 2)):
        ap.add_argument(flag, type=int, default=default)
    a = ap.parse_args(argv)
    print(json.dumps(torch_train(a.batch, a.seq, a.steps, a.threads)))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("train", "score", "torch-once"):
        sys.exit(__doc__)
    if sys.argv[1] == "train":
        train(sys.argv[2:])
    elif sys.argv[1] == "torch-once":
        torch_once(sys.argv[2:])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_torch_score

        bench_torch_score.main(sys.argv[2:])


if __name__ == "__main__":
    main()
