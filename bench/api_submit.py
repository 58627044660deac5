"""Job submissions/s through the HTTP API of a 3-server cluster, 32 concurrent clients.

The cluster and the load generator (2 processes x 16 asyncio clients, httpx) share this
machine. Each mode runs --runs times on a fresh cluster: group commit (default) and one Raft
entry per command (the un-coalesced path). Prints medians, ratio, and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, median, percentile  # noqa: E402


def spec(job_id: str) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "work", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["true"]}}]}


async def _clients(urls: list[str], prefix: str, clients: int, seconds: float) -> tuple[int, int,
                                                                                      list[float]]:
    ok = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        async def one(worker: int) -> None:
            nonlocal ok, failed
            url = urls[worker % len(urls)] + "/v1/jobs"
            i = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                r = await http.post(url, json=spec(f"{prefix}-{worker}-{i}"))
                latencies.append(time.perf_counter() - started)
                if r.status_code == 201:
                    ok += 1
                else:
                    failed += 1
                i += 1
        await asyncio.gather(*(one(w) for w in range(clients)))
    return ok, failed, latencies


def _load(urls: list[str], prefix: str, clients: int, seconds: float, out: mp.Queue) -> None:
    out.put(asyncio.run(_clients(urls, prefix, clients, seconds)))


def one_run(extra_args: list[str], seconds: float, spread: bool) -> tuple[float, list[float], int]:
    c = cluster(extra_args).start()
    try:
        leader = c.wait_leader()
        urls = c.urls if spread else [leader.url]
        out: mp.Queue = mp.Queue()
        procs = [mp.Process(target=_load, args=(urls, f"p{p}", 16, seconds, out))
                 for p in range(2)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 60) for _ in procs]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join(10)
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        latencies = [x for r in results for x in r[2]]
        return ok / elapsed, latencies, failed
    finally:
        c.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--spread", action="store_true",
                        help="spread clients over all servers instead of the leader")
    args = parser.parse_args()
    modes = {"group commit": [], "one entry per command": [
        "--raft-max-batch", "1", "--raft-max-inflight", "1000000"]}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    lat: dict[str, list[float]] = {m: [] for m in modes}
    failures = dict.fromkeys(modes, 0)
    for _ in range(args.runs):
        for mode, extra in modes.items():
            rate, latencies, failed = one_run(extra, args.seconds, args.spread)
            rates[mode].append(rate)
            lat[mode].extend(latencies)
            failures[mode] += failed
    print(f"machine: {machine()}")
    target = "all servers" if args.spread else "the leader"
    print(f"job submissions/s over HTTP, 3 servers, 32 clients to {target}, "
          f"median of {args.runs} x {args.seconds:g}s:")
    for mode in modes:
        p50, p99 = percentile(lat[mode], 50) * 1000, percentile(lat[mode], 99) * 1000
        print(f"  {mode:24s} {median(rates[mode]):7.0f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f}"
              f" ms  non-2xx {failures[mode]}  "
              "runs: " + ", ".join(f"{r:.0f}" for r in rates[mode]))
    ratio = median(rates["group commit"]) / median(rates["one entry per command"])
    print(f"  ratio group/un-coalesced: {ratio:.2f}x")


if __name__ == "__main__":
    main()
