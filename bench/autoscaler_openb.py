"""Hourly cost the autoscaler buys for the Alibaba openb trace, against bounds and a baseline.

Run: ``python bench/autoscaler_openb.py [--snapshots N]``. At N instants evenly spread over
the trace, the pods alive then (created, not yet deleted) are pending demand on an empty AWS
pool (us-east-1). Printed per instant and in total:

* ``planner``: the hourly cost of ``plan_scale_up`` over every instance type;
* ``old LP``: the aggregate LP bound (fractional instances, per-dimension totals);
* ``config LP``: the configuration LP bound (column generation, certified), and for the
  instants ``exact``: the proven lower bound of the integer optimum (an assignment ILP with
  a time limit); ``bound`` is the largest of the valid bounds (see ``capacity_bounds.py``);
* ``best found``: the cheapest feasible purchase any method found (the ILP's incumbent or
  an integer program over the generated patterns): the optimum lies between it and
  ``bound``;
* ``one-type``: what an autoscaler with a single instance type buys (an ASG), with the best
  single type chosen in hindsight, packed by the same planner.

Instance shapes come from the EC2 catalog that moto ships (real ``describe_instance_types``
data); prices from the project's table (``federation/providers/aws/prices.json``) plus
on-demand list prices of the multi-GPU types below. The planner does not share a GPU between
pods, so fractional-GPU pods ask for a whole GPU, in every column alike.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capacity_bounds import (  # noqa: E402
    aggregate_lp_bound,
    configuration_lp_bound,
    exact_optimum,
    shapes_of,
    undominated,
)

from federation.autoscaler.planner import PoolState, Resources, Task, plan_scale_up  # noqa: E402
from federation.providers.aws.catalog import price_table  # noqa: E402
from federation.providers.base import InstanceType  # noqa: E402
from federation.specs.pool import PoolSpec  # noqa: E402

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "alibaba-openb"
# us-east-1 on-demand list prices (USD/h) of multi-GPU types absent from the shipped table.
EXTRA_PRICES = {
    "g4dn.2xlarge": 0.752, "g4dn.4xlarge": 1.204, "g4dn.8xlarge": 2.176,
    "g4dn.12xlarge": 3.912, "g4dn.16xlarge": 4.352, "g4dn.metal": 7.824,
    "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672, "g5.16xlarge": 4.096,
    "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
    "p3.8xlarge": 12.24, "p3.16xlarge": 24.48,
}  # fmt: skip


def catalog() -> tuple[InstanceType, ...]:
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    shapes = json.loads(gzip.decompress(path.read_bytes()))
    prices = {name: p["on_demand"] for name, p in price_table()["us-east-1"].items()}
    prices.update(EXTRA_PRICES)
    out = []
    for name, price in sorted(prices.items()):
        shape = shapes.get(name)
        if shape is None:
            continue
        gpus = sum(int(g.get("Count", 0)) for g in shape.get("GpuInfo", {}).get("Gpus", []))
        out.append(
            InstanceType(
                name,
                int(shape["VCpuInfo"]["DefaultVCpus"]) * 1000,
                int(shape["MemoryInfo"]["SizeInMiB"]),
                gpus,
                price,
            )
        )
    return tuple(out)


def load_pods(trace: Path) -> list[tuple[int, int, int, float, float]]:
    """(cpu_milli, memory_mib, gpus, created, deleted) per pod."""
    pods = []
    with open(trace / "openb_pod_list_default.csv") as fh:
        for row in csv.DictReader(fh):
            gpus = int(row["num_gpu"])
            pods.append(
                (
                    int(row["cpu_milli"]),
                    int(row["memory_mib"]),
                    gpus,
                    float(row["creation_time"] or 0),
                    float(row["deletion_time"] or 0),
                )
            )
    return pods


def demand_at(pods: list[tuple[int, int, int, float, float]], t: float) -> list[Task]:
    shapes = Counter((c, m, g) for c, m, g, born, died in pods if born <= t < died)
    return [
        Task(f"{c}m-{m}Mi-{g}g", Resources(c, m, g), count=n)
        for (c, m, g), n in sorted(shapes.items())
    ]


def per_task_estimate(tasks: list[Task], types: tuple[InstanceType, ...]) -> float:
    """Each pod at its cheapest max-dimension share of a type that holds it. Not a bound:
    a CPU-heavy and a memory-heavy pod can share one instance for less."""
    total = 0.0
    for task in tasks:
        r = task.resources
        best = math.inf
        for t in types:
            if r.gpu > t.gpu or r.cpu_milli > t.cpu_milli or r.memory_mib > t.memory_mib:
                continue
            share = max(
                r.cpu_milli / t.cpu_milli,
                r.memory_mib / t.memory_mib,
                r.gpu / t.gpu if t.gpu else 0.0,
            )
            best = min(best, t.price_per_hour * share)
        total += best * task.count
    return total


def pool(types: tuple[InstanceType, ...], only: str | None = None) -> PoolState:
    spec = PoolSpec(
        name="cloud",
        provider="aws",
        region="us-east-1",
        max_nodes=100_000,
        instance_types=[only] if only else None,
    )
    return PoolState(spec, types)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--trace", default=os.environ.get("OPENB_TRACE", str(TRACE)))
    parser.add_argument(
        "--exact-seconds",
        type=float,
        default=20.0,
        help="time limit of the integer program per instant",
    )
    parser.add_argument(
        "--cg-iterations",
        type=int,
        default=120,
        help="column generation rounds (the bound is valid at any count)",
    )
    opts = parser.parse_args()
    types = catalog()
    kept = undominated(types)
    pods = load_pods(Path(opts.trace))
    end = max(p[4] for p in pods)
    totals = Counter[str]()
    print(
        f"openb pods={len(pods)} instance types={len(types)} ({len(kept)} undominated) "
        f"snapshots={opts.snapshots}"
    )
    print(
        f"{'t (h)':>6} {'pods':>5} {'planner':>9} {'old LP':>9} {'config LP':>9} "
        f"{'exact':>9} {'bound':>9} {'ratio':>6} {'best found':>10} "
        f"{'one-type':>9} {'type':>13} {'plan s':>7} {'bound s':>7}"
    )
    instants = [end * (k + 0.5) / opts.snapshots for k in range(opts.snapshots)]
    for t in [*instants, -1.0]:
        # t = -1: every pod of the trace pending at once (how the scheduler benchmark uses it)
        tasks = (
            demand_at(pods, t)
            if t >= 0
            else demand_at([(c, m, g, 0.0, 1.0) for c, m, g, _, _ in pods], 0.0)
        )
        started = time.perf_counter()
        result = plan_scale_up(tasks, [pool(types)])
        seconds = time.perf_counter() - started
        shapes = shapes_of(tasks)
        started = time.perf_counter()
        old = aggregate_lp_bound(shapes, types)
        config = configuration_lp_bound(
            shapes, kept, max_iterations=opts.cg_iterations, time_limit=3600.0
        )
        bounds = [old, config.bound]
        found = [config.integer]
        exact = "-"
        if t >= 0:
            ilp = exact_optimum(shapes, kept, time_limit=opts.exact_seconds)
            bounds.append(ilp.lower)
            found.append(ilp.upper)
            exact = f"{ilp.lower:9.2f}" + ("" if ilp.optimal else "*")
        bound_seconds = time.perf_counter() - started
        bound = max(bounds)
        best_found = min([result.hourly_cost, *found])
        best_type, best_cost = "-", math.inf
        for itype in types:
            single = plan_scale_up(tasks, [pool(types, itype.name)])
            if not single.unplaceable and single.hourly_cost < best_cost:
                best_type, best_cost = itype.name, single.hourly_cost
        count = sum(task.count for task in tasks)
        if result.unplaceable:
            print(f"  {sum(u.count for u in result.unplaceable)} pods unplaceable at {t:.0f}s")
        when = f"{t / 3600:.1f}" if t >= 0 else "all"
        print(
            f"{when:>6} {count:5d} {result.hourly_cost:9.2f} {old:9.2f} {config.bound:9.2f} "
            f"{exact:>9} {bound:9.2f} {result.hourly_cost / bound:6.3f} {best_found:10.2f} "
            f"{best_cost:9.2f} {best_type:>13} {seconds:7.3f} {bound_seconds:7.1f}"
        )
        if t < 0:
            print(
                f"  config LP: {config.iterations} rounds, {config.columns} patterns, "
                f"master {config.lp:.2f}, converged={config.converged}"
            )
            print(
                f"  all: planner/bound={result.hourly_cost / bound:.3f} "
                f"planner/old LP={result.hourly_cost / old:.3f} "
                f"best found/bound={best_found / bound:.3f} one-type/bound={best_cost / bound:.3f}"
            )
        else:
            totals.update(
                {
                    "planner": result.hourly_cost,
                    "old": old,
                    "bound": bound,
                    "found": best_found,
                    "one": best_cost,
                }
            )
    print("  (* the integer program stopped at its time limit: its proven bound is shown)")
    print(
        f"instants: planner/bound={totals['planner'] / totals['bound']:.3f} "
        f"planner/old LP={totals['planner'] / totals['old']:.3f} "
        f"best found/bound={totals['found'] / totals['bound']:.3f} "
        f"one-type/bound={totals['one'] / totals['bound']:.3f} "
        f"planner saves {(1 - totals['planner'] / totals['one']) * 100:.1f}% vs one type"
    )


if __name__ == "__main__":
    main()
