#!/usr/bin/env python3
"""`make test-scale`: scripts/ray_score.py on a local two-CPU Ray cluster, checked against one
`longtail score` process.

A directory dump of 8 files (JSONL, gzip JSONL, CSV, parquet with several row groups) made from
the Office catalogue is scored once by one process, then twice by Ray in six shards: once
undisturbed, once with the Ray worker of a running shard killed (SIGKILL) mid-shard. Checked:
  * both Ray jobs finish and their merged outputs equal the single-process output byte for byte
    (rejects too);
  * each data byte was read by one shard (bytes read summed over shards = the single run's);
  * the killed shard was retried (a second attempt, `retries` >= 1) and resumed, not restarted;
  * the killed worker's `longtail` child died with it (parent-death signal): no orphan kept
    writing, so no part was ever written by two attempts at once (the part's lock refuses a
    second live writer with status 75, tests/score_cli.rs).

Usage: test_ray_score.py LONGTAIL CHECKPOINT ITEMS_JSONL WORKDIR [--rows N] [--row-group N]
       [--score-args "FLAGS"]   (the acceptance run: --rows 200000, docs/scale-out.md)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARDS = 6


def check(cond: bool, msg: str) -> None:
    if not cond:
        sys.exit(f"test-scale: FAILED: {msg}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (it writes nothing).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def events(out: Path) -> list[dict]:
    path = out / "_attempts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ray_job(binary: str, ckpt: str, dump: Path, out: Path, score_args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "ray_score.py"), "--checkpoint", ckpt, "--input", str(dump),
         "--out-dir", str(out), "--shards", str(SHARDS), "--num-cpus", "2", "--longtail", binary,
         "--max-retries", "3", "--", *score_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen, what: str) -> str:
    out, _ = job.communicate(timeout=3600)
    summary = [line for line in out.splitlines() if line.startswith("ray_score:")]
    print("\n".join(f"  [{what}] {line}" for line in summary), flush=True)
    check(job.returncode == 0, f"{what}: ray_score exited {job.returncode}:\n{out[-3000:]}")
    return out


def kill_a_running_shard(out: Path, deadline: float) -> tuple[int, int, int]:
    """Waits for a shard that has durable rows but is not finished, kills its Ray worker;
    returns (shard, worker pid, child pid)."""
    while time.time() < deadline:
        for e in events(out):
            if e["event"] != "spawn":
                continue
            progress = out / f"part-{e['shard']:05d}.jsonl.progress.json"
            try:
                p = json.loads(progress.read_text())
            except (OSError, ValueError):
                continue
            if p["rows_consumed"] > 0 and not p["complete"] and alive(e["child_pid"]):
                os.kill(e["worker_pid"], signal.SIGKILL)
                return e["shard"], e["worker_pid"], e["child_pid"]
        time.sleep(0.05)
    sys.exit("test-scale: FAILED: no shard was caught mid-way to kill its worker")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("longtail")
    p.add_argument("checkpoint")
    p.add_argument("items")
    p.add_argument("workdir")
    p.add_argument("--rows", type=int, default=6000)
    p.add_argument("--row-group", type=int, default=256)
    p.add_argument("--score-args", default="--chunk-rows 64 --max-len 48 --precision int8")
    args = p.parse_args()
    binary, ckpt, score_args = args.longtail, args.checkpoint, shlex.split(args.score_args)
    work_dir = Path(args.workdir)
    subprocess.run(["rm", "-rf", str(work_dir)], check=True)
    dump = work_dir / "dump"
    subprocess.run([sys.executable, str(HERE / "make_score_dump.py"), "--items", args.items,
                    "--rows", str(args.rows), "--files", "8", "--row-group", str(args.row_group),
                    "--out", str(dump)], check=True)

    ref = work_dir / "single" / "scores.jsonl"
    started = time.time()
    single = subprocess.run([binary, "score", "--checkpoint", ckpt, "--input", str(dump),
                             "--output", str(ref), *score_args], capture_output=True, text=True)
    check(single.returncode == 0, f"single-process score failed: {single.stderr[-2000:]}")
    ref_progress = json.loads(Path(f"{ref}.progress.json").read_text())
    print(f"  [single] {ref_progress['rows_consumed']} rows in {time.time() - started:.1f} s, read "
          f"{ref_progress['bytes_read']} of {ref_progress['input_len']} bytes", flush=True)

    def same_as_single(out: Path, what: str) -> dict:
        merged = out / "scores.jsonl"
        check(merged.read_bytes() == ref.read_bytes(), f"{what}: merged output differs from the single run")
        check(Path(f"{merged}.rejects.jsonl").read_bytes() == Path(f"{ref}.rejects.jsonl").read_bytes(),
              f"{what}: merged rejects differ")
        summary = json.loads((out / "_ray_summary.json").read_text())
        check(summary["rows"] == ref_progress["rows_consumed"], f"{what}: rows {summary['rows']}")
        return summary

    # Undisturbed: each data byte read by one shard.
    calm = work_dir / "ray"
    finish(ray_job(binary, ckpt, dump, calm, score_args), "ray")
    s = same_as_single(calm, "ray")
    check(s["retries"] == 0, f"ray: {s['retries']} retries without a fault")
    check(s["bytes_read"] == ref_progress["bytes_read"],
          f"ray: shards read {s['bytes_read']} bytes, the single run {ref_progress['bytes_read']}")

    # A worker killed mid-shard.
    killed_dir = work_dir / "ray-kill"
    job = ray_job(binary, ckpt, dump, killed_dir, score_args)
    shard, worker, child = kill_a_running_shard(killed_dir, time.time() + 600)
    print(f"  [ray-kill] killed the Ray worker {worker} of shard {shard} (its longtail child {child})",
          flush=True)
    gone_by = time.time() + 10
    while alive(child) and time.time() < gone_by:
        time.sleep(0.05)
    check(not alive(child), f"the child {child} outlived its killed worker (no parent-death signal)")
    finish(job, "ray-kill")
    s = same_as_single(killed_dir, "ray-kill")
    starts = [e for e in events(killed_dir) if e["event"] == "start" and e["shard"] == shard]
    check(len(starts) >= 2 and s["retries"] >= 1, f"shard {shard} was not retried: {starts}")
    part = json.loads((killed_dir / f"part-{shard:05d}.jsonl.progress.json").read_text())
    check(part["complete"], f"shard {shard} incomplete")
    logs = [p.read_text(errors="replace") for p in (killed_dir / "_logs").glob(f"part-{shard:05d}.*.log")]
    check(any("resumed after" in log for log in logs), f"shard {shard}'s retry did not resume")
    print(f"test-scale: ok: 2 Ray jobs of {SHARDS} shards (one with a worker killed, "
          f"{s['retries']} retry) merged byte-identical to one process; each data byte read once",
          flush=True)


if __name__ == "__main__":
    main()
