"""Placements committed through a 3-server cluster: time from submitting a job of --tasks
instances to all of them placed (allocations visible on a follower), and the rate.

Nodes are registered through the API (heterogeneous sizes, 3 racks, 2 providers). The
scheduler runs on the leader, in the same process as its API and Raft node; the whole
cluster and this load generator share the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, median  # noqa: E402


def one_run(nodes: int, tasks: int) -> float:
    c = cluster(["--log-level", "warning", "--heartbeat-ttl", "600"]).start()
    try:
        leader = c.wait_leader()
        follower = next(s for s in c.servers if s is not leader)
        with httpx.Client(timeout=10) as http:
            for i in range(nodes):
                http.post(leader.url + "/v1/nodes", json={
                    "name": f"node-{i}", "rack": f"r{i % 3}",
                    "provider": "onprem" if i % 2 else "aws",
                    "capacity": {"cpu_milli": 4000 * (1 + i % 4), "memory_mib": 8192}})
            # A group holds at most 10,000 instances: larger runs use several groups.
            spec = {"id": "big", "type": "batch", "groups": [{
                "name": f"work-{g}", "count": min(10_000, tasks - g * 10_000),
                "resources": {"cpu": 100, "memory": 64}, "task": {"command": ["true"]}}
                for g in range((tasks + 9_999) // 10_000)]}
            started = time.perf_counter()
            http.post(leader.url + "/v1/jobs", json=spec).raise_for_status()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                # The job's allocation counts: cheap to read, unlike the list itself.
                counts = http.get(follower.url + "/v1/jobs/big").json()["allocations"]
                if sum(counts.values()) >= tasks:
                    return time.perf_counter() - started
                time.sleep(0.01)
            raise RuntimeError(f"not all {tasks} placements visible within 300 s")
    finally:
        c.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    times = [one_run(args.nodes, args.tasks) for _ in range(args.runs)]
    print(f"machine: {machine()}")
    print(f"submit a {args.tasks}-task job on {args.nodes} nodes -> all placed and visible on "
          f"a follower: median {median(times):.2f} s ({args.tasks / median(times):.0f} "
          f"placements/s); runs: " + ", ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
