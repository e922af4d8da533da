#!/usr/bin/env bash
# The wheel of `make wheel`, installed into a fresh venv from the file alone (no index, no
# network), then run as a worker would run it: `longtail --version`, then prepare, a two-update
# fine-tune and `longtail score` on the Office data. Every step's output is checked.
# Usage: scripts/test_wheel.sh DATASET_DIR BASE_MODEL_DIR
set -euo pipefail
dataset=${1:?dataset directory (items.jsonl, interactions.csv)}
model=${2:?base model directory}
wheel=$(ls -t target/wheels/longtail-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || { echo "no wheel in target/wheels: run make wheel" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index "$wheel"
bin="$work/venv/bin/longtail"
echo "wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1)), installs $("$bin" --version)"
"$bin" prepare --items "$dataset/items.jsonl" --interactions "$dataset/interactions.csv" \
    --out "$work/data" > "$work/prepare.log"
"$bin" train --data "$work/data" --model "$model" --out "$work/model" --max-steps 2 \
    --eval-strategy no --max-len 32 > "$work/train.log" 2>&1
"$bin" score --checkpoint "$work/model" --input "$dataset/items.jsonl" \
    --output "$work/scores.jsonl" 2> "$work/score.log"
items=$(grep -c . "$dataset/items.jsonl")
scored=$(grep -c . "$work/scores.jsonl")
rejected=$(cat "$work"/scores*rejects* 2>/dev/null | grep -c . || true)
echo "wheel: scored $scored rows, rejected $rejected, of $items input lines"
[ $((scored + rejected)) -eq "$items" ] || { echo "rows lost: $scored + $rejected != $items" >&2; exit 1; }
head -c 200 "$work/scores.jsonl"; echo
