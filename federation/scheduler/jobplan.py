"""Turn a job's reconciled work into a concrete plan against a snapshot. Pure.

Used by the leader's scheduling loop (which commits the result) and by ``POST
/v1/jobs/plan`` (which only shows it).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from federation.model.fit import CHECK_VERSION
from federation.scheduler.adapters import task_groups
from federation.scheduler.feasibility import Usage
from federation.scheduler.fragmentation import WorkloadProfile
from federation.scheduler.planner import plan_group
from federation.scheduler.ranking import Affinity
from federation.scheduler.reconcile import GroupWork, JobWork
from federation.scheduler.snapshot import Snapshot, allocation_resources, new_allocation
from federation.scheduler.types import Constraint, Eviction

AVOID_FAILED_NODE = -100  # affinity weight: the strongest dislike ranking knows
MAX_ALLOCATIONS_PER_ENTRY = 2_000


@dataclass
class JobPlan:
    job_id: str
    job_version: int
    allocations: list[dict[str, Any]] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    unplaced: dict[str, dict[str, Any]] = field(default_factory=dict)
    exhausted: dict[str, list[int]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)  # the input overlay plus this plan

    def command(self) -> dict[str, Any]:
        return {
            "type": "plan.apply", "check_version": CHECK_VERSION,
            "job_id": self.job_id, "job_version": self.job_version,
            "allocations": self.allocations, "stops": self.stops,
            "evictions": [e.allocation_id for e in self.evictions],
            "unplaced": self.unplaced, "exhausted": self.exhausted,
        }

    def commands(self, gangs: frozenset[str] = frozenset(),
                 limit: int = MAX_ALLOCATIONS_PER_ENTRY) -> list[dict[str, Any]]:
        """The plan as Raft entries of at most ``limit`` new allocations each (a huge entry
        stalls replication and heartbeats), a gang group always in one entry. Stops and
        evictions go with the first entry, the report of what was not placed with the last."""
        chunks: list[list[dict[str, Any]]] = [[]]
        for group, allocs in _by_group(self.allocations):
            if group in gangs:
                if chunks[-1] and len(chunks[-1]) + len(allocs) > limit:
                    chunks.append([])
                chunks[-1].extend(allocs)
                continue
            for alloc in allocs:
                if len(chunks[-1]) >= limit:
                    chunks.append([])
                chunks[-1].append(alloc)
        whole = self.command()
        out = []
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            shared, compact = _factor_group_fields(chunk)
            out.append({**whole, "allocations": compact, "group_fields": shared,
                        "stops": whole["stops"] if i == 0 else [],
                        "evictions": whole["evictions"] if i == 0 else [],
                        "unplaced": whole["unplaced"] if last else {},
                        "exhausted": whole["exhausted"] if last else {}})
        return out


# Fields every allocation of a group gets from the job spec: sent once per group in a
# plan entry instead of once per allocation (most of an allocation's bytes), and put back
# into each record when the entry is applied. ``resources`` too: the first allocation's go
# with the group and the others' only where they differ (GPU devices), so the allocations
# a plan places share one resources mapping (records are never modified in place), which
# the entry carries, the followers read and the plan applier checks once.
GROUP_FIELDS = ("job_version", "job_type", "task", "ports", "restart", "priority", "health",
                "resources")


def _factor_group_fields(allocations: list[dict[str, Any]]
                         ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    shared: dict[str, dict[str, Any]] = {}
    compact = []
    for alloc in allocations:
        fields = shared.get(alloc["group"])
        if fields is None:
            fields = {k: alloc[k] for k in GROUP_FIELDS if k in alloc}
            shared[alloc["group"]] = fields
        compact.append({k: v for k, v in alloc.items()
                        if k not in fields or not (v is fields[k] or v == fields[k])})
    return shared, compact


def _by_group(allocations: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for alloc in allocations:
        groups.setdefault(alloc["group"], []).append(alloc)
    return list(groups.items())


def plan_work(snapshot: Snapshot, job: Mapping[str, Any], work: JobWork, *, seed: int = 0,
              preempt: bool = True, usage: Usage | None = None,
              profile: WorkloadProfile | None = None, reuse_usage: bool = False) -> JobPlan:
    """Place what ``work`` asks for; groups of one job see each other's placements.

    ``usage`` is what plans made since the snapshot already take (several jobs planned
    against one snapshot); it is not modified (unless ``reuse_usage``: the caller gives it
    up, and it becomes the plan's ``usage``), and the plan's ``usage`` adds this job's.
    ``profile`` is the workload GPU placements are ranked against (see
    :mod:`federation.scheduler.workload`); without one a GPU share takes the tightest fit."""
    result = JobPlan(job["id"], job["version"])
    groups_by_name = {g["name"]: g for g in job["spec"]["groups"]}
    demands = {d.name: d for d in task_groups(job["spec"])}
    owned = reuse_usage or usage is None
    usage = usage if usage is not None else Usage()
    for gw in work.groups:
        result.stops.extend(gw.stop)
        if gw.exhausted:
            result.exhausted[gw.group] = list(gw.exhausted)
        if not gw.place:
            continue
        group = groups_by_name[gw.group]
        unplaced: dict[str, Any] | None = None
        for indexes, affinities in _batches(gw, demands[gw.group].gang):
            demand = demands[gw.group]
            if demand.count != len(indexes):
                demand = replace(demand, count=len(indexes))
            placed, evicted, report, usage = plan_group(
                snapshot.nodes, demand, snapshot.allocations, usage=usage,
                own=snapshot.live_allocations_of(job["id"]),
                seed=_group_seed(seed, job["id"], gw.group), profile=profile,
                preempt=preempt and demand.priority > 0, affinities=affinities,
                usage_owned=owned)
            owned = True  # what plan_group returned is this plan's own
            shared = allocation_resources(group)
            for decision in placed:
                index = indexes[decision.index]
                result.allocations.append(new_allocation(
                    job, group, index, decision.node_id, decision.gpu_devices,
                    gw.previous.get(index), shared))
            result.evictions.extend(evicted)
            if report is not None:
                if unplaced is None:
                    unplaced = report.to_dict()
                else:
                    unplaced["unplaced"] += report.unplaced
        if unplaced is not None:
            result.unplaced[gw.group] = unplaced
    result.usage = usage
    return result


def _group_seed(seed: int, job_id: str, group: str) -> int:
    """The sampling seed of one group: jobs planned with the same seed must still draw
    different nodes, or every job of a pass probes the same few."""
    return seed * 1_000_003 + zlib.crc32(f"{job_id}/{group}".encode())


def _batches(gw: GroupWork, gang: bool) -> list[tuple[list[int], tuple[Affinity, ...]]]:
    """The indexes to plan together. A batch task that failed is placed on its own, with a
    strong preference for any node but the one it failed on (a gang stays one batch)."""
    retried = [] if gang else [
        index for index in gw.place
        if (gw.previous.get(index) or {}).get("client_status") == "failed"]
    rest = [index for index in gw.place if index not in retried]
    batches: list[tuple[list[int], tuple[Affinity, ...]]] = [(rest, ())] if rest else []
    for index in retried:
        avoid = Constraint("node.id", "=", str(gw.previous[index]["node_id"]))
        batches.append(([index], (Affinity(avoid, AVOID_FAILED_NODE),)))
    return batches
