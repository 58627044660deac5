"""In which order pending jobs are planned: dominant resource fairness across queues. Pure.

Each job with something to place is one item of pending work, its demand the resources of
everything it still has to place. Queues take turns by lowest dominant share divided by
weight (``fairshare.drf_order``); within a queue, higher priority first, then submission
order. A job whose demand would take its queue past the quota is held, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from federation.scheduler.fairshare import UNLIMITED, PendingWork, QueueSpec, drf_order
from federation.scheduler.reconcile import JobWork
from federation.scheduler.snapshot import Snapshot, alloc_resources
from federation.scheduler.types import Resources


def queue_specs(records: Iterable[Mapping[str, Any]]) -> list[QueueSpec]:
    specs = []
    for record in records:
        spec = record["spec"]
        quota = spec.get("quota")
        specs.append(QueueSpec(spec["name"], float(spec.get("weight", 1.0)), None if quota is None
                               else _resources({k: UNLIMITED if quota.get(k) is None
                                                else quota[k]
                                                for k in ("cpu", "memory", "gpu")})))
    return specs


def _resources(spec_resources: Mapping[str, Any]) -> Resources:
    return alloc_resources({"resources": {"cpu_milli": spec_resources.get("cpu", 0),
                                          "memory_mib": spec_resources.get("memory", 0),
                                          "gpu": spec_resources.get("gpu", 0)}})


def queue_usage(snapshot: Snapshot, queue_of: Mapping[str, str]) -> dict[str, Resources]:
    """Resources each queue's live allocations hold."""
    usage: dict[str, Resources] = {}
    if snapshot.live_totals is not None:
        for job_id, total in snapshot.live_totals.items():
            queue = queue_of.get(job_id, "default")
            usage[queue] = usage.get(queue, Resources()) + total
        return usage
    for alloc in snapshot.allocations:
        queue = queue_of.get(alloc.job_id, "default")
        usage[queue] = usage.get(queue, Resources()) + alloc.resources
    return usage


def capacity(snapshot: Snapshot) -> Resources:
    total = Resources()
    for node in snapshot.nodes:
        if node.status == "ready":
            total = total + node.capacity
    return total


def demand(job: Mapping[str, Any], work: JobWork) -> Resources:
    groups = {g["name"]: g for g in job["spec"]["groups"]}
    total = Resources()
    for gw in work.groups:
        for _ in gw.place:
            total = total + _resources(groups[gw.group]["resources"])
    return total


def order_jobs(candidates: Sequence[tuple[Mapping[str, Any], JobWork]],
               queue_records: Iterable[Mapping[str, Any]], snapshot: Snapshot,
               queue_of: Mapping[str, str]
               ) -> tuple[list[tuple[Mapping[str, Any], JobWork]], dict[str, str]]:
    """``(ordered candidates, held job id -> reason)``; jobs with nothing to place keep
    their place at the front (their stops and reports need no capacity)."""
    by_id = {job["id"]: (job, work) for job, work in candidates}
    pending, free = [], []
    for job, work in candidates:
        need = demand(job, work)
        if need == Resources():
            free.append((job, work))
            continue
        pending.append(PendingWork(job["id"], job["spec"].get("queue", "default"), need,
                                   int(job["spec"].get("priority", 50)),
                                   int(job.get("create_index", 0))))
    ordered, held = drf_order(pending, queue_specs(queue_records),
                              queue_usage(snapshot, queue_of), capacity(snapshot))
    return free + [by_id[item.id] for item in ordered], held
