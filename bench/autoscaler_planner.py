"""Planner time for 10,000 pending tasks over 3 providers x 50 instance types.

Run: ``python bench/autoscaler_planner.py``. Prints wall time, decisions and hourly cost
against a per-task estimate (each task at its cheapest max-dimension share of a type; not a
lower bound when demand has several dimensions, see ``autoscaler_openb.py`` for true bounds).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.autoscaler.planner import Constraint, PoolState, Resources, Task, plan_scale_up
from federation.providers.base import InstanceType
from federation.specs.pool import PoolSpec


def catalog(rnd: random.Random, prefix: str) -> tuple[InstanceType, ...]:
    out = []
    for i in range(50):
        cpu = rnd.choice([2, 4, 8, 16, 32, 48, 64])
        mem = cpu * rnd.choice([2048, 4096, 8192])
        gpu = rnd.choice([0] * 8 + [1, 4])
        price = cpu * 0.024 + mem / 1024 * 0.003 + gpu * 0.5
        price *= rnd.uniform(0.85, 1.15)
        out.append(
            InstanceType(
                f"{prefix}-{i}", cpu * 1000, mem, gpu, round(price, 4), round(price * 0.35, 4)
            )
        )
    return tuple(out)


def main() -> None:
    rnd = random.Random(42)
    pools = [
        PoolState(PoolSpec(name=p, provider=p, region=r, max_nodes=5000), catalog(rnd, p))
        for p, r in (("aws", "us-east-1"), ("gcp", "us-central1"), ("local", None))
    ]
    demand: list[Task] = []
    groups = 0
    while sum(t.count for t in demand) < 10_000:
        cons: tuple[Constraint, ...] = ()
        if rnd.random() < 0.2:
            cons = (Constraint("provider", "=", rnd.choice(["aws", "gcp"])),)
        res = Resources(
            rnd.choice([250, 500, 1000, 2000, 4000]),
            rnd.choice([256, 512, 1024, 4096, 8192]),
            1 if rnd.random() < 0.03 else 0,
        )
        demand.append(Task(f"g{groups}", res, cons, count=rnd.randint(1, 80)))
        groups += 1
    total = sum(t.count for t in demand)
    start = time.perf_counter()
    result = plan_scale_up(demand, pools)
    elapsed = time.perf_counter() - start
    offers = [t for p in pools for t in p.catalog]
    lower = 0.0
    for t in demand:
        shares = []
        for o in offers:
            r = t.resources
            if r.gpu and not o.gpu:
                continue
            s = max(
                r.cpu_milli / o.cpu_milli,
                r.memory_mib / o.memory_mib,
                r.gpu / o.gpu if o.gpu else 0,
            )
            shares.append(o.price_per_hour * s)
        lower += min(shares) * t.count
    print(f"tasks={total} groups={len(demand)} offers={len(offers)}")
    print(f"planner_seconds={elapsed:.3f}")
    print(f"decisions={len(result.scale_up)} instances={sum(d.count for d in result.scale_up)}")
    print(
        f"hourly_cost={result.hourly_cost:.2f} per_task_estimate={lower:.2f} "
        f"ratio={result.hourly_cost / lower:.3f} unplaceable={len(result.unplaceable)}"
    )


if __name__ == "__main__":
    main()
