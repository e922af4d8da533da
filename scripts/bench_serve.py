#!/usr/bin/env python3
"""Load a running `longtail serve` and print latency percentiles and throughput per route.

usage: bench_serve.py --url http://127.0.0.1:8080 --key API_KEY --data runs/office
       [--requests 400] [--concurrency 1 8] [--score-batch 1 32]

Users are drawn from DATA/interactions.csv and listings from DATA/items.jsonl (prepared
rows: `fields` are sent as top-level text fields). Events go to user ids prefixed `bench-`, so
they never touch a real user's history. Prints the CPU model first: compare runs only on the
same machine.
"""
import argparse
import json
import random
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench_cpu import describe


def call(url, key, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "x-api-key": key})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        assert r.status == 200, r.status
    return time.perf_counter() - t


def run(name, url, key, path, bodies, conc):
    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        lat = list(ex.map(lambda b: call(url, key, path, b), bodies))
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"| {name} | {conc} | {len(bodies)} | {len(bodies) / wall:.1f} | {q(0.5):.1f} | {q(0.95):.1f} | {q(0.99):.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--score-batch", type=int, nargs="+", default=[1, 32])
    a = ap.parse_args()
    rng = random.Random(0)
    users = sorted({l.split(",")[0] for l in open(f"{a.data}/interactions.csv").read().splitlines()[1:]})
    items = [json.loads(l) for l in open(f"{a.data}/items.jsonl")]
    listings = [dict(item_id=i["item_id"], **i["fields"]) for i in items]
    print(f"CPU: {describe()}; {len(users)} users, {len(items)} items\n")
    print("| route | concurrency | requests | requests/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for c in a.concurrency:
        bodies = [{"user_id": rng.choice(users), "k": 10} for _ in range(a.requests)]
        run("/v1/recommend", a.url, a.key, "/v1/recommend", bodies, c)
    for b in a.score_batch:
        for c in a.concurrency:
            n = max(20, a.requests // max(1, b // 4))
            bodies = [{"listings": rng.sample(listings, b)} for _ in range(n)]
            run(f"/v1/tail/score ({b} listings)", a.url, a.key, "/v1/tail/score", bodies, c)
    for c in a.concurrency:
        bodies = [{"events": [{"event_id": f"bench-{c}-{i}-{time.time_ns()}", "user_id": f"bench-{i % 50}",
                               "item_id": rng.choice(items)["item_id"], "type": "click"}]}
                  for i in range(a.requests)]
        run("/v1/events (1 event, durable)", a.url, a.key, "/v1/events", bodies, c)


if __name__ == "__main__":
    main()
