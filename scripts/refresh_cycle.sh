#!/usr/bin/env bash
# One re-fine-tuning cycle of a running `longtail serve` (docs/serve.md):
#   1. export the store's clicks, purchases and new items on top of the current raw data
#   2. prepare the result
#   3. continue training the interest model in service on it (--resume-from)
#   4. gate: the candidate must be no worse on validation (NDCG@10 and tail-item Recall@10)
#      than the model in service, both evaluated on the new data
#   5. POST /admin/reload with the candidate and the new data; the server validates them and
#      swaps atomically
#
# Settings (environment): STORE (sqlite:PATH or postgres://...), BASE (raw data: items.jsonl +
# interactions.csv, the original dataset or the previous cycle's export), INTEREST (checkpoint
# in service), OUT (this cycle's directory), SERVER (http://HOST:PORT), ADMIN_KEY; optional
# SINCE (previous cycle's export dir), LONGTAIL (binary), PREPARE_ARGS, TRAIN_ARGS, EVAL_ARGS.
set -euo pipefail
: "${STORE:?}" "${BASE:?}" "${INTEREST:?}" "${OUT:?}" "${SERVER:?}" "${ADMIN_KEY:?}"
LONGTAIL=${LONGTAIL:-target/release/longtail}
mkdir -p "$OUT"

since=()
[[ -n "${SINCE:-}" ]] && since=(--since "$SINCE")
"$LONGTAIL" events export --store "$STORE" --base "$BASE" "${since[@]}" --out "$OUT/export"

# shellcheck disable=SC2086 # *_ARGS are word lists on purpose
"$LONGTAIL" prepare --items "$OUT/export/items.jsonl" \
    --interactions "$OUT/export/interactions.csv" --out "$OUT/prepared" ${PREPARE_ARGS:-}

rm -rf "$OUT/interest"
# shellcheck disable=SC2086
"$LONGTAIL" train-interest --data "$OUT/prepared" --resume-from "$INTEREST" \
    --out "$OUT/interest" ${TRAIN_ARGS:-}

status=0
# shellcheck disable=SC2086
"$LONGTAIL" eval-rec --data "$OUT/prepared" --checkpoint "$OUT/interest" \
    --compare "serving=$INTEREST" --gate serving --report "$OUT/gate/report.json" ${EVAL_ARGS:-} \
    || status=$?
if [[ $status -eq 3 ]]; then
    echo "refresh: the candidate did not pass the gate; the server keeps $INTEREST"
    exit 3
elif [[ $status -ne 0 ]]; then
    exit "$status"
fi

candidate=$(cd "$OUT/interest" && pwd)
data=$(cd "$OUT/prepared" && pwd)
reply=$(curl -sS -w '\n%{http_code}' -X POST "$SERVER/admin/reload" \
    -H "x-api-key: $ADMIN_KEY" -H 'content-type: application/json' \
    -d "{\"interest\": \"$candidate\", \"data\": \"$data\"}")
code=${reply##*$'\n'}
echo "refresh: reload answered $code: ${reply%$'\n'*}"
[[ $code == 200 ]]
