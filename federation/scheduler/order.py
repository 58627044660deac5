"""In which order pending jobs are planned: dominant resource fairness across queues. Pure.

Each job with something to place is one item of pending work, its demand the resources of
everything it still has to place. Queues take turns by lowest dominant share divided by
weight (``fairshare.drf_order``); within a queue, higher priority first, then submission
order. A job whose demand would take its queue past the quota is held, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from federation.model import MILLI_PER_GPU, ResourceTotals
from federation.scheduler.fairshare import UNLIMITED, PendingWork, QueueSpec, drf_order
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.reconcile import JobWork
from federation.scheduler.snapshot import Snapshot


def queue_specs(records: Iterable[Mapping[str, Any]]) -> list[QueueSpec]:
    specs = []
    for record in records:
        spec = record["spec"]
        quota = spec.get("quota")
        specs.append(QueueSpec(spec["name"], float(spec.get("weight", 1.0)),
                               None if quota is None else _quota(quota)))
    return specs


def _quota(quota: Mapping[str, Any]) -> ResourceTotals:
    """A queue's quota as a total; a resource it leaves out is not limited."""
    gpu = quota.get("gpu")
    return ResourceTotals(
        UNLIMITED if quota.get("cpu") is None else int(quota["cpu"]),
        UNLIMITED if quota.get("memory") is None else int(quota["memory"]),
        UNLIMITED if gpu is None else int(round(float(gpu) * MILLI_PER_GPU)))


def _totals(spec_resources: Mapping[str, Any]) -> ResourceTotals:
    """Spec resources (``cpu`` millicores, ``memory`` MiB, ``gpu`` devices or a fraction of
    one) as a total."""
    return ResourceTotals(int(spec_resources.get("cpu", 0) or 0),
                          int(spec_resources.get("memory", 0) or 0),
                          int(round(float(spec_resources.get("gpu", 0) or 0) * MILLI_PER_GPU)))


def queue_usage(snapshot: Snapshot, queue_of: Mapping[str, str]) -> dict[str, ResourceTotals]:
    """Resources each queue's live allocations hold."""
    usage: dict[str, ResourceTotals] = {}
    if snapshot.live_totals is not None:
        for job_id, total in snapshot.live_totals.items():
            queue = queue_of.get(job_id, "default")
            usage[queue] = usage.get(queue, ResourceTotals()) + total
        return usage
    for alloc in snapshot.allocations:
        queue = queue_of.get(alloc.job_id, "default")
        usage[queue] = usage.get(queue, ResourceTotals()) + alloc.resources
    return usage


def capacity(snapshot: Snapshot) -> ResourceTotals:
    if isinstance(snapshot.nodes, NodeSet):
        return snapshot.nodes.ready_capacity()  # kept from pass to pass
    total = ResourceTotals()
    for node in snapshot.nodes:
        if node.status == "ready":
            total = total + node.capacity
    return total


def demand(job: Mapping[str, Any], work: JobWork) -> ResourceTotals:
    groups = {g["name"]: g for g in job["spec"]["groups"]}
    total = ResourceTotals()
    for gw in work.groups:
        if gw.place:
            one = _totals(groups[gw.group]["resources"])
            n = len(gw.place)
            total = total + ResourceTotals(one.cpu_milli * n, one.memory_mib * n,
                                           one.gpu_milli * n)
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
        if need.is_zero:
            free.append((job, work))
            continue
        pending.append(PendingWork(job["id"], job["spec"].get("queue", "default"), need,
                                   int(job["spec"].get("priority", 50)),
                                   int(job.get("create_index", 0))))
    ordered, held = drf_order(pending, queue_specs(queue_records),
                              queue_usage(snapshot, queue_of), capacity(snapshot))
    return free + [by_id[item.id] for item in ordered], held
