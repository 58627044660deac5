"""Placements committed through a 3-server cluster: time from submitting work to all of it
placed (allocations visible on a follower), and the rate.

Two workloads:

- ``uniform`` (default): one batch job of ``--tasks`` identical instances on ``--nodes``
  nodes of four sizes, three racks, two providers;
- ``mix``: the heterogeneous workload of ``scheduler_throughput.py`` (``bench/workload.py``):
  ``--nodes`` nodes of five shapes over four zones and ``--tasks`` placements in one-group
  jobs of 10-200 instances, services and batch, 20% constrained, 10% spread across zones,
  submitted by 8 concurrent clients. The clock starts at the first submission.

Nodes are registered through the API beforehand (no agents: nothing runs). The scheduler runs
on the leader, in the same process as its API and Raft node; the whole cluster and this load
generator share the machine.

    python bench/scheduler_committed.py [--workload uniform|mix] [--nodes N] [--tasks N]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, median, sampled  # noqa: E402
from bench.workload import job_spec, make_groups, make_nodes, node_registration  # noqa: E402

CLIENTS = 8
_ALLOCATIONS = re.compile(r'^federation_state_objects\{kind="allocations"\} (\S+)$', re.M)


def uniform_work(nodes: int, tasks: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    registrations = [{
        "name": f"node-{i}", "rack": f"r{i % 3}", "provider": "onprem" if i % 2 else "aws",
        "capacity": {"cpu_milli": 4000 * (1 + i % 4), "memory_mib": 8192}}
        for i in range(nodes)]
    # A group holds at most 10,000 instances: larger runs use several groups.
    job = {"id": "big", "type": "batch", "groups": [{
        "name": f"work-{g}", "count": min(10_000, tasks - g * 10_000),
        "resources": {"cpu": 100, "memory": 64}, "task": {"command": ["true"]}}
        for g in range((tasks + 9_999) // 10_000)]}
    return registrations, [job]


def mix_work(nodes: int, tasks: int, seed: int) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    rng = random.Random(seed)
    registrations = [node_registration(n) for n in make_nodes(nodes, rng)]
    return registrations, [job_spec(g) for g in make_groups(tasks, rng)]


def placed(http: httpx.Client, url: str) -> int:
    found = _ALLOCATIONS.search(http.get(url + "/metrics").text)
    return int(float(found.group(1))) if found else 0


def cpu_seconds(pids: list[int]) -> float:
    """Processor time (user + system) the processes have used so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def one_run(registrations: list[dict[str, Any]], jobs: list[dict[str, Any]],
            tasks: int, cpu: list[float], profile: str | None = None) -> float:
    """Seconds from the first submission until every placement is visible on a follower;
    appends the processor seconds the three servers used meanwhile to ``cpu``."""
    level = os.environ.get("BENCH_LOG_LEVEL", "warning")
    c = cluster(["--log-level", level, "--heartbeat-ttl", "600"]).start()
    try:
        leader = c.wait_leader(60)  # three servers starting on a loaded machine
        follower = next(s for s in c.servers if s is not leader)
        limits = httpx.Limits(max_connections=CLIENTS)
        with httpx.Client(timeout=30, limits=limits) as http, \
                ThreadPoolExecutor(CLIENTS) as pool:
            def post(path: str, body: dict[str, Any]) -> None:
                # A 503 (an election under load) is answered again: registering the same
                # node or job spec twice changes nothing.
                for _ in range(20):
                    answer = http.post(leader.url + path, json=body)
                    if answer.status_code != 503:
                        break
                    time.sleep(0.5)
                answer.raise_for_status()

            list(pool.map(lambda body: post("/v1/nodes", body), registrations))
            pids = [s.proc.pid for s in c.servers if s.proc is not None]
            cpu_before = cpu_seconds(pids)
            with sampled(pids, profile):
                started = time.perf_counter()
                list(pool.map(lambda body: post("/v1/jobs", body), jobs))
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    if placed(http, follower.url) >= tasks:
                        elapsed = time.perf_counter() - started
                        cpu.append(cpu_seconds(pids) - cpu_before)
                        return elapsed
                    time.sleep(0.02)
            raise RuntimeError(f"not all {tasks} placements visible within 600 s")
    finally:
        c.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["uniform", "mix"], default="uniform")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="DIR",
                        help="sample the servers with py-spy during the submission (the "
                             "figures then include its overhead)")
    args = parser.parse_args()
    if args.workload == "mix":
        registrations, jobs = mix_work(args.nodes, args.tasks, args.seed)
    else:
        registrations, jobs = uniform_work(args.nodes, args.tasks)
    cpu: list[float] = []
    times = [one_run(registrations, jobs, args.tasks, cpu, args.profile)
             for _ in range(args.runs)]
    print(f"machine: {machine()}; load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{args.workload}: submit {args.tasks} placements in {len(jobs)} job(s) on "
          f"{args.nodes} nodes -> all placed and visible on a follower: median "
          f"{median(times):.2f} s ({args.tasks / median(times):,.0f} placements/s); runs: "
          + ", ".join(f"{t:.2f}" for t in times))
    # Processor time of the three servers is steadier than wall time on a shared machine.
    print(f"server processor time: median {median(cpu):.2f} s "
          f"({args.tasks / median(cpu):,.0f} placements per CPU-second); runs: "
          + ", ".join(f"{t:.2f}" for t in cpu))


if __name__ == "__main__":
    main()
