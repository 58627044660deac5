"""Pure-planning throughput of the scheduler, and what candidate sampling costs in quality.

Part 1: many heterogeneous nodes (default 10,000) and many task placements (default 100,000)
in jobs of 10-200 instances: services and batch, 20% of groups constrained, 10% spread across
zones. Prints placements/s of ``plan_group`` with sampling (the default) and, on a smaller
slice, without.

Part 2: quality of sampling: the same workload on a smaller cluster planned with and without
sampling; prints nodes used (fewer is tighter packing) and instances left unplaced.

    python bench/scheduler_throughput.py [--nodes 10000] [--placements 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench.workload import make_groups, make_nodes  # noqa: E402
from federation.scheduler.feasibility import Usage  # noqa: E402
from federation.scheduler.planner import plan_group  # noqa: E402


def run(nodes, groups, *, sampling: bool, seed: int) -> tuple[int, int, float, set[str]]:
    usage = Usage()
    placed = unplaced = 0
    used_nodes: set[str] = set()
    start = time.perf_counter()
    for i, g in enumerate(groups):
        placements, _, report, usage = plan_group(
            nodes, g, usage=usage, seed=seed + i, sampling=sampling
        )
        placed += len(placements)
        used_nodes.update(p.node_id for p in placements)
        if report is not None:
            unplaced += report.unplaced
    return placed, unplaced, time.perf_counter() - start, used_nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--placements", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    nodes = make_nodes(opts.nodes, rng)
    groups = make_groups(opts.placements, rng)

    placed, unplaced, elapsed, _ = run(nodes, groups, sampling=True, seed=opts.seed)
    print(f"throughput, {opts.nodes} nodes, {opts.placements} placements in {len(groups)} groups")
    print(
        f"  sampled : {placed} placed, {unplaced} unplaced, {elapsed:.2f} s, "
        f"{placed / elapsed:,.0f} placements/s"
    )
    few = groups[: max(1, len(groups) // 50)]
    placed_f, _, elapsed_f, _ = run(nodes, few, sampling=False, seed=opts.seed)
    print(
        f"  full scan (first {len(few)} groups): {placed_f} placed, {elapsed_f:.2f} s, "
        f"{placed_f / elapsed_f:,.0f} placements/s"
    )

    q_rng = random.Random(opts.seed + 1)
    q_nodes = make_nodes(500, q_rng)
    q_groups = make_groups(4_000, q_rng)
    print("quality of sampling, 500 nodes, 4,000 placements (nodes used: fewer is tighter)")
    for sampling in (False, True):
        placed, unplaced, elapsed, used = run(q_nodes, q_groups, sampling=sampling, seed=opts.seed)
        cpu_used = sum(n.capacity.cpu_milli for n in q_nodes if n.id in used)
        print(
            f"  {'sampled ' if sampling else 'full    '}: {placed} placed, {unplaced} unplaced, "
            f"{len(used)} nodes used ({cpu_used / 1000:.0f} cores), {elapsed:.2f} s"
        )


if __name__ == "__main__":
    main()
