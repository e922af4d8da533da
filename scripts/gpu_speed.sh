#!/usr/bin/env bash
# The GPU speed check of one session, under 8 minutes on an H100: the runtime settings A/B
# (cudarc event tracking on/off x memory-pool release threshold max/0, loop-only samples/s of
# the same short fp32 fine-tune), then scripts/gpu_bench.sh (longtail against PyTorch at batch
# 16 and 256, fp32 and bf16, and scoring against the transformers pipeline and the stronger
# reference; launches and driver calls per update from nsys where it exists).
#
# Usage: scripts/gpu_speed.sh BUNDLE_DIR   (from the repository root; the bundle of
# scripts/gpu_bundle.sh). GPU_SPEED_AB_STEPS (default 40) updates per A/B run;
# GPU_BENCH_MAX_STEPS (default here 200) caps every fine-tune of the benchmark.
set -uo pipefail

bundle="$(cd "${1:?usage: scripts/gpu_speed.sh BUNDLE_DIR}" && pwd)"
lt="$bundle/bin/longtail"
device="${GPU_BENCH_DEVICE:-cuda}"
steps="${GPU_SPEED_AB_STEPS:-40}"
work="${GPU_BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
echo "gpu_speed: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

"$lt" prepare --items "$bundle/office/items.jsonl" --interactions "$bundle/office/interactions.csv" \
  --out "$work/office" >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log"; exit 1; }

echo "== runtime settings A/B: $steps fp32 updates at batch 16 each"
ab=()
for tracking in 0 1; do
  for threshold in max 0; do
    run="ab-t$tracking-p$threshold"
    LONGTAIL_CUDA_EVENT_TRACKING="$tracking" LONGTAIL_CUDA_POOL_RELEASE_THRESHOLD="$threshold" \
      "$lt" train --config configs/train.toml --data "$work/office" --model "$bundle/minilm" \
      --out "$work/$run" --device "$device" --max-steps "$steps" --eval-strategy no \
      --per-device-train-batch-size 16 --phase-times >"$work/$run.log" 2>&1
    sps="$(grep -o '[0-9.]* samples/s' "$work/$run.log" | tail -1)"
    label=off; [[ $tracking == 1 ]] && label=on
    ab+=("| $label | $threshold | ${sps:-failed: see $work/$run.log} | $(grep -o 'phase times: .*' "$work/$run.log") |")
  done
done

GPU_BENCH_MAX_STEPS="${GPU_BENCH_MAX_STEPS:-200}" GPU_BENCH_WORK="$work/bench" \
  bash scripts/gpu_bench.sh "$bundle"

echo
echo "## runtime settings ($device, loop-only samples/s, $steps updates, batch 16, fp32)"
echo "| event tracking | pool release threshold | samples/s | phase times |"
echo "|---|---|---|---|"
printf '%s\n' "${ab[@]}"
