#!/usr/bin/env bash
# One re-fine-tuning cycle of a running `longtail serve` (docs/serve.md):
#   1. export the store's clicks, purchases and new items on top of the current raw data
#   2. prepare the result
#   3. continue training the interest model in service on it (--resume-from)
#   4. with PLAN (the plan in service): refit the plan on the new data (`longtail plan`, the
#      candidate checkpoint plus the serving plan's other checkpoints as candidates)
#   5. gate: the candidate (its `served` row with PLAN, else the checkpoint) must keep
#      validation NDCG@10 and tail-item Recall@10 within one standard error (eval-rec
#      --gate-tolerance, EVAL_ARGS) of what is in service, both evaluated on the new data
#   6. POST /admin/reload with the candidate (and its plan) and the new data; the server
#      validates them and swaps atomically
#
# Settings (environment): STORE (sqlite:PATH or postgres://...), BASE (raw data: items.jsonl +
# interactions.csv, the original dataset or the previous cycle's export), INTEREST (checkpoint
# in service), OUT (this cycle's directory), SERVER (http://HOST:PORT), ADMIN_KEY or
# ADMIN_KEY_FILE (a file whose first line is the key: it then never enters the environment); optional
# PLAN (plan directory in service), SINCE (previous cycle's export dir), USER_ID_KEY_FILE (the
# service's key, needed with PostgreSQL), LONGTAIL (binary),
# PREPARE_ARGS, TRAIN_ARGS, PLAN_ARGS, EVAL_ARGS.
set -euo pipefail
: "${STORE:?}" "${BASE:?}" "${INTEREST:?}" "${OUT:?}" "${SERVER:?}"
if [[ -n "${ADMIN_KEY_FILE:-}" ]]; then
    IFS= read -r ADMIN_KEY < "$ADMIN_KEY_FILE"
fi
: "${ADMIN_KEY:?set ADMIN_KEY or ADMIN_KEY_FILE}"
LONGTAIL=${LONGTAIL:-target/release/longtail}
mkdir -p "$OUT"

since=()
[[ -n "${SINCE:-}" ]] && since=(--since "$SINCE")
# The service's user-id key (default: user_id.key beside a SQLite store): base ids are exported
# as pseudonyms and erased users' rows left out.
key=()
[[ -n "${USER_ID_KEY_FILE:-}" ]] && key=(--user-id-key-file "$USER_ID_KEY_FILE")
"$LONGTAIL" events export --store "$STORE" --base "$BASE" "${since[@]}" "${key[@]}" \
    --out "$OUT/export"

# shellcheck disable=SC2086 # *_ARGS are word lists on purpose
"$LONGTAIL" prepare --items "$OUT/export/items.jsonl" \
    --interactions "$OUT/export/interactions.csv" --out "$OUT/prepared" ${PREPARE_ARGS:-}

rm -rf "$OUT/interest"
# shellcheck disable=SC2086
"$LONGTAIL" train-interest --data "$OUT/prepared" --resume-from "$INTEREST" \
    --out "$OUT/interest" ${TRAIN_ARGS:-}

status=0
if [[ -n "${PLAN:-}" ]]; then
    # The serving plan's other interest checkpoints stay candidates (not retrained here).
    mapfile -t candidates < <(python3 - "$PLAN/plan.json" "$INTEREST" <<'PY'
import json, os, sys
plan = json.load(open(sys.argv[1]))
main = os.path.realpath(sys.argv[2])
for c in plan["components"] + plan.get("dropped", []):
    d = c.get("checkpoint")
    if c["kind"] == "interest" and d and os.path.realpath(d) != main:
        print(f"--candidate={c['name']}={d}")
PY
)
    rm -rf "$OUT/plan"
    # shellcheck disable=SC2086
    "$LONGTAIL" plan --data "$OUT/prepared" --checkpoint "$OUT/interest" "${candidates[@]}" \
        --out "$OUT/plan" ${PLAN_ARGS:-}
    # shellcheck disable=SC2086
    "$LONGTAIL" eval-rec --data "$OUT/prepared" --plan "$OUT/plan" \
        --compare-plan "serving=$PLAN" --gate serving --report "$OUT/gate/report.json" \
        ${EVAL_ARGS:-} || status=$?
else
    # shellcheck disable=SC2086
    "$LONGTAIL" eval-rec --data "$OUT/prepared" --checkpoint "$OUT/interest" \
        --compare "serving=$INTEREST" --gate serving --report "$OUT/gate/report.json" \
        ${EVAL_ARGS:-} || status=$?
fi
if [[ $status -eq 3 ]]; then
    echo "refresh: the candidate did not pass the gate; the server keeps $INTEREST${PLAN:+ and $PLAN}"
    exit 3
elif [[ $status -ne 0 ]]; then
    exit "$status"
fi

candidate=$(cd "$OUT/interest" && pwd)
data=$(cd "$OUT/prepared" && pwd)
body="{\"interest\": \"$candidate\", \"data\": \"$data\"}"
if [[ -n "${PLAN:-}" ]]; then
    plan=$(cd "$OUT/plan" && pwd)
    body="{\"interest\": \"$candidate\", \"plan\": \"$plan\", \"data\": \"$data\"}"
fi
# The key goes to curl as a header file from a bash builtin: never on a command line (`ps`).
reply=$(curl -sS -w '\n%{http_code}' -X POST "$SERVER/admin/reload" \
    -H @<(printf 'x-api-key: %s\n' "$ADMIN_KEY") -H 'content-type: application/json' -d "$body")
code=${reply##*$'\n'}
echo "refresh: reload answered $code: ${reply%$'\n'*}"
[[ $code == 200 ]]
