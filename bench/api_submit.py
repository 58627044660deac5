"""Job submissions/s through the HTTP API of a 3-server cluster, 32 concurrent clients.

The cluster and the load generator share this machine. The load generator is wrk (2 threads,
32 connections, a Lua script posting a new job per request) when it is installed (`apt-get
install wrk`), else 2 processes x 16 asyncio httpx clients, which cost more CPU per request
and so leave less of the 2 cores to the servers. Each mode runs --runs times on a fresh
cluster: group commit (default), group commit without fsync, and one Raft entry per command
(the un-coalesced path).
The servers fsync their journals (the default) except in the "no fsync" mode.
Prints medians, their ratios, and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import shutil
import subprocess
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


WRK_SCRIPT = Path(__file__).with_name("post_job.lua")


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_run(url: str, seconds: float) -> tuple[float, list[float], int]:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds:g}s", "--latency", "-s", str(WRK_SCRIPT), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = _wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1)) / 1000
    p99 = _wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1)) / 1000
    failed = int(non2xx.group(1)) if non2xx else 0
    return rate * (1 - failed / max(1, rate * seconds)), [p50, p99], failed


def one_run(
    extra_args: list[str], seconds: float, spread: bool, use_wrk: bool
) -> tuple[float, list[float], int]:
    c = cluster(extra_args).start()
    try:
        leader = c.wait_leader()
        urls = c.urls if spread else [leader.url]
        if use_wrk:
            return wrk_run(urls[0], seconds)
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
    parser.add_argument(
        "--spread",
        action="store_true",
        help="spread clients over all servers instead of the leader (httpx)",
    )
    parser.add_argument(
        "--loader", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx"
    )
    args = parser.parse_args()
    use_wrk = args.loader == "wrk" and not args.spread
    modes = {"group commit": [], "group commit, no fsync": ["--no-raft-fsync"],
             "one entry per command": [
                 "--raft-max-batch", "1", "--raft-max-inflight", "1000000"]}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    lat: dict[str, list[float]] = {m: [] for m in modes}
    failures = dict.fromkeys(modes, 0)
    for _ in range(args.runs):
        for mode, extra in modes.items():
            rate, latencies, failed = one_run(extra, args.seconds, args.spread, use_wrk)
            rates[mode].append(rate)
            lat[mode].extend(latencies)
            failures[mode] += failed
    print(f"machine: {machine()}")
    target = "all servers" if args.spread else "the leader"
    loader = "wrk" if use_wrk else "httpx"
    print(
        f"job submissions/s over HTTP, 3 servers, 32 clients ({loader}) to {target}, "
        f"median of {args.runs} x {args.seconds:g}s (latency: median of per-run figures)"
        if use_wrk
        else f"job submissions/s over HTTP, 3 servers, 32 clients ({loader}) to "
        f"{target}, median of {args.runs} x {args.seconds:g}s:"
    )
    for mode in modes:
        if use_wrk:
            p50 = median(lat[mode][0::2]) * 1000
            p99 = median(lat[mode][1::2]) * 1000
        else:
            p50, p99 = percentile(lat[mode], 50) * 1000, percentile(lat[mode], 99) * 1000
        print(f"  {mode:24s} {median(rates[mode]):7.0f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f}"
              f" ms  non-2xx {failures[mode]}  "
              "runs: " + ", ".join(f"{r:.0f}" for r in rates[mode]))
    ratio = median(rates["group commit"]) / median(rates["one entry per command"])
    print(f"  ratio group/un-coalesced: {ratio:.2f}x")
    cost = median(rates["group commit"]) / median(rates["group commit, no fsync"])
    print(f"  ratio fsync/no fsync (group commit): {cost:.2f}x")


if __name__ == "__main__":
    main()
