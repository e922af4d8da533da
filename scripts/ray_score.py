#!/usr/bin/env python3
"""Score a catalogue on a Ray cluster: one Ray task per shard, each running the `longtail`
binary with `--shard k/N --resume`, then `longtail score --merge`.

    python scripts/ray_score.py --checkpoint CKPT --input DUMP_DIR --out-dir OUT --shards 16

The shard contract is the binary's (docs/score.md, docs/scale-out.md): shard k of a many-file
input reads whole files and parquet row groups by byte position, writes OUT/part-k.jsonl with
its rejects and progress file, and resumes from that progress file. So a retry cannot lose or
double rows:
  * a task whose worker dies (node lost, OOM kill) is retried by Ray (`--max-retries`), and the
    retry resumes the part where its durable output ends;
  * the child binary gets SIGKILL when its worker dies (LONGTAIL_PARENT_PID: the Linux
    parent-death signal, armed by the binary itself), so no orphan keeps writing; while it is
    still dying its lock is held and the retry's binary exits with status 75, which this
    driver waits out;
  * an error of the binary itself (bad checkpoint, unreadable input) is not retried: it would
    fail again. The task fails with the binary's last lines.
At the end the parts are checked and concatenated by `longtail score --merge` (OUT/_SUCCESS
lists them), and one summary line gives rows/s, attempts and retries. Every attempt is a line
in OUT/_attempts.jsonl.

The output directory must be on storage every node sees (NFS, Lustre, a FUSE-mounted bucket
with flock support), as for a Slurm array. Local mode (no --address) starts Ray on this
machine with --num-cpus CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

EX_TEMPFAIL = 75


def find_longtail(explicit: str | None) -> str:
    """The binary: --longtail, else the one pip installed beside this interpreter (a Ray
    runtime_env venv), else PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "longtail"
    if beside.exists():
        return str(beside)
    found = shutil.which("longtail")
    if not found:
        sys.exit("error: no `longtail` binary: pip install longtail (make wheel), or --longtail PATH")
    return found


def log_attempt(out_dir: Path, record: dict) -> None:
    # O_APPEND writes of one short line do not interleave between processes.
    with open(out_dir / "_attempts.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def run_shard(
    binary: str,
    shard: int,
    shards: int,
    checkpoint: str,
    input_spec: str,
    out_dir: str,
    extra: list[str],
    busy_wait_s: float,
) -> dict:
    """One attempt of shard `shard`: the binary with --resume, waited out while a dying
    earlier attempt still holds the part's lock."""
    out = Path(out_dir)
    part = out / f"part-{shard:05d}.jsonl"
    logs = out / "_logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary, "score", "--checkpoint", checkpoint, "--input", input_spec,
        "--output", str(part), "--shard", f"{shard}/{shards}", "--resume", *extra,
    ]
    me = os.getpid()
    attempt = {"shard": shard, "host": socket.gethostname(), "worker_pid": me}
    log_attempt(out, {**attempt, "event": "start", "time": time.time()})
    # The child arms its own parent-death signal (no preexec_fn: unsafe in a threaded worker).
    env = {**os.environ, "LONGTAIL_PARENT_PID": str(me)}
    deadline = time.monotonic() + busy_wait_s
    while True:
        log_path = logs / f"part-{shard:05d}.{me}.{int(time.time() * 1000)}.log"
        with open(log_path, "wb") as log:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            log_attempt(out, {**attempt, "event": "spawn", "child_pid": child.pid, "time": time.time()})
            rc = child.wait()
        if rc == EX_TEMPFAIL and time.monotonic() < deadline:
            time.sleep(0.5)  # the earlier attempt is still alive or dying: its lock decides
            continue
        break
    log_attempt(out, {**attempt, "event": "end", "rc": rc, "time": time.time()})
    if rc != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"shard {shard}/{shards}: longtail exited {rc}: " + " | ".join(tail))
    progress = json.loads(Path(f"{part}.progress.json").read_text())
    return {"shard": shard, "rows": progress["rows_consumed"], "bytes_read": progress["bytes_read"],
            "footer_bytes": progress.get("footer_bytes", 0), "input_bytes": progress["input_len"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="classifier checkpoint (longtail train --out)")
    p.add_argument("--input", required=True,
                   help="a directory, a quoted glob or @manifest of JSONL/CSV/Parquet files (or one file)")
    p.add_argument("--out-dir", required=True, help="parts, logs and the merged output go here")
    p.add_argument("--output", help="merged output (default: OUT_DIR/scores.jsonl)")
    p.add_argument("--shards", type=int, default=0, help="number of shards (default: 2 per CPU of the cluster)")
    p.add_argument("--threads", type=int, default=1, help="CPUs per shard task (longtail --threads)")
    p.add_argument("--max-retries", type=int, default=3, help="Ray retries of a task whose worker died")
    p.add_argument("--busy-wait", type=float, default=120.0,
                   help="seconds a retry waits for a dying attempt to release the part's lock")
    p.add_argument("--address", help="Ray cluster address (default: the job's cluster under `ray job "
                   "submit`, else a local Ray on this machine)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--longtail", help="path of the longtail binary (default: pip's, then PATH)")
    p.add_argument("score_args", nargs="*", help="after --: more `longtail score` flags (--precision int8 ...)")
    args = p.parse_args()

    import ray  # imported late: --help works without Ray installed

    binary = find_longtail(args.longtail)
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = Path(args.output).resolve() if args.output else out_dir / "scores.jsonl"
    input_spec = args.input if args.input.startswith("@") or any(c in args.input for c in "*?[") \
        else str(Path(args.input).resolve())
    checkpoint = str(Path(args.checkpoint).resolve())

    if args.address:
        ray.init(address=args.address)
    elif os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`: the job's cluster
        ray.init()
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    shards = args.shards or 2 * max(1, cpus // args.threads)
    extra = ["--threads", str(args.threads), *args.score_args]

    task = ray.remote(num_cpus=args.threads, max_retries=args.max_retries)(run_shard)
    started = time.time()
    print(f"ray_score: {shards} shards of {args.input} on {cpus} CPUs, {args.threads} per task; "
          f"binary {binary}", flush=True)
    results = ray.get([
        task.remote(binary, k, shards, checkpoint, input_spec, str(out_dir), extra, args.busy_wait)
        for k in range(shards)
    ])
    scored_s = time.time() - started
    merge = subprocess.run([binary, "score", "--merge", str(out_dir), "--output", str(merged),
                            "--overwrite"], capture_output=True, text=True)
    if merge.returncode != 0:
        sys.exit(f"ray_score: merge failed: {merge.stderr.strip()}")
    wall = time.time() - started

    starts = [json.loads(line) for line in (out_dir / "_attempts.jsonl").read_text().splitlines()]
    attempts = sum(1 for a in starts if a["event"] == "start")
    rows = sum(r["rows"] for r in results)
    read = sum(r["bytes_read"] for r in results)
    footers = sum(r["footer_bytes"] for r in results)
    input_bytes = results[0]["input_bytes"] if results else 0
    summary = {
        "shards": shards, "rows": rows, "seconds": round(wall, 2), "scoring_seconds": round(scored_s, 2),
        "rows_per_second": round(rows / max(wall, 1e-9), 1), "attempts": attempts,
        "retries": attempts - shards, "bytes_read": read, "footer_bytes": footers,
        "input_bytes": input_bytes, "output": str(merged),
    }
    (out_dir / "_ray_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"ray_score: {rows} rows in {wall:.1f} s = {summary['rows_per_second']} rows/s over {shards} "
          f"shards; {attempts} attempts, {summary['retries']} retries; input read "
          f"{read} of {input_bytes} bytes ({read / max(input_bytes, 1):.3f}x) plus {footers} bytes "
          f"of parquet footers; merged into {merged}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
