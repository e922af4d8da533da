#!/usr/bin/env bash
# longtail against PyTorch on one GPU, side by side, from the prebuilt bundle
# (scripts/gpu_bundle.sh): the default fine-tuning recipe (configs/train.toml, Office data) in
# fp32 and bf16, at batch 16 (the recipe's) and 256, with loop-only samples/s (the updates,
# without start-up, evaluation and checkpoint writes, on both sides), where an update's time goes
# (--phase-times) and test ROC-AUC; then catalogue scoring rows/s (scripts/bench_torch_score.py
# --device, 20k resampled rows) against the transformers pipeline and against the stronger
# reference (--strong: pre-tokenized, length-sorted, batch 256, bf16, forward passes only).
# The PyTorch side is scripts/finetune_torch.py and transformers on the machine's own torch.
# Under 6 minutes on one H100.
#
# Usage: scripts/gpu_bench.sh BUNDLE_DIR   (run from the repository root)
# GPU_BENCH_DEVICE=cpu runs the same steps on the CPU (a test of this script), best with
# GPU_BENCH_MAX_STEPS=5 GPU_BENCH_SCORE_ROWS=200 (both sides stop after that many updates);
# GPU_BENCH_BATCHES="16" runs one batch size.
set -uo pipefail

bundle="$(cd "${1:?usage: scripts/gpu_bench.sh BUNDLE_DIR}" && pwd)"
device="${GPU_BENCH_DEVICE:-cuda}"
rows="${GPU_BENCH_SCORE_ROWS:-20000}"
max_steps="${GPU_BENCH_MAX_STEPS:--1}"
work="${GPU_BENCH_WORK:-$(mktemp -d)}"
lt="$bundle/bin/longtail"
mkdir -p "$work"
source "$(dirname "${BASH_SOURCE[0]}")/cuda_libs.sh"
find_cuda_libs "$lt" || exit 1
export PYTHONUNBUFFERED=1

declare -a table
add() { table+=("$(printf '| %s |' "$*")"); }
# field FILE KEY FORMAT: one number of a JSON file, formatted (`?` when it cannot be read).
field() { python3 -c "import json,sys; print(format(json.load(open(sys.argv[1]))[sys.argv[2]], sys.argv[3]))" "$@" 2>/dev/null || echo '?'; }

echo "gpu_bench: device $device ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)), bundle commit $(cat "$bundle/COMMIT" 2>/dev/null || echo ?)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p')), $(nproc) cores"
"$lt" prepare --items "$bundle/office/items.jsonl" --interactions "$bundle/office/interactions.csv" \
  --out "$work/office" >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log"; exit 1; }

batches="${GPU_BENCH_BATCHES:-16 256}"
for batch in $batches; do
for precision in fp32 bf16; do
  run="$precision-b$batch"
  echo; echo "== fine-tune, $precision, batch $batch: longtail"
  "$lt" train --config configs/train.toml --data "$work/office" --model "$bundle/minilm" \
    --out "$work/lt-$run" --precision "$precision" --device "$device" --phase-times --max-steps "$max_steps" \
    --per-device-train-batch-size "$batch" >"$work/train-$run.log" 2>&1
  tail -6 "$work/train-$run.log"
  "$lt" eval --checkpoint "$work/lt-$run" --data "$work/office" --device "$device" \
    --no-baselines --report "$work/eval-$run.json" >"$work/eval-$run.log" 2>&1
  lt_auc="$(field "$work/eval-$run.json" auc .4f)"
  echo "== fine-tune, $precision, batch $batch: PyTorch"
  python3 scripts/finetune_torch.py --data "$work/office" --model "$bundle/minilm" \
    --config configs/train.toml --device "$device" --precision "$precision" --max-steps "$max_steps" \
    --per-device-train-batch-size "$batch" --out "$work/torch-$run.json" >"$work/torch-$run.log" 2>&1
  tail -3 "$work/torch-$run.log" | cut -c1-400
  # The last samples/s of train's summary is the loop-only one ("in the updates alone").
  lt_sps="$(grep -o '[0-9.]* samples/s' "$work/train-$run.log" | tail -1)"
  py_sps="$(field "$work/torch-$run.json" train_samples_per_second .1f) samples/s"
  ratio="$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}x')" "${lt_sps%% *}" "${py_sps%% *}" 2>/dev/null || echo '?')"
  add "fine-tune $precision, batch $batch (loop only) | longtail $lt_sps ($ratio), test AUC $lt_auc | PyTorch $py_sps, test AUC $(field "$work/torch-$run.json" test_auc .4f) | $(grep -o 'phase times: .*' "$work/train-$run.log")"
done
done

echo; echo "== score, $rows resampled Office rows"
# prepare's items.jsonl: its cleaned fields are what both sides tokenize (raw rows would be
# cleaned by longtail only, NFKC and all, and their p_tail would differ where that matters).
python3 scripts/bench_torch_score.py --checkpoint "$work/lt-fp32-b${batches%% *}" --items "$work/office/items.jsonl" \
  --longtail "$lt" --device "$device" --bf16 --strong --rows "$rows" --batch-size 64 \
  --out-dir "$work/score" 2>&1 | tee "$work/score.log"
add "score fp32 | $(grep -o 'longtail [0-9.]* rows/s' "$work/score.log" | head -1) | $(grep -o 'python (transformers[^)]*) [0-9.]* rows/s' "$work/score.log") | $(grep -o 'ratio [0-9.]*x, max |p_tail diff| [0-9.e+-]*' "$work/score.log" | head -1)"
add "score bf16 | $(grep -o 'bf16: longtail [0-9.]* rows/s' "$work/score.log") | $(grep -o 'torch (model in bfloat16) [0-9.]* rows/s' "$work/score.log") | $(grep -o 'ratio [0-9.]*x; max .*' "$work/score.log" | tail -1)"
add "score vs the stronger reference | $(grep -o 'longtail fp32 = [0-9.]*x it.*' "$work/score.log" | cut -d';' -f1) | $(grep -o 'stronger reference ([^)]*): [0-9.]* rows/s' "$work/score.log") | $(grep -o 'max |p_tail diff| vs longtail fp32 [0-9.e+-]*' "$work/score.log")"

if command -v nsys >/dev/null; then
  echo; echo "== nsys: 30 fp32 updates"
  nsys profile -t cuda -o "$work/train-prof" --force-overwrite true "$lt" train --data "$work/office" \
    --model "$bundle/minilm" --out "$work/lt-prof" --max-steps 30 --eval-strategy no --device "$device" \
    >"$work/nsys-run.log" 2>&1 &&
    nsys stats -r cuda_api_sum,cuda_gpu_kern_sum -f csv "$work/train-prof.nsys-rep" >"$work/nsys-stats.csv" 2>&1
  head -25 "$work/nsys-stats.csv" | cut -c1-200
fi

echo
echo "## gpu_bench summary ($device)"
echo "| run | longtail | PyTorch | notes |"
echo "|---|---|---|---|"
printf '%s\n' "${table[@]}"
