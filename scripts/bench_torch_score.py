#!/usr/bin/env python3
"""Batch scoring throughput: `longtail score` (Rust) vs a PyTorch/transformers reference.

Both sides score the same catalogue with the same checkpoint, the same template and max_len
(from the checkpoint's train_args.toml) and the same number of threads:

* longtail: `longtail score --threads T` (streaming reader, tokenization overlapped with the
  forward passes, token-budget batches sorted by length inside a chunk). Its rows/s is the one
  it prints (model loading excluded), and its encoder GFLOP/s line.
* Python: transformers `AutoModelForSequenceClassification` from the same directory, the fast
  tokenizer from its tokenizer.json, batches of --batch-size in input order padded to the
  longest row (what a `pipeline` does), `torch.inference_mode`, `torch.set_num_threads(T)`.
  Pooling follows the checkpoint's `longtail_pooling` (mean: masked mean of the last hidden
  states, then `classifier`; cls_pooler: the model's own logits). Timed from the texts to the
  probabilities (model loading excluded).

Then it prints the ratio of rows/s and the largest |p_tail difference| over the rows both
scored, and, with --gemm, this machine's GEMM ceiling (the gemm_ceiling example) so the
encoder's achieved GFLOP/s can be read against it. One run, side by side: on a shared machine
only the ratio is meaningful.

With --int8 (default on) two more rows run in the same session: `longtail score --precision
int8` and PyTorch's own dynamic quantization of the same model
(`torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, torch.qint8)`, the x86/fbgemm
engine), with each one's max |p_tail diff| against its own fp32 run; with --int8-gemm, the
integer GEMM ceiling (the int8_gemm example of longtail-int8) next to the encoder's G(int)OP/s.
The CPU model and family are printed first: the integer speed-up depends on them.

With --isa avx2 both sides are capped at AVX2 (PyTorch's MKL, ATen and FBGEMM through their
ISA variables, longtail's int8 kernel through LONGTAIL_INT8_KERNEL): on an AVX-512 host, the
nearest stand-in for an AVX2-only CPU such as AMD Zen 3, whose fp32 reference is slower too.

With --device cuda both sides run on the GPU (`longtail score --device cuda`, the model and
batches moved to the GPU in Python); the int8 rows are CPU-only and are skipped there, and
--bf16 adds `longtail score --precision bf16` against the same model cast to bfloat16
(`model.to(torch.bfloat16)`, what a transformers user runs for GPU inference).

--strong adds a stronger PyTorch reference beside the pipeline: every row tokenized first (not
timed), rows sorted by length and cut into batches of --strong-batch (256) padded to their own
longest row, all batches on the device before the clock starts, and only the forward passes
timed (the device synchronised at both ends); bf16 on a GPU, fp32 on a CPU. It is the most a
PyTorch user gets from the same model without writing kernels: what longtail must beat by more
than the pipeline.

Usage (repository root):
    python3 scripts/bench_torch_score.py --checkpoint runs/office-ft-default \\
        --items runs/office/items.jsonl --longtail target/release/longtail --threads 2 \\
        [--rows 100000] [--python-rows 0] [--gemm target/release/examples/gemm_ceiling]

--items takes prepare's items.jsonl (uses its cleaned `fields`) or raw catalogue rows.
--rows N resamples the real texts (with replacement, --seed) into an N-row catalogue with
fresh ids. --python-rows M times the Python side on the first M rows only (0 = all).
Exits 0 with a message when torch/transformers are missing.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

from bench_cpu import describe, has_vnni

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--longtail", default="target/release/longtail")
    ap.add_argument("--gemm", default=None, help="gemm_ceiling example binary")
    ap.add_argument("--int8-gemm", default=None, help="int8_gemm example binary (integer ceiling)")
    ap.add_argument("--no-int8", dest="int8", action="store_false",
                    help="skip the int8 rows (longtail --precision int8, torch quantize_dynamic)")
    ap.add_argument("--no-avx2-kernel", dest="avx2_kernel", action="store_false",
                    help="on a VNNI CPU, skip the extra longtail int8 run with the AVX2 kernel forced")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: cap both sides at AVX2 on an AVX-512 host, to stand in for an "
                         "AVX2-only CPU such as AMD Zen 3 (see ISA_CAPS)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    ap.add_argument("--bf16", action="store_true",
                    help="add a bf16 row: longtail --precision bf16 vs the model in bfloat16")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--strong", action="store_true",
                    help="also time the stronger reference: pre-tokenized, length-sorted, forward only")
    ap.add_argument("--strong-batch", type=int, default=256)
    ap.add_argument("--rows", type=int, default=0, help="resample to this many rows (0: as is)")
    ap.add_argument("--python-rows", type=int, default=0, help="score only the first M rows in Python")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="runs/bench-score")
    ap.add_argument("--name", default=None)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


# What --isa avx2 sets. PyTorch reads these when its libraries start (so before `import torch`):
# MKL's sgemm (transformers fp32), ATen's vectorised ops, FBGEMM's int8 GEMM (quantize_dynamic).
# longtail's int8 layers take the AVX2 kernel. longtail's f32 GEMM (the `gemm` crate: attention's
# matmuls in an int8 run, every layer in fp32) has no such switch and keeps AVX-512; attention
# is about 3% of the int8 encoder's operations at max_len 64.
ISA_CAPS = {
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2", "LONGTAIL_INT8_KERNEL": "avx2"},
}


def find_up(ckpt, name):
    for d in (ckpt, os.path.dirname(os.path.abspath(ckpt))):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


def train_args(ckpt):
    defaults = {"max_len": 128, "template": "{title} | {brand} | {categories} | {description}"}
    p = find_up(ckpt, "train_args.toml")
    if p is None or tomllib is None:
        return defaults
    with open(p, "rb") as f:
        a = tomllib.load(f)
    return {k: a.get(k, v) for k, v in defaults.items()}


def load_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def fields_of(row, names):
    """The template fields: prepare's cleaned `fields`, else the raw top-level values."""
    src = row.get("fields") if isinstance(row.get("fields"), dict) else row
    out = {}
    for n in names:
        v = src.get(n)
        if isinstance(v, list):
            v = ", ".join(str(x) for x in v)
        out[n] = "" if v is None else " ".join(str(v).split())
    return out


def render(template, names, fields, text):
    parts = [fields[n] for n in names if fields[n].strip()]
    if not parts:
        return text or ""
    return separator_of(template).join(parts)


def separator_of(template):
    return " | " if " | " in template else " "


def torch_capability():
    import torch
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return "?"


def longtail_env(args, kernel=None):
    """The environment of a longtail binary: none of the caller's LONGTAIL_* settings, and the
    int8 kernel `kernel`, else --isa's, else the fastest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGTAIL_")}
    kernel = kernel or ISA_CAPS.get(args.isa, {}).get("LONGTAIL_INT8_KERNEL")
    if kernel:
        env["LONGTAIL_INT8_KERNEL"] = kernel
    return env


def run_longtail(args, catalogue, out, precision="fp32", kernel=None):
    cmd = [args.longtail, "score", "--checkpoint", args.checkpoint, "--input", catalogue,
           "--output", out, "--threads", str(args.threads), "--precision", precision,
           "--device", args.device, "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=longtail_env(args, kernel))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"longtail score failed:\n{proc.stderr}")
    summary = proc.stdout
    rps = float(re.search(r"([0-9.]+) rows/s", summary).group(1))
    gf = re.search(r"([0-9.]+) G(?:FLOP|\(int\)OP)/s", summary)
    fwd = re.search(r"([0-9.]+) s in forward passes", summary)
    scores = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            scores[r["item_id"]] = r["p_tail"]
    return {"rows_per_s": rps, "wall_s": wall, "gflops": float(gf.group(1)) if gf else None,
            "forward_s": float(fwd.group(1)) if fwd else None, "scores": scores, "stdout": summary.strip()}


def drop_dangling_separator(enc, sep_token, sep_id, pad_id, max_len):
    """longtail truncates by field and keeps a separator only between two fields that both kept
    tokens; plain suffix truncation can end on the separator before a field it then drops
    (12 of the 2,420 Office rows at max_len 64). Drop that token here so both sides score the
    same token ids (for the template's field order, this is the only case where they differ)."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] < max_len:
        return
    hit = (mask[:, max_len - 1] == 1) & (ids[:, max_len - 2] == sep_token)
    ids[hit, max_len - 2] = sep_id
    ids[hit, max_len - 1] = pad_id
    mask[hit, max_len - 1] = 0
    if "token_type_ids" in enc:
        enc["token_type_ids"][hit, max_len - 1] = 0


def load_reference(args, ckpt, separator, device, int8=False, bf16=False):
    """The checkpoint as transformers loads it: tokenizer, model (int8 / bf16 if asked) on
    `device`, pooling, the tail label's index and the separator's token id (None if absent)."""
    import torch
    from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

    torch.set_num_threads(args.threads)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(ckpt, "tokenizer.json"),
                                  pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  unk_token="[UNK]", mask_token="[MASK]")
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    if int8:
        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    model = model.to(device, dtype=torch.bfloat16 if bf16 else torch.float32)
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    pooling = cfg.get("longtail_pooling", "cls_pooler")
    tail = int({v: k for k, v in cfg["id2label"].items()}["tail"])
    sep_token = tok.convert_tokens_to_ids(separator.strip()) if separator.strip() else None
    if sep_token == tok.unk_token_id:
        sep_token = None
    return tok, model, pooling, tail, sep_token


def run_python(args, ckpt, ids, texts, max_len, separator, int8=False, bf16=False):
    import torch

    device = torch.device(args.device)
    tok, model, pooling, tail, sep_token = load_reference(args, ckpt, separator, device, int8, bf16)
    out = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(texts), args.batch_size):
            enc = tok(texts[s:s + args.batch_size], truncation=True, max_length=max_len,
                      padding="longest", return_tensors="pt")
            if sep_token is not None:
                drop_dangling_separator(enc, sep_token, tok.sep_token_id, tok.pad_token_id, max_len)
            enc = enc.to(device)
            if pooling == "cls_pooler":
                logits = model(**enc).logits
            else:
                h = model.bert(**enc).last_hidden_state
                if pooling == "mean":
                    m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                else:
                    pooled = h[:, 0]
                logits = model.classifier(pooled)
            p = torch.softmax(logits.float(), dim=-1)[:, tail].tolist()
            for i, v in zip(ids[s:s + args.batch_size], p):
                out[i] = v
    secs = time.perf_counter() - t0
    return {"rows_per_s": len(texts) / secs, "seconds": secs, "scores": out}


def run_python_strong(args, ckpt, ids, texts, max_len, separator):
    """The stronger reference (see --strong): tokenization, sorting, padding and upload happen
    before the clock starts; only the forward passes are timed."""
    import torch

    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    tok, model, pooling, tail, sep_token = load_reference(args, ckpt, separator, device, bf16=bf16)
    encoded = tok(texts, truncation=True, max_length=max_len)["input_ids"]
    if sep_token is not None:  # as drop_dangling_separator, row by row
        for row in encoded:
            if len(row) == max_len and row[max_len - 2] == sep_token:
                row[max_len - 2] = tok.sep_token_id
                row.pop()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    batches = []
    for s in range(0, len(order), args.strong_batch):
        idx = order[s:s + args.strong_batch]
        width = max(len(encoded[i]) for i in idx)
        input_ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            input_ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, :len(encoded[i])] = 1
        batches.append((idx, input_ids.to(device), mask.to(device)))

    def forward(input_ids, mask):
        if pooling == "cls_pooler":
            return model(input_ids=input_ids, attention_mask=mask).logits
        h = model.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        else:
            pooled = h[:, 0]
        return model.classifier(pooled)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        forward(*batches[0][1:])  # warm-up (cuBLAS handles, kernels): not part of a batch job's rate
        sync()
        t0 = time.perf_counter()
        logits = [forward(input_ids, mask) for _, input_ids, mask in batches]
        sync()
        secs = time.perf_counter() - t0
    out = {}
    for (idx, _, _), lg in zip(batches, logits):
        for i, v in zip(idx, torch.softmax(lg.float(), dim=-1)[:, tail].tolist()):
            out[ids[i]] = v
    return {"rows_per_s": len(texts) / secs, "seconds": secs, "scores": out,
            "precision": "bf16" if bf16 else "fp32"}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.update(ISA_CAPS.get(args.isa, {}))
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"skipping the score benchmark: {e} (pip install torch transformers)")
        return 0
    os.makedirs(args.out_dir, exist_ok=True)
    ta = train_args(args.checkpoint)
    names = re.findall(r"\{(\w+)\}", ta["template"])
    src = load_rows(args.items)
    if src and not isinstance(src[0].get("fields"), dict):
        print("note: raw catalogue rows: longtail cleans their text (HTML, NFKC: '™' becomes 'TM') and "
              "the Python side does not, so p_tail differs on rows where that changes the tokens; "
              "pass prepare's items.jsonl for a like-for-like comparison", file=sys.stderr)
    if args.rows:
        rng = random.Random(args.seed)
        picked = [(j, rng.choice(src)) for j in range(args.rows)]
        rows = [dict(r, item_id=f"{r['item_id']}#{j}") for j, r in picked]
    else:
        rows = src
    name = args.name or (f"resampled {len(rows)}" if args.rows else os.path.basename(args.items))
    catalogue = os.path.join(args.out_dir, f"catalogue_{len(rows)}.jsonl")
    with open(catalogue, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    if args.device != "cpu":
        args.int8 = False  # longtail's int8 kernels and torch's quantize_dynamic are CPU-only
        import torch
        print(f"[{name}] device: {args.device} ({torch.cuda.get_device_name(torch.device(args.device))})")
    cpu = describe()
    print(f"[{name}] cpu: {cpu}")
    if args.isa != "native":
        print(f"[{name}] capped at {args.isa}: PyTorch's CPU capability {torch_capability()}; "
              + " ".join(f"{k}={v}" for k, v in ISA_CAPS[args.isa].items()))
    rust = run_longtail(args, catalogue, os.path.join(args.out_dir, f"longtail_{len(rows)}.jsonl"))
    n_py = args.python_rows or len(rows)
    py_rows = rows[:n_py]
    ids = [str(r["item_id"]) for r in py_rows]
    texts = [render(ta["template"], names, fields_of(r, names), r.get("text")) for r in py_rows]
    py_args = (args, args.checkpoint, ids, texts, ta["max_len"], separator_of(ta["template"]))
    py = run_python(*py_args)

    def max_abs_diff(a, b):
        d = [abs(a[i] - p) for i, p in b.items() if i in a]
        return (max(d) if d else float("nan")), len(d)

    max_diff, compared = max_abs_diff(rust["scores"], py["scores"])
    diffs = range(compared)
    ceiling = None
    if args.gemm:
        g = subprocess.run([args.gemm, "2048", "3"], capture_output=True, text=True,
                           env=dict(os.environ, RAYON_NUM_THREADS=str(args.threads)))
        m = re.search(r"ceiling_gflops=([0-9.]+)", g.stdout)
        ceiling = float(m.group(1)) if m else None
    q = None
    if args.int8:
        rust8 = run_longtail(args, catalogue, os.path.join(args.out_dir, f"longtail_int8_{len(rows)}.jsonl"), "int8")
        py8 = run_python(*py_args, int8=True)
        # On a VNNI host, also only our kernel forced to AVX2: its scores must equal the VNNI
        # kernel's (every kernel computes the same integers). What an AVX2-only CPU shows,
        # with the reference capped too, is --isa avx2.
        avx2 = (run_longtail(args, catalogue, os.path.join(args.out_dir, f"longtail_int8_avx2_{len(rows)}.jsonl"),
                             "int8", kernel="avx2")
                if has_vnni() and args.avx2_kernel and args.isa == "native" else None)
        int_ceiling = None
        if args.int8_gemm:
            # Under --isa the ceiling is that kernel's (the example reads LONGTAIL_INT8_KERNEL).
            g = subprocess.run([args.int8_gemm, "2048", str(args.threads)], capture_output=True, text=True,
                               env=longtail_env(args))
            m = re.search(r"ceiling_gops=([0-9.]+) kernel=(\S+)", g.stdout)
            int_ceiling = (float(m.group(1)), m.group(2)) if m else None
        q = {
            "longtail_int8_rows_per_s": rust8["rows_per_s"], "torch_int8_rows_per_s": py8["rows_per_s"],
            "int8_vs_transformers_fp32": rust8["rows_per_s"] / py["rows_per_s"],
            "int8_vs_torch_int8": rust8["rows_per_s"] / py8["rows_per_s"],
            "int8_vs_longtail_fp32": rust8["rows_per_s"] / rust["rows_per_s"],
            "longtail_int8_max_abs_diff_vs_fp32": max_abs_diff(rust["scores"], rust8["scores"])[0],
            "torch_int8_max_abs_diff_vs_fp32": max_abs_diff(py["scores"], py8["scores"])[0],
            "encoder_int_gops": rust8["gflops"], "int8_ceiling_gops": int_ceiling and int_ceiling[0],
            "int8_kernel": int_ceiling and int_ceiling[1], "stdout_int8": rust8["stdout"].splitlines()[0],
        }
        if avx2:
            q["longtail_int8_avx2_rows_per_s"] = avx2["rows_per_s"]
            q["int8_avx2_vs_transformers_fp32"] = avx2["rows_per_s"] / py["rows_per_s"]
            q["int8_avx2_same_scores"] = avx2["scores"] == rust8["scores"]
    strong = None
    if args.strong:
        st = run_python_strong(*py_args)
        strong = {
            "strong_rows_per_s": st["rows_per_s"], "strong_precision": st["precision"],
            "strong_batch": args.strong_batch,
            "longtail_vs_strong": rust["rows_per_s"] / st["rows_per_s"],
            "strong_max_abs_diff_vs_longtail": max_abs_diff(rust["scores"], st["scores"])[0],
        }
    half = None
    if args.bf16:
        rust16 = run_longtail(args, catalogue, os.path.join(args.out_dir, f"longtail_bf16_{len(rows)}.jsonl"), "bf16")
        py16 = run_python(*py_args, bf16=True)
        half = {
            "longtail_bf16_rows_per_s": rust16["rows_per_s"], "torch_bf16_rows_per_s": py16["rows_per_s"],
            "bf16_ratio": rust16["rows_per_s"] / py16["rows_per_s"],
            "longtail_bf16_max_abs_diff_vs_fp32": max_abs_diff(rust["scores"], rust16["scores"])[0],
            "torch_bf16_max_abs_diff_vs_fp32": max_abs_diff(py["scores"], py16["scores"])[0],
        }
    result = {
        "name": name, "rows": len(rows), "device": args.device, "isa": args.isa, "python_rows": n_py, "threads": args.threads, "cpu": cpu,
        "batch_size": args.batch_size, "max_len": ta["max_len"],
        "longtail_rows_per_s": rust["rows_per_s"], "python_rows_per_s": py["rows_per_s"],
        "ratio": rust["rows_per_s"] / py["rows_per_s"], "max_abs_diff_p_tail": max_diff,
        "compared_rows": len(diffs), "encoder_gflops": rust["gflops"], "gemm_ceiling_gflops": ceiling,
    }
    if q:
        result.update({k: v for k, v in q.items() if k != "stdout_int8"})
    if half:
        result.update(half)
        if strong:
            strong["longtail_bf16_vs_strong"] = half["longtail_bf16_rows_per_s"] / strong["strong_rows_per_s"]
    if strong:
        result.update(strong)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"[{name}] {rust['stdout'].splitlines()[0]}")
        print(f"[{name}] rows={len(rows)} threads={args.threads}: longtail {rust['rows_per_s']:.1f} rows/s, "
              f"python (transformers, batch {args.batch_size}, {n_py} rows) {py['rows_per_s']:.1f} rows/s, "
              f"ratio {result['ratio']:.2f}x, max |p_tail diff| {max_diff:.2e} over {len(diffs)} rows"
              + (" (longtail fp32 is not capped: its GEMM crate has no switch)" if args.isa != "native" else ""))
        if half:
            print(f"[{name}] bf16: longtail {half['longtail_bf16_rows_per_s']:.1f} rows/s, torch (model in bfloat16) "
                  f"{half['torch_bf16_rows_per_s']:.1f} rows/s, ratio {half['bf16_ratio']:.2f}x; max |p_tail diff| vs own "
                  f"fp32: longtail {half['longtail_bf16_max_abs_diff_vs_fp32']:.2e}, torch {half['torch_bf16_max_abs_diff_vs_fp32']:.2e}")
        if strong:
            print(f"[{name}] stronger reference (pre-tokenized, length-sorted, batch {args.strong_batch}, "
                  f"{strong['strong_precision']}, forward passes only): {strong['strong_rows_per_s']:.1f} rows/s; "
                  f"longtail fp32 = {strong['longtail_vs_strong']:.2f}x it"
                  + (f", longtail bf16 = {strong['longtail_bf16_vs_strong']:.2f}x it" if "longtail_bf16_vs_strong" in strong else "")
                  + f"; max |p_tail diff| vs longtail fp32 {strong['strong_max_abs_diff_vs_longtail']:.2e}")
        if ceiling and rust["gflops"]:
            print(f"[{name}] encoder {rust['gflops']:.1f} GFLOP/s vs GEMM ceiling {ceiling:.1f} GFLOP/s "
                  f"({100 * rust['gflops'] / ceiling:.0f}%)")
        if q:
            print(f"[{name}] {q['stdout_int8']}")
            print(f"[{name}] int8: longtail {q['longtail_int8_rows_per_s']:.1f} rows/s, torch quantize_dynamic "
                  f"{q['torch_int8_rows_per_s']:.1f} rows/s; longtail int8 = {q['int8_vs_transformers_fp32']:.2f}x "
                  f"transformers fp32, {q['int8_vs_torch_int8']:.2f}x torch int8, {q['int8_vs_longtail_fp32']:.2f}x "
                  f"longtail fp32; max |p_tail diff| vs own fp32: longtail {q['longtail_int8_max_abs_diff_vs_fp32']:.2e}, "
                  f"torch {q['torch_int8_max_abs_diff_vs_fp32']:.2e}")
            if "longtail_int8_avx2_rows_per_s" in q:
                print(f"[{name}] int8 forced to the AVX2 kernel (LONGTAIL_INT8_KERNEL=avx2): "
                      f"{q['longtail_int8_avx2_rows_per_s']:.1f} rows/s = {q['int8_avx2_vs_transformers_fp32']:.2f}x "
                      f"transformers fp32; same p_tail as the VNNI kernel: {q['int8_avx2_same_scores']}")
            if q["int8_ceiling_gops"] and q["encoder_int_gops"]:
                print(f"[{name}] encoder {q['encoder_int_gops']:.1f} G(int)OP/s vs int8 GEMM ceiling "
                      f"{q['int8_ceiling_gops']:.1f} GOP/s ({q['int8_kernel']}, "
                      f"{100 * q['encoder_int_gops'] / q['int8_ceiling_gops']:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
