#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that has no Rust toolchain and no
# network into one archive (< 60 MB, the device tool's 64 MiB limit):
#   bin/longtail, bin/gradients, bin/parity_minilm, bin/adamw_device   stripped, from TARGET (default target/cuda)
#   minilm/   all-MiniLM-L6-v2 with its weights stored in f16 (loaded as f32; both sides of every
#             CPU-vs-GPU comparison read the same weights, so the rounding does not matter)
#   office/   the Office catalogue and purchases (research use: the archive is never committed)
# xz with a dictionary larger than one binary: the three executables share candle and its
# kernels, so they cost about one binary's size together.
#
# Usage: scripts/gpu_bundle.sh [TARGET_DIR] [OUT_ARCHIVE]
set -euo pipefail

target="${1:-target/cuda}"
out="${2:-build/gpu-bundle.tar.xz}"
model="${BASE_MODEL:-checkpoints/base/all-MiniLM-L6-v2}"
data="${DATASET:-../shared/datasets/amazon-office-2014}"

newest() { ls -t "$target"/release/deps/"$1"-* | grep -v '\.d$' | head -1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
b="$stage/gpu-bundle"
mkdir -p "$b/bin" "$b/minilm" "$b/office"
cp "$target/release/longtail" "$b/bin/longtail"
cp "$(newest gradients)" "$b/bin/gradients"
cp "$(newest parity_minilm)" "$b/bin/parity_minilm"
cp "$(newest adamw_device)" "$b/bin/adamw_device"
strip "$b"/bin/*
cp "$model/config.json" "$model/tokenizer.json" "$b/minilm/"
python3 - "$model/model.safetensors" "$b/minilm/model.safetensors" <<'EOF'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()},
          sys.argv[2], metadata={"format": "pt"})
EOF
cp "$data/items.jsonl" "$data/interactions.csv" "$b/office/"
git describe --always --dirty >"$b/COMMIT" 2>/dev/null || true
mkdir -p "$(dirname "$out")"
tar -C "$stage" -cf - gpu-bundle | xz -T1 --lzma2=preset=9,dict=512MiB >"$out.tmp"
mv "$out.tmp" "$out"
ls -la "$out"
