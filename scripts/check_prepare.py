#!/usr/bin/env python3
"""Independently re-check a `longtail prepare` output directory.

Usage: check_prepare.py RAW_ITEMS RAW_INTERACTIONS OUT_DIR

Re-reads the raw inputs with its own (standard-library) parser, recomputes
the long-tail labels from the rule recorded in OUT_DIR/stats.json, and checks:
  * labels in OUT_DIR/items.jsonl match exactly;
  * every kept item is in exactly one split and split sizes per label are
    within one item of their targets (time splits: test = items first seen
    after the cutoff, exactly);
  * read == kept + rejected for every input file in stats.json, and the
    kept counts agree with this script's own count.
Exits non-zero with a message on the first kind of mismatch found; prints a
one-line summary on success. Supports JSON Lines and CSV inputs (optionally
gzip-compressed); CSV rows are taken one physical line each.
"""

import csv
import gzip
import json
import math
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timezone


def fail(msg):
    print(f"check_prepare: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def raw_lines(path, max_bytes):
    """Yields decoded lines; None for lines prepare must reject."""
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        for i, raw in enumerate(f):
            raw = raw.rstrip(b"\n")
            if len(raw) > max_bytes:
                yield None
                continue
            raw = raw.rstrip(b"\r")
            if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield None
                continue
            yield text if text.strip() else None


def id_text(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return v.strip() or None
    return None


def json_records(path, max_bytes):
    for text in raw_lines(path, max_bytes):
        if text is None:
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def csv_records(path, max_bytes):
    lines = raw_lines(path, max_bytes)
    header = next(lines, None)
    if header is None:
        fail(f"{path}: no CSV header")
    cols = [c.strip() for c in next(csv.reader([header]))]
    for text in lines:
        if text is None:
            continue
        row = next(csv.reader([text]))
        if len(row) == len(cols):
            yield dict(zip(cols, row))


def records(path, max_bytes):
    name = path.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return json_records(path, max_bytes)
    if name.endswith(".csv"):
        return csv_records(path, max_bytes)
    fail(f"{path}: only JSON Lines and CSV inputs can be checked")


def parse_day(s):
    try:
        d = date.fromisoformat(s) if len(s) == 10 else None
    except ValueError:
        return None
    return None if d is None else (d - date(1970, 1, 1)).days


def parse_ts(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return math.floor(v) if math.isfinite(v) else None
    if not isinstance(v, str):
        return None
    s = v.strip()
    try:
        return int(s)
    except ValueError:
        pass
    if s and all(c in "0123456789.-" for c in s):
        try:
            f = float(s)
            return math.floor(f) if math.isfinite(f) else None
        except ValueError:
            pass
    day = parse_day(s[:10])
    if day is None:
        return None
    if len(s) == 10:
        return day * 86400
    rest = s[11:].removesuffix("Z")
    if s[10] not in "T " or len(rest) != 8:
        return None
    try:
        t = datetime.strptime(rest, "%H:%M:%S")
    except ValueError:
        return None
    return day * 86400 + t.hour * 3600 + t.minute * 60 + t.second


def parse_rule(rule):
    kind, _, params = rule.partition(":")
    vals = [p for p in params.split(",") if p]
    return kind, vals


def expected_labels(ids, counts, rule, tiers):
    ranking = sorted(range(len(ids)), key=lambda i: (-counts[i], ids[i]))
    ranked = [counts[i] for i in ranking]
    n = len(ranked)
    positive = sum(1 for c in ranked if c > 0)
    total = sum(ranked)
    kind, vals = parse_rule(rule)

    def pareto(share):
        if total == 0:
            return 0
        cum = 0
        for rank, c in enumerate(ranked):
            cum += c
            if cum / total >= share:
                return rank + 1
        return n

    def quantile(q):
        return min(math.floor(q * n + 0.5), n, positive)

    if kind == "pareto":
        share = float(vals[0]) if vals else 0.8
        head_share = float(vals[1]) if len(vals) > 1 else share * share
        non_tail, head = pareto(share), pareto(head_share)
    elif kind == "quantile":
        q = float(vals[0]) if vals else 0.2
        hq = float(vals[1]) if len(vals) > 1 else q * q
        non_tail, head = quantile(q), quantile(hq)
    elif kind == "min-count":
        lo = int(vals[0])
        hi = int(vals[1]) if len(vals) > 1 else lo
        non_tail = sum(1 for c in ranked if c >= lo)
        head = sum(1 for c in ranked if c >= hi)
    else:
        fail(f"unknown tail rule {rule!r}")
    head = min(head, non_tail)
    labels = {}
    for rank, i in enumerate(ranking):
        if rank < non_tail and (tiers == 2 or rank < head):
            labels[ids[i]] = "head"
        elif rank < non_tail:
            labels[ids[i]] = "torso"
        else:
            labels[ids[i]] = "tail"
    return labels


def check_splits(out_items, first_seen, spec):
    kind, _, params = spec.partition(":")
    vals = params.split(",")
    by_label = defaultdict(Counter)
    if kind == "random":
        fracs = dict(zip(["train", "validation", "test"], map(float, vals)))
        pool = out_items
    elif kind == "time":
        day = parse_day(vals[0])
        cutoff = day * 86400 + 86399 if day is not None else int(vals[0])
        val = float(vals[1]) if len(vals) > 1 else 0.1
        fracs = {"train": 1 - val, "validation": val, "test": 0.0}
        pool = []
        for it in out_items:
            fs = first_seen.get(it["item_id"])
            late = fs is not None and fs > cutoff
            if late != (it["split"] == "test"):
                fail(f"time split: item {it['item_id']} first seen {fs} is in {it['split']} (cutoff {cutoff})")
            if not late:
                pool.append(it)
    else:
        fail(f"unknown split spec {spec!r}")
    for it in pool:
        by_label[it["label"]][it["split"]] += 1
    for label, counter in by_label.items():
        n = sum(counter.values())
        for split, frac in fracs.items():
            got, want = counter[split], n * frac
            if abs(got - want) > 1.0:
                fail(f"split {split} has {got} {label} items, target {want:.2f} (more than one off)")


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    raw_items, raw_inter, out_dir = argv[1:]
    try:
        with open(f"{out_dir}/stats.json", encoding="utf-8") as f:
            stats = json.load(f)
        with open(f"{out_dir}/items.jsonl", encoding="utf-8") as f:
            out_items = [json.loads(line) for line in f]
    except (OSError, ValueError) as e:
        fail(f"cannot read prepare output in {out_dir}: {e}")
    opts = stats["options"]
    max_bytes = opts["max_line_bytes"]

    for fs in stats["files"]:
        if fs["read"] != fs["kept"] + fs["rejected"]:
            fail(f"{fs['path']}: read {fs['read']} != kept {fs['kept']} + rejected {fs['rejected']}")
        if sum(fs["rejects_by_reason"].values()) != fs["rejected"]:
            fail(f"{fs['path']}: rejects by reason do not add up to {fs['rejected']}")

    ids, seen = [], set()
    for rec in records(raw_items, max_bytes):
        item = id_text(rec.get(opts["item_id_field"]))
        if item is not None and item not in seen:
            seen.add(item)
            ids.append(item)
    counts = Counter()
    first_seen = {}
    n_inter = 0
    for rec in records(raw_inter, max_bytes):
        user = id_text(rec.get(opts["user_column"]))
        item = id_text(rec.get(opts["item_column"]))
        ts = parse_ts(rec.get(opts["timestamp_column"]))
        if user is None or item not in seen or ts is None:
            continue
        counts[item] += 1
        first_seen[item] = min(ts, first_seen.get(item, ts))
        n_inter += 1

    if len(ids) != stats["n_items"] or n_inter != stats["n_interactions"]:
        fail(f"independent count {len(ids)} items / {n_inter} interactions, "
             f"stats.json says {stats['n_items']} / {stats['n_interactions']}")
    out_ids = [it["item_id"] for it in out_items]
    dupes = [i for i, c in Counter(out_ids).items() if c > 1]
    if dupes:
        fail(f"items in more than one row of items.jsonl: {dupes[:5]}")
    if set(out_ids) != seen:
        fail(f"items.jsonl ids differ from the raw catalogue: "
             f"missing {sorted(seen - set(out_ids))[:5]}, extra {sorted(set(out_ids) - seen)[:5]}")
    bad_split = [it["item_id"] for it in out_items if it["split"] not in ("train", "validation", "test")]
    if bad_split:
        fail(f"items without a valid split: {bad_split[:5]}")

    rule, tiers = stats["tail_rule"]["rule"], stats["tail_rule"]["tiers"]
    want = expected_labels(ids, [counts[i] for i in ids], rule, tiers)
    wrong = [(it["item_id"], it["label"], want[it["item_id"]]) for it in out_items
             if it["label"] != want[it["item_id"]]]
    if wrong:
        fail(f"{len(wrong)} labels differ from {rule} (item, got, want): {wrong[:5]}")
    for it in out_items:
        if it["n_interactions"] != counts[it["item_id"]]:
            fail(f"item {it['item_id']}: n_interactions {it['n_interactions']} != {counts[it['item_id']]}")

    check_splits(out_items, first_seen, opts["split"])
    labels = Counter(want.values())
    print(f"check_prepare: OK: {len(ids)} items, {n_inter} interactions, rule {rule} "
          f"({', '.join(f'{k} {labels[k]}' for k in ('head', 'torso', 'tail') if labels[k])}), "
          f"split {opts['split']}, read = kept + rejected for {len(stats['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
