#!/usr/bin/env python3
"""The GEMMs alone of one MiniLM training step, candle (examples/gemm_step) beside PyTorch.

Same list of matmuls at the same shapes (per layer: forward, input-gradient and weight-gradient
products of the six linear layers, and the attention matmuls), best of 5, times 6 layers, same
thread count. If both take the same time, a gap between whole training steps
(`scripts/bench_torch.py train`) lies outside the GEMM.

    python3 scripts/bench_gemm_step.py --rust target/release/examples/gemm_step [--batch 16 --seq 64]
"""
import argparse
import os
import subprocess
import time

from bench_cpu import describe


def torch_gemm_step(batch, seq, threads):
    import torch

    torch.set_num_threads(threads)
    n, heads, d = batch * seq, 12, 32
    r = torch.randn
    linears = [(r(n, i), r(o, i), r(n, o)) for i, o in [(384, 384)] * 4 + [(384, 1536), (1536, 384)]]
    q, k, p = r(batch, heads, seq, d), r(batch, heads, seq, d), r(batch, heads, seq, seq)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for x, w, gy in linears:
            x @ w.t()
            gy @ w
            x.t() @ gy
        kt = k.transpose(-1, -2)
        for _ in range(2):
            q @ kt
            p @ k
        p @ k
        p.transpose(-1, -2) @ q
        best = min(best, time.perf_counter() - started)
    return best * 6 * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", default="target/release/examples/gemm_step")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    rust = subprocess.run([a.rust, str(a.batch), str(a.seq)], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    print(f"cpu: {describe()}")
    print(rust)
    try:
        ms = torch_gemm_step(a.batch, a.seq, a.threads)
    except ImportError:
        print("torch missing: PyTorch side skipped (pip install torch)")
        return
    print(f"torch gemm per training step ({a.batch}x{a.seq}, 6 layers): {ms:.0f} ms")


if __name__ == "__main__":
    main()
