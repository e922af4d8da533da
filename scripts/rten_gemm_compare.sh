#!/usr/bin/env bash
# rten-gemm's u8 x i8 -> i32 GEMM against longtail-int8's kernels (the int8_gemm example), at
# MiniLM's linear-layer shapes, 2048 rows, 1 and 2 threads, best of 20 per shape; ROUNDS
# alternating runs of the two binaries and the median of each (the machine is shared).
# Usage: bash scripts/rten_gemm_compare.sh [ROUNDS]   (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
work=target/rten-gemm-compare
mkdir -p "$work"
manifest=scripts/rten_gemm_compare/Cargo.toml
# A copy of rten-gemm 0.27.0 whose kernel enum and constructor are public, so the AVX2 kernel
# can be measured on an AVX-512 host too.
if [ ! -d "$work/rten-gemm" ]; then
    cargo fetch --manifest-path "$manifest" >/dev/null 2>&1 || true
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rten-gemm-0.27.0 | head -1)
    cp -r "$src" "$work/rten-gemm"
    sed -i 's/^trait WithKernel: Sized/pub trait WithKernel: Sized/;
            s/^enum Int8KernelType/pub enum Int8KernelType/;
            s/^enum F32KernelType/pub enum F32KernelType/' "$work/rten-gemm/src/lib.rs"
fi
cargo build --quiet --release --manifest-path "$manifest" --target-dir "$work/target"
ours=${INT8_GEMM:-target/release/examples/int8_gemm}
theirs=$work/target/release/rten-gemm-compare
grep -m1 "model name" /proc/cpuinfo; grep -m1 "cpu family" /proc/cpuinfo
for _ in $(seq "$rounds"); do
    "$ours" 2048 2 | grep -E "threads=.*kernel=(avx512-vnni|avx2) " | sed 's/^/longtail-int8 /'
    "$theirs" | sed 's/^/rten-gemm /'
done | python3 -c '
import re, statistics, sys, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    m = re.search(r"threads=(\d)\s+kernel=(\S+)\s+([0-9.]+) GOP/s", line)
    if m:
        isa = "avx2" if "avx2" in m.group(2) else "avx512-vnni"
        runs[(isa, m.group(1), line.split()[0])].append(float(m.group(3)))
print("kernel        threads  longtail-int8 GOP/s  rten-gemm GOP/s  ratio (medians)")
for isa in ("avx512-vnni", "avx2"):
    for t in ("1", "2"):
        a, b = runs.get((isa, t, "longtail-int8")), runs.get((isa, t, "rten-gemm"))
        if a and b:
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{isa:<13} {t:>7}  {ma:>19.1f}  {mb:>15.1f}  {ma / mb:.2f}x")
'
