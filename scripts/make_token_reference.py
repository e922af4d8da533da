#!/usr/bin/env python3
"""Write Python `tokenizers` reference ids for the first N Office titles.

The Rust test `crates/longtail-tokenize/tests/python_parity.rs` compares its own ids with these.
The output is derived from research-only data, so it goes under target/ (git-ignored) and is
never committed.

Usage (from the repository root):
    python3 scripts/make_token_reference.py \
        --items ../shared/datasets/amazon-office-2014/items.jsonl \
        --tokenizer checkpoints/base/all-MiniLM-L6-v2/tokenizer.json \
        --out target/token-reference/office_titles.jsonl

Output JSONL: a header line
    {"kind": "header", "items": ..., "tokenizer": ..., "tokenizer_sha256": ...,
     "tokenizers_version": ..., "n": N}
then one line per title, in file order:
    {"index": i, "item_id": "...", "ids": [...]}
Ids are `Tokenizer.encode(title, add_special_tokens=True)` with the file's own truncation and
padding switched off. Titles are not copied into the output; the test reads them from `items`.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--items",
        default=os.path.join(ROOT, "..", "shared", "datasets", "amazon-office-2014", "items.jsonl"),
        help="Office items.jsonl (fields item_id, title, ...)",
    )
    ap.add_argument(
        "--tokenizer",
        default=os.path.join(ROOT, "checkpoints", "base", "all-MiniLM-L6-v2", "tokenizer.json"),
    )
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "token-reference", "office_titles.jsonl"))
    ap.add_argument("--limit", type=int, default=1000, help="number of titles (default 1000)")
    args = ap.parse_args()

    try:
        import tokenizers
        from tokenizers import Tokenizer
    except ImportError:
        print("error: the Python `tokenizers` package is missing: pip install tokenizers", file=sys.stderr)
        return 2

    items_path = os.path.abspath(args.items)
    tok_path = os.path.abspath(args.tokenizer)
    with open(tok_path, "rb") as f:
        tok_bytes = f.read()
    tok = Tokenizer.from_str(tok_bytes.decode("utf-8"))
    tok.no_truncation()
    tok.no_padding()

    rows = []
    with open(items_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            title = row.get("title") or ""
            if not title.strip():
                continue
            rows.append((row["item_id"], title))
            if len(rows) == args.limit:
                break
    if len(rows) < args.limit:
        print(f"warning: only {len(rows)} titles in {items_path}", file=sys.stderr)

    encodings = tok.encode_batch([t for _, t in rows], add_special_tokens=True)
    header = {
        "kind": "header",
        "items": items_path,
        "tokenizer": tok_path,
        "tokenizer_sha256": hashlib.sha256(tok_bytes).hexdigest(),
        "tokenizers_version": tokenizers.__version__,
        "n": len(rows),
    }
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # Atomic: a half-written reference must never be read by the test.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), prefix=".token_reference.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for i, ((item_id, _), enc) in enumerate(zip(rows, encodings)):
            f.write(json.dumps({"index": i, "item_id": item_id, "ids": enc.ids}) + "\n")
    os.replace(tmp, out)
    print(f"wrote {len(rows)} reference encodings to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
