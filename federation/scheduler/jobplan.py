"""Turn a job's reconciled work into a concrete plan against a snapshot. Pure.

Used by the leader's scheduling loop (which commits the result) and by ``POST
/v1/jobs/plan`` (which only shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from federation.scheduler.adapters import task_groups
from federation.scheduler.feasibility import Usage
from federation.scheduler.planner import plan_group
from federation.scheduler.reconcile import JobWork
from federation.scheduler.snapshot import Snapshot, new_allocation
from federation.scheduler.types import Eviction


@dataclass
class JobPlan:
    job_id: str
    job_version: int
    allocations: list[dict[str, Any]] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    unplaced: dict[str, dict[str, Any]] = field(default_factory=dict)
    exhausted: dict[str, list[int]] = field(default_factory=dict)

    def command(self) -> dict[str, Any]:
        return {
            "type": "plan.apply", "job_id": self.job_id, "job_version": self.job_version,
            "allocations": self.allocations, "stops": self.stops,
            "evictions": [e.allocation_id for e in self.evictions],
            "unplaced": self.unplaced, "exhausted": self.exhausted,
        }


def plan_work(snapshot: Snapshot, job: Mapping[str, Any], work: JobWork, *, seed: int = 0,
              preempt: bool = True) -> JobPlan:
    """Place what ``work`` asks for; groups of one job see each other's placements."""
    result = JobPlan(job["id"], job["version"])
    groups_by_name = {g["name"]: g for g in job["spec"]["groups"]}
    demands = {d.name: d for d in task_groups(job["spec"])}
    usage = Usage()
    for i, gw in enumerate(work.groups):
        result.stops.extend(gw.stop)
        if gw.exhausted:
            result.exhausted[gw.group] = list(gw.exhausted)
        if not gw.place:
            continue
        demand = replace(demands[gw.group], count=len(gw.place))
        placed, evicted, report, usage = plan_group(
            snapshot.nodes, demand, snapshot.allocations, usage=usage, seed=seed + i,
            preempt=preempt and demand.priority > 0)
        group = groups_by_name[gw.group]
        for decision in placed:
            index = gw.place[decision.index]
            result.allocations.append(new_allocation(
                job, group, index, decision.node_id, decision.gpu_devices,
                gw.previous.get(index)))
        result.evictions.extend(evicted)
        if report is not None:
            result.unplaced[gw.group] = report.to_dict()
    return result
