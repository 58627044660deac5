"""The scheduler benchmarks' workload: heterogeneous nodes and a mix of services and batch.

Nodes of five shapes (two AWS types, one GCP type, two on-prem rack hosts) over four zones;
groups of 10-200 instances, 20% constrained, 10% spread across zones. The same workload is
planned in memory (``scheduler_throughput.py``) and submitted to a real cluster
(``scheduler_committed.py --workload mix``).
"""

from __future__ import annotations

import random
from typing import Any

from federation.scheduler.nodeset import NodeSet
from federation.scheduler.types import (
    Constraint,
    NodeView,
    Resources,
    Spread,
    TaskGroupDemand,
)

SHAPES = [  # (cpu_milli, memory_mib, instance_type, provider, price)
    (4000, 16384, "m5.xlarge", "aws", 0.192),
    (8000, 32768, "m5.2xlarge", "aws", 0.384),
    (16000, 65536, "n2-standard-16", "gcp", 0.777),
    (32000, 131072, "rack-32c", "onprem", 0.0),
    (64000, 262144, "rack-64c", "onprem", 0.0),
]


def make_nodes(count: int, rng: random.Random) -> NodeSet:
    nodes = []
    for i in range(count):
        cpu, mem, itype, provider, price = rng.choice(SHAPES)
        nodes.append(
            NodeView(
                id=f"node-{i:05d}",
                capacity=Resources(cpu, mem),
                provider=provider,
                pool=f"{provider}-pool",
                region="r1",
                zone=f"z{rng.randrange(4)}",
                rack=f"rack-{rng.randrange(40)}" if provider == "onprem" else "",
                instance_type=itype,
                labels={"disk": rng.choice(["ssd", "hdd"])},
                price_per_hour=price,
            )
        )
    return NodeSet(nodes)


def make_groups(total: int, rng: random.Random) -> list[TaskGroupDemand]:
    groups = []
    placed = 0
    j = 0
    while placed < total:
        count = min(rng.randint(10, 200), total - placed)
        constrained = rng.random() < 0.2
        spread = rng.random() < 0.1
        constraints = (
            (
                rng.choice(
                    [
                        Constraint("provider", "!=", "gcp"),
                        Constraint("labels.disk", "=", "ssd"),
                        Constraint("zone", "in", ("z0", "z1")),
                    ]
                ),
            )
            if constrained
            else ()
        )
        groups.append(
            TaskGroupDemand(
                job_id=f"job-{j}",
                name="main",
                count=count,
                resources=Resources(rng.choice([100, 250, 500, 1000]), rng.choice([128, 256, 512])),
                constraints=constraints,
                spread=Spread("zone") if spread else None,
                job_type=rng.choice(["service", "batch"]),
            )
        )
        placed += count
        j += 1
    return groups


def node_registration(node: NodeView) -> dict[str, Any]:
    """``POST /v1/nodes`` body for a generated node."""
    return {
        "name": node.id, "pool": node.pool, "provider": node.provider, "region": node.region,
        "zone": node.zone, "rack": node.rack, "instance_type": node.instance_type,
        "price_per_hour": node.price_per_hour, "labels": dict(node.labels),
        "capacity": {"cpu_milli": node.capacity.cpu_milli,
                     "memory_mib": node.capacity.memory_mib},
    }


def job_spec(group: TaskGroupDemand) -> dict[str, Any]:
    """A one-group job spec for a generated group (nothing runs it: no agents)."""
    constraints = [
        {"attribute": c.attribute, "operator": c.operator,
         "value": list(c.value) if isinstance(c.value, tuple) else c.value}
        for c in group.constraints
    ]
    body: dict[str, Any] = {
        "name": group.name, "count": group.count,
        "resources": {"cpu": group.resources.cpu_milli, "memory": group.resources.memory_mib},
        "constraints": constraints, "task": {"command": ["true"]},
    }
    if group.spread is not None:
        body["spread"] = group.spread.attribute
    return {"id": group.job_id, "type": group.job_type, "groups": [body]}
