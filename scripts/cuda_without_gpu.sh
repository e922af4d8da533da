#!/usr/bin/env bash
# What the CUDA binary does on a machine whose driver finds no GPU, checked here without one:
# a fake libcuda.so.1 answers CUDA_ERROR_NO_DEVICE (100) to every driver call.
#   --device cuda   fails in one line that says there is no GPU and what to do;
#   --device auto   falls back to the CPU, and its scores equal the CPU build's byte for byte.
# Usage: scripts/cuda_without_gpu.sh CUDA_BINARY CPU_BINARY CHECKPOINT ITEMS.jsonl [TOOLKIT]
set -euo pipefail

cuda_bin="$1" cpu_bin="$2" ckpt="$3" items="$4" toolkit="${5:-build/cuda-13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cudarc="$(cargo metadata --format-version 1 --all-features 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')"
grep -oE '^ +fn cu[A-Za-z0-9_]+\(' "$(dirname "$cudarc")/src/driver/sys/mod.rs" |
  sed -E 's/ *fn //; s/\($//' | sort -u | awk '{print "int " $1 "(void) { return 100; }"}' >"$tmp/fake.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$tmp/libcuda.so.1" "$tmp/fake.c"
export LD_LIBRARY_PATH="$tmp:$(cd "$toolkit/lib" && pwd)"
head -200 "$items" >"$tmp/items.jsonl"

if "$cuda_bin" score --checkpoint "$ckpt" --input "$tmp/items.jsonl" --output "$tmp/x.jsonl" \
  --device cuda 2>"$tmp/err"; then
  echo "FAIL: --device cuda succeeded without a GPU"; exit 1
fi
grep -q 'no usable CUDA GPU 0 on this machine (CUDA_ERROR_NO_DEVICE)' "$tmp/err" && [[ "$(wc -l <"$tmp/err")" == 1 ]] ||
  { echo "FAIL: unexpected error:"; cat "$tmp/err"; exit 1; }
echo "ok: --device cuda without a GPU: $(cat "$tmp/err")"

"$cuda_bin" score --checkpoint "$ckpt" --input "$tmp/items.jsonl" --output "$tmp/auto.jsonl" | tail -2
"$cpu_bin" score --checkpoint "$ckpt" --input "$tmp/items.jsonl" --output "$tmp/cpu.jsonl" >/dev/null
cmp "$tmp/auto.jsonl" "$tmp/cpu.jsonl"
echo "ok: --device auto fell back to the CPU; 200 rows scored byte-identical to the CPU build"
