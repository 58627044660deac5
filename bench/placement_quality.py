"""Placement quality and speed on the Alibaba openb GPU trace, as the FGD paper measures it.

Runs ``federation simulate``'s core (the production planner, ``plan_work`` over a snapshot)
for every policy over seeds 42-51 with ``--inflation 1.3 --shuffle`` on the 1,213 GPU nodes
and prints unallocated GPUs at 100% arrived (median over seeds) beside the paper's table,
ratios to our own BestFit, and run times (wall and CPU).

    python bench/placement_quality.py [--trace DIR] [--seeds 42-51] [--workers 2]
        [--policies default,bestfit[,default-plain]]

``default-plain`` is an ablation: the default ranking with the workload profile weighted by
plain task counts, as the paper weights it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from federation import simulation as sim  # noqa: E402
from federation.scheduler.fragmentation import build_profile  # noqa: E402

PAPER = {"bestfit": 7.09, "fgd (paper)": 4.77}
DEFAULT_TRACE = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "traces", "alibaba-openb"
)


def _load(trace: str) -> tuple[list[sim.Machine], list[sim.SimTask]]:
    with open(os.path.join(trace, "openb_node_list_gpu_node.csv")) as fh:
        machines = sim.parse_machines(fh.read())
    with open(os.path.join(trace, "tasks.csv")) as fh:
        tasks = sim.parse_tasks(fh.read())
    return machines, tasks


def _one(args: tuple[str, str, int, float]) -> tuple[str, int, float, float, int, float]:
    trace, policy, seed, inflation = args
    machines, tasks = _load(trace)
    profile = None
    run_policy = policy
    if policy == "default-plain":
        # Ablation: the same ranking with the profile weighted by plain task counts.
        profile = build_profile((t.shape for t in tasks), gpu_weight_exponent=0.0)
        run_policy = "default"
    result = sim.run(
        machines,
        tasks,
        policy=run_policy,
        seed=seed,
        inflation=inflation,
        shuffle=True,
        profile=profile,
    )
    return (
        policy,
        seed,
        float(result.unallocated_gpu_pct_at_100 or 0.0),
        result.elapsed_s,
        result.offered,
        result.cpu_s,
    )


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=os.environ.get("OPENB_TRACE", DEFAULT_TRACE))
    parser.add_argument("--seeds", default="42-51")
    parser.add_argument("--inflation", type=float, default=1.3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policies", default=",".join(sim.POLICIES))
    opts = parser.parse_args()
    seeds = _seeds(opts.seeds)
    policies = opts.policies.split(",")
    jobs = [(opts.trace, p, s, opts.inflation) for p in policies for s in seeds]

    start = time.perf_counter()
    if opts.workers > 1:
        with ProcessPoolExecutor(opts.workers) as pool:
            results = list(pool.map(_one, jobs))
    else:
        results = [_one(j) for j in jobs]
    wall = time.perf_counter() - start

    by_policy: dict[str, list[tuple[int, float, float, int, float]]] = {p: [] for p in policies}
    for policy, seed, unalloc, elapsed, offered, cpu in results:
        by_policy[policy].append((seed, unalloc, elapsed, offered, cpu))
    medians = {p: statistics.median(r[1] for r in rows) for p, rows in by_policy.items()}
    base = medians.get("bestfit")
    print(f"openb GPU nodes, inflation {opts.inflation}, shuffled, seeds {seeds[0]}..{seeds[-1]}")
    print(
        f"{'policy':<10} {'median %':>9} {'min':>6} {'max':>6} {'GPUs':>6} {'vs bestfit':>10} "
        f"{'paper %':>8} {'run s (median)':>15} {'CPU s (max)':>12} {'pods':>6}"
    )
    for p in policies:
        rows = by_policy[p]
        vals = [r[1] for r in rows]
        ratio = f"{medians[p] / base:.3f}" if base else "-"
        paper = PAPER.get(p, PAPER["fgd (paper)"] if p == "default" else None)
        paper_s = f"{paper:.2f}" if paper is not None else "-"
        print(
            f"{p:<10} {medians[p]:>9.3f} {min(vals):>6.2f} {max(vals):>6.2f} "
            f"{medians[p] * 62.12:>6.0f} {ratio:>10} {paper_s:>8} "
            f"{statistics.median(r[2] for r in rows):>15.3f} "
            f"{max(r[4] for r in rows):>12.3f} "
            f"{statistics.median(r[3] for r in rows):>6.0f}"
        )
    print("(paper column for 'default' is the paper's FGD)")
    print(f"sweep wall time: {wall:.2f} s with {opts.workers} worker(s), {len(jobs)} runs")
    for p in policies:
        print(p, "per seed:", " ".join(f"{r[0]}:{r[1]:.2f}" for r in sorted(by_policy[p])))


if __name__ == "__main__":
    main()
