#!/usr/bin/env python3
"""A catalogue dump as an engine writes one: a directory of part files in several formats,
made from a catalogue's rows repeated to --rows rows (ids made unique: `ID~r2`).

    python scripts/make_score_dump.py --items ../shared/datasets/amazon-office-2014/items.jsonl \
        --rows 200000 --files 8 --out runs/office-dump

Files, in order: part-00000.jsonl, .jsonl.gz, .csv, .parquet (several row groups of
--row-group rows), repeating through the kinds until --files; plus a `_SUCCESS` marker that
readers skip. Needs pyarrow for the parquet parts.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
from pathlib import Path

KINDS = ["jsonl", "jsonl.gz", "parquet", "csv"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", required=True, help="catalogue JSONL (flat string fields)")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--row-group", type=int, default=4096, help="rows per parquet row group")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    base = [json.loads(line) for line in open(args.items, encoding="utf-8") if line.strip()]
    fields = list(dict.fromkeys(k for row in base for k in row))

    def row(i: int) -> dict:
        r = dict(base[i % len(base)])
        rep = i // len(base)
        if rep:
            r["item_id"] = f"{r['item_id']}~r{rep}"
        return {k: r.get(k) for k in fields}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    per_file = -(-args.rows // args.files)
    written = []
    for f in range(args.files):
        lo, hi = f * per_file, min(args.rows, (f + 1) * per_file)
        rows = [row(i) for i in range(lo, hi)]
        kind = KINDS[f % len(KINDS)]
        path = out / f"part-{f:05d}.{kind}"
        if kind.startswith("jsonl"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
            path.write_bytes(gzip.compress(text, 6) if kind.endswith(".gz") else text)
        elif kind == "csv":
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
            path.write_text(buf.getvalue(), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({k: [("" if r[k] is None else str(r[k])) for r in rows] for k in fields})
            pq.write_table(table, path, row_group_size=args.row_group)
        written.append((path.name, hi - lo, path.stat().st_size))
    (out / "_SUCCESS").write_text("")
    total = sum(b for _, _, b in written)
    print(f"make_score_dump: {args.rows} rows from {len(base)} catalogue rows in {len(written)} files, "
          f"{total} bytes, in {out}")
    for name, n, size in written:
        print(f"  {name}: {n} rows, {size} bytes")


if __name__ == "__main__":
    main()
