#!/usr/bin/env bash
# The CUDA build's checks, on a GPU machine with the prebuilt bundle (scripts/gpu_bundle.sh;
# no Rust toolchain, no network needed). Under 8 minutes on one H100. Prints one summary table
# and exits non-zero if any step failed.
#
#   1. gradient tests on the GPU: every parameter gets a gradient, finite differences (f64),
#      an AdamW step moves every parameter, and the composite ops on the GPU agree with the
#      fused CPU kernels (loss and every gradient, f64, dropout on)
#   2. MiniLM forward on the GPU against the fused CPU path (fp32, max abs diff < 1e-4)
#   3. 100 training steps of the default recipe on the Office data (loss falls; samples/s)
#   4. score of the Office catalogue on the GPU and on the CPU (rows/s; p_tail within 1e-4)
#   5. bf16 mixed precision on the GPU: 100 training steps and the Office catalogue's scores
#   6. train-interest for a few steps on the GPU
#
# Usage: scripts/gpu_check.sh BUNDLE_DIR   (the unpacked gpu-bundle/ folder)
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU: a test of this script on any machine.
set -uo pipefail

bundle="$(cd "${1:?usage: scripts/gpu_check.sh BUNDLE_DIR}" && pwd)"
device="${GPU_CHECK_DEVICE:-cuda}"
work="${GPU_CHECK_WORK:-$(mktemp -d)}"
lt="$bundle/bin/longtail"
mkdir -p "$work"
export LONGTAIL_TEST_DEVICE="$device" LONGTAIL_TEST_BASE_MODEL="$bundle/minilm" \
  LONGTAIL_TEST_OFFICE_ITEMS="$bundle/office/items.jsonl" RUST_BACKTRACE=1

source "$(dirname "${BASH_SOURCE[0]}")/cuda_libs.sh"

declare -a rows
failed=0
row() { # step, PASS/FAIL, numbers
  rows+=("$(printf '| %-34s | %-4s | %s |' "$1" "$2" "$3")")
  [[ "$2" == PASS ]] || failed=1
}
log() { echo; echo "== $*"; }

echo "gpu_check: device $device, bundle $bundle (commit $(cat "$bundle/COMMIT" 2>/dev/null || echo ?)), work $work"
if [[ "$device" == cuda* ]]; then
  nvidia-smi -L || true
fi
if ! find_cuda_libs "$lt"; then
  row "CUDA libraries" FAIL "missing: $(ldd "$lt" | awk '/not found/ {print $1}' | tr '\n' ' ')"
  printf '%s\n' "${rows[@]}"
  exit 1
fi

log "1. gradient tests on $device"
if "$bundle/bin/gradients" --test-threads 1 --nocapture >"$work/gradients.log" 2>&1; then
  row "gradients + fused-vs-composite" PASS "$(grep -o '[0-9]* passed' "$work/gradients.log"); finite differences: $(grep -o 'worst abs error .*' "$work/gradients.log")"
else
  row "gradients + fused-vs-composite" FAIL "see $work/gradients.log"
fi
tail -12 "$work/gradients.log"
if "$bundle/bin/adamw_device" --nocapture >"$work/adamw.log" 2>&1; then
  row "AdamW kernels = CPU bit for bit" PASS "$(grep -o '[0-9]* passed' "$work/adamw.log")"
else
  row "AdamW kernels = CPU bit for bit" FAIL "see $work/adamw.log"
fi

log "2. MiniLM forward on $device vs the fused CPU path"
if "$bundle/bin/parity_minilm" minilm_on_the_test_device --nocapture >"$work/parity.log" 2>&1 &&
  grep -q 'max abs diff' "$work/parity.log"; then
  row "MiniLM parity (fp32, < 1e-4)" PASS "$(grep -o 'max abs diff .*' "$work/parity.log")"
else
  row "MiniLM parity (fp32, < 1e-4)" FAIL "see $work/parity.log"
fi
tail -4 "$work/parity.log"

log "3. prepare + 100 training steps on $device"
"$lt" prepare --items "$bundle/office/items.jsonl" --interactions "$bundle/office/interactions.csv" \
  --out "$work/office" >"$work/prepare.log" 2>&1 || echo "prepare failed: $work/prepare.log"
if "$lt" train --data "$work/office" --model "$bundle/minilm" --out "$work/model" --max-steps 100 \
  --eval-strategy no --logging-steps 10 --device "$device" --phase-times 2>&1 |
  tee "$work/train.log" | tail -5; then
  loss="$(python3 - "$work/model/metrics.jsonl" <<'EOF'
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
print(f"{'falls' if last < first else 'DOES NOT FALL'}: mean of first 3 logs {first:.3f}, last 3 {last:.3f}")
EOF
)"
  sps="$(grep '^trained' "$work/train.log" | grep -o '[0-9.]* samples/s')"
  [[ "$loss" == falls* ]] && ok=PASS || ok=FAIL
  row "train, 100 steps" "$ok" "$sps; loss $loss; $(grep -o '^phase times: .*' "$work/train.log")"
else
  row "train, 100 steps" FAIL "see $work/train.log"
fi

log "4. score the Office catalogue on $device and on the CPU"
score() { # device, output
  "$lt" score --checkpoint "$work/model" --input "$bundle/office/items.jsonl" --output "$2" \
    --device "$1" 2>&1 | tail -2
}
if score "$device" "$work/scores.$device.jsonl" | tee "$work/score.log" &&
  score cpu "$work/scores.cpu.jsonl" | tee "$work/score.cpu.log"; then
  diff="$(python3 - "$work/scores.$device.jsonl" "$work/scores.cpu.jsonl" <<'EOF'
import json, sys
a, b = ([json.loads(l)["p_tail"] for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) > 0, (len(a), len(b))
print(f"{len(a)} rows, max abs p_tail diff {max(abs(x - y) for x, y in zip(a, b)):.2e}")
EOF
)"
  rps="$(grep '^scored' "$work/score.log" | grep -o '[0-9.]* rows/s')"
  rps_cpu="$(grep '^scored' "$work/score.cpu.log" | grep -o '[0-9.]* rows/s')"
  max="$(echo "$diff" | grep -o '[0-9.e+-]*$')"
  python3 -c "import sys; sys.exit(0 if float('$max') < 1e-4 else 1)" && ok=PASS || ok=FAIL
  row "score Office (p_tail vs CPU < 1e-4)" "$ok" "$device $rps, cpu $rps_cpu; $diff"
else
  row "score Office (p_tail vs CPU < 1e-4)" FAIL "see $work/score.log"
fi

log "5. bf16 mixed precision on $device: 100 training steps, then score the catalogue"
if "$lt" train --data "$work/office" --model "$bundle/minilm" --out "$work/model-bf16" \
  --max-steps 100 --eval-strategy no --logging-steps 10 --precision bf16 --device "$device" \
  >"$work/train-bf16.log" 2>&1; then
  row "train bf16, 100 steps" PASS "$(grep '^trained' "$work/train-bf16.log" | grep -o '[0-9.]* samples/s')"
else
  row "train bf16, 100 steps" FAIL "see $work/train-bf16.log"
fi
if "$lt" score --checkpoint "$work/model" --input "$bundle/office/items.jsonl" \
  --output "$work/scores.bf16.jsonl" --precision bf16 --device "$device" >"$work/score-bf16.log" 2>&1; then
  diff="$(python3 - "$work/scores.bf16.jsonl" "$work/scores.$device.jsonl" <<'EOF'
import json, sys
a, b = ([json.loads(l)["p_tail"] for l in open(p)] for p in sys.argv[1:3])
print(f"max abs p_tail diff vs fp32 {max(abs(x - y) for x, y in zip(a, b)):.2e}")
EOF
)"
  max="$(echo "$diff" | grep -o '[0-9.e+-]*$')"
  python3 -c "import sys; sys.exit(0 if float('$max') < 0.02 else 1)" && ok=PASS || ok=FAIL
  row "score bf16 (p_tail vs fp32 < 0.02)" "$ok" "$(grep '^scored' "$work/score-bf16.log" | grep -o '[0-9.]* rows/s'); $diff"
else
  row "score bf16 (p_tail vs fp32 < 0.02)" FAIL "see $work/score-bf16.log"
fi

log "6. train-interest, a few steps on $device"
if "$lt" train-interest --data "$work/office" --model "$bundle/minilm" --out "$work/interest" \
  --max-steps 40 --eval-every 20 --device "$device" >"$work/interest.log" 2>&1; then
  row "train-interest, 40 steps" PASS "$(grep -E '^trained|^validation NDCG' "$work/interest.log" | tr '\n' ' ')"
else
  row "train-interest, 40 steps" FAIL "see $work/interest.log"
fi
tail -6 "$work/interest.log"

echo
echo "## gpu_check summary ($device; $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo "no nvidia-smi"))"
echo "| step | ok | numbers |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $failed
