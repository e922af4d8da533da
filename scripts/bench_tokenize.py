#!/usr/bin/env python3
"""Tokenization throughput: longtail (Rust) vs Python `tokenizers` on the Office catalogue.

Both sides encode every item as "title | brand | categories | description" (empty fields and
their separators dropped) with the same tokenizer.json, truncation to --max-len tokens
including special tokens, no padding, --threads threads, one warm-up pass and --repeats timed
passes. Python times `Tokenizer.encode_batch` on pre-joined strings; the Rust example times
`ItemTokenizer::encode_batch_parallel` on the JSON rows, template rendering included. The Rust
side cuts by field priority (description first) and drops a dangling separator, so its ids can
differ slightly from Python's plain right truncation; both print an FNV-1a fingerprint of their
ids and the summary says whether they are identical.

Usage (from the repository root):
    cargo build --release -p longtail-tokenize --example bench_tokenize
    python3 scripts/bench_tokenize.py --rust target/release/examples/bench_tokenize --threads 2
    # or let the script call cargo:
    python3 scripts/bench_tokenize.py --rust "cargo run --release -q -p longtail-tokenize --example bench_tokenize --"

Prints one line with both tokens/s and the ratio longtail/python (--json for JSON).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from bench_cpu import describe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("title", "brand", "categories", "description")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--items", default=os.path.join(ROOT, "..", "shared", "datasets", "amazon-office-2014", "items.jsonl")
    )
    ap.add_argument(
        "--tokenizer", default=os.path.join(ROOT, "checkpoints", "base", "all-MiniLM-L6-v2", "tokenizer.json")
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument(
        "--rust",
        default=os.path.join(ROOT, "target", "release", "examples", "bench_tokenize"),
        help="built example binary, or a command line such as "
        "'cargo run --release -q -p longtail-tokenize --example bench_tokenize --'",
    )
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return ap.parse_args()


def ids_fingerprint(encodings):
    """FNV-1a over the id sequences, same as the Rust example's `ids_fnv1a`."""
    mask, prime = (1 << 64) - 1, 0x100000001B3
    h = 0xCBF29CE484222325
    for e in encodings:
        for i in e.ids:
            h = ((h ^ i) * prime) & mask
        h = ((h ^ 0xFFFFFFFFFFFF) * prime) & mask
    return f"{h:016x}"


def bench_python(args):
    # Must be set before tokenizers starts its rayon pool.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    from tokenizers import Tokenizer
    import tokenizers

    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_length=args.max_len)
    texts = []
    with open(args.items, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(" | ".join(row[k] for k in FIELDS if (row.get(k) or "").strip()))
    warm = tok.encode_batch(texts)
    per_pass = sum(len(e) for e in warm)
    ids_hash = ids_fingerprint(warm)
    tokens = 0
    seconds = 0.0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = tok.encode_batch(texts)
        seconds += time.perf_counter() - t0
        tokens += sum(len(e) for e in out)
    assert tokens == per_pass * args.repeats
    return {
        "impl": "python-tokenizers " + tokenizers.__version__,
        "texts": len(texts),
        "repeats": args.repeats,
        "threads": args.threads,
        "max_len": args.max_len,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "ids_fnv1a": ids_hash,
    }


def bench_rust(args):
    cmd = [args.rust] if os.path.isfile(args.rust) else shlex.split(args.rust)
    cmd += [
        "--items", args.items,
        "--tokenizer", args.tokenizer,
        "--threads", str(args.threads),
        "--repeats", str(args.repeats),
        "--max-len", str(args.max_len),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"rust benchmark failed: {' '.join(cmd)}")
    last = [l for l in proc.stdout.splitlines() if l.strip().startswith("{")][-1]
    return json.loads(last)


def main():
    args = parse_args()
    rust = bench_rust(args)  # first, so the Python side's threads are not around yet
    py = bench_python(args)
    ratio = rust["tokens_per_s"] / py["tokens_per_s"]
    same = rust.get("ids_fnv1a") == py["ids_fnv1a"]
    if args.json:
        print(json.dumps({"longtail": rust, "python": py, "ratio_longtail_over_python": ratio, "ids_identical": same}))
        return
    print(f"cpu: {describe()}")
    print(
        f"longtail {rust['tokens_per_s']:,.0f} tok/s | {py['impl']} {py['tokens_per_s']:,.0f} tok/s | "
        f"ratio longtail/python {ratio:.2f} "
        f"(threads {args.threads}, max_len {args.max_len}, {rust['texts']} texts x {args.repeats}, "
        f"tokens/pass rust {rust['tokens'] // args.repeats} python {py['tokens'] // args.repeats}, "
        f"ids identical: {'yes' if same else 'no'})"
    )


if __name__ == "__main__":
    main()
