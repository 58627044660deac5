"""The scheduler's view of the replicated state: nodes with what is allocated on them.

Reads a ``StateMachine`` (plain data, no I/O) and builds the immutable inputs of planning.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from federation.ids import new_id
from federation.model import (
    AllocationView,
    NodeView,
    Resources,
    ResourceTotals,
    is_live,
    node_view,
)
from federation.model import resources_of_record as alloc_resources
from federation.scheduler.backoff import next_streak
from federation.scheduler.nodeset import NodeSet

__all__ = ["Resources", "ResourceTotals", "Snapshot", "alloc_resources", "is_live",
           "allocation_resources", "new_allocation", "take"]


@dataclass(frozen=True)
class Snapshot:
    nodes: Sequence[NodeView]  # a NodeSet when taken from the state
    allocations: tuple[AllocationView, ...]
    by_job: Mapping[str, tuple[Mapping[str, Any], ...]]  # job id -> every allocation record
    priorities: Mapping[str, int]
    draining: frozenset[str] = frozenset()
    drain_expired: frozenset[str] = frozenset()  # draining past their deadline
    index: int = -1  # the state index it was taken at
    live_by_job: Mapping[str, tuple[AllocationView, ...]] | None = None
    live_totals: Mapping[str, ResourceTotals] | None = None  # job id -> what its live allocs hold
    now: float | None = None  # the servers' time it was taken at (None: reschedule delays off)

    def live_allocations_of(self, job_id: str) -> tuple[AllocationView, ...]:
        """The job's live allocations (grouped once per snapshot when taken from the state)."""
        if self.live_by_job is not None:
            return self.live_by_job.get(job_id, ())
        return tuple(a for a in self.allocations if a.job_id == job_id)


def expired_drains(machine: Any, now: float) -> frozenset[str]:
    """Draining nodes whose drain deadline has passed at ``now``."""
    return frozenset(
        n["id"] for n in list(machine.nodes.values())
        if n.get("draining") and n.get("drain_deadline") is not None
        and n["drain_deadline"] <= now)


@dataclass
class _JobViews:
    key: tuple[int, int, int] | None  # (epoch, writes, priority) it was built at; None: unsure
    records: tuple[Mapping[str, Any], ...]  # every allocation record, oldest first
    live: tuple[AllocationView, ...]
    total: ResourceTotals  # what the live allocations hold
    views: dict[str, tuple[int, AllocationView]]  # alloc id -> (modify_index, view)


class ViewCache:
    """Views built by earlier snapshots, reused while their records are unchanged.

    The leader's scheduler keeps one across passes: between two passes most nodes and jobs
    do not change, and building their views again was most of a pass's cost on a large
    cluster. A job's views are rebuilt only when the state counts new allocation writes for
    it (or its priority changed)."""

    def __init__(self) -> None:
        # node id -> ((record, gpus, cpu, memory, gpu used, record key), view)
        self.nodes: dict[str, tuple[tuple[Any, ...], NodeView]] = {}
        self.jobs: dict[str, _JobViews] = {}
        self.node_set: NodeSet = NodeSet()


def _job_views(machine: Any, ids: Iterable[str], priority: int,
               previous: _JobViews | None) -> _JobViews:
    known = previous.views if previous is not None else {}
    allocations = machine.allocations
    records = [a for a in (allocations.get(i) for i in ids) if a is not None]
    try:
        records.sort(key=_CREATED)
    except KeyError:  # a record from before creation indexes were kept
        records.sort(key=lambda a: (a.get("create_index", 0), a["id"]))
    live = []
    views: dict[str, tuple[int, AllocationView]] = {}
    asks: dict[int, Resources] = {}  # id of a resources mapping -> its ask (groups share one)
    cpu = memory = gpu_milli = 0
    for alloc in records:
        if not is_live(alloc):
            continue
        seen = known.get(alloc["id"])
        if seen is not None and seen[0] == alloc["modify_index"] and seen[1].priority == priority:
            view = seen[1]
        else:
            res = alloc.get("resources") or {}
            ask = asks.get(id(res))
            if ask is None:
                ask = asks[id(res)] = alloc_resources(alloc)
            view = AllocationView(
                alloc["id"], alloc["job_id"], alloc["group"], alloc["node_id"], ask, priority,
                tuple(int(d) for d in res.get("gpu_devices") or ()))
        views[alloc["id"]] = (alloc["modify_index"], view)
        live.append(view)
        held = view.resources
        cpu += held.cpu_milli
        memory += held.memory_mib
        gpu_milli += held.gpu_milli
    return _JobViews(None, tuple(records), tuple(live), ResourceTotals(cpu, memory, gpu_milli),
                     views)


_CREATED = operator.itemgetter("create_index", "id")


def take(machine: Any, now: float | None = None, cache: ViewCache | None = None) -> Snapshot:
    """Build a snapshot from the state machine's current tables (``now`` decides which
    drain deadlines have passed; none when it is not given), reusing ``cache``'s views of
    records that did not change."""
    cache = cache if cache is not None else ViewCache()
    index = machine.index
    jobs = dict(machine.jobs)
    priorities = {job_id: int(job["spec"].get("priority", 50)) for job_id, job in jobs.items()}
    epoch, writes = machine.alloc_epoch, machine.alloc_writes
    kept_jobs: dict[str, _JobViews] = {}
    for job_id, ids in list(machine.alloc_ids_by_job.items()):
        priority = priorities.get(job_id, 50)
        key = (epoch, writes.get(job_id, 0), priority)
        entry = cache.jobs.get(job_id)
        if entry is None or entry.key != key:
            entry = _job_views(machine, list(ids), priority, entry)
            # Trusted only if no write for the job landed while it was read.
            if (machine.alloc_epoch, writes.get(job_id, 0), priority) == key:
                entry.key = key
        kept_jobs[job_id] = entry
    cache.jobs = kept_jobs
    by_job = {job_id: entry.records for job_id, entry in kept_jobs.items()}
    live_by_job = {job_id: entry.live for job_id, entry in kept_jobs.items() if entry.live}
    views = tuple(itertools.chain.from_iterable(live_by_job.values()))
    totals = {job_id: entry.total for job_id, entry in kept_jobs.items() if entry.live}
    usage = machine.node_usage
    node_views = []
    reshaped = False  # a node joined, left or changed more than its usage
    known_nodes = cache.nodes
    kept_nodes: dict[str, tuple[tuple[Any, ...], NodeView]] = {}
    for node in list(machine.nodes.values()):
        node_id = node["id"]
        cpu, memory = usage.cpu_milli.get(node_id, 0), usage.memory_mib.get(node_id, 0)
        known_node = known_nodes.get(node_id)
        if known_node is not None and known_node[0][0] is node:
            # The same record (records are replaced, never changed in place): only what is
            # allocated on the node may have moved, and mostly nothing has.
            seen = known_node[0]
            gpu_used = tuple(usage.gpu_used(node_id, seen[1])) if seen[1] else ()
            if seen[2] == cpu and seen[3] == memory and seen[4] == gpu_used:
                kept_nodes[node_id] = known_node
                node_views.append(known_node[1])
                continue
        gpus = int(node["capacity"].get("gpu", 0) or 0)
        gpu_used = tuple(usage.gpu_used(node_id, gpus)) if gpus else ()
        node_key = (node, gpus, cpu, memory, gpu_used,
                    (node.get("modify_index"), node.get("status"), node.get("draining")))
        if known_node is not None and known_node[0][5] == node_key[5]:
            # A new record of an unchanged node (a heartbeat): its view with the usage now.
            view_of_node = replace(known_node[1], allocated=Resources.from_spec(
                {"cpu_milli": cpu, "memory_mib": memory, "gpu": 0, "gpu_milli": 0}
                if gpu_used else {"cpu_milli": cpu, "memory_mib": memory, "gpu": 0}),
                gpu_used_milli=gpu_used)
        else:
            reshaped = True
            view_of_node = node_view({
                **node, "allocated": {"cpu_milli": cpu, "memory_mib": memory, "gpu": 0},
                "gpu_used_milli": gpu_used})
        kept_nodes[node_id] = (node_key, view_of_node)
        node_views.append(view_of_node)
    cache.nodes = kept_nodes
    node_views.sort(key=lambda n: n.id)
    previous = cache.node_set
    if len(previous) != len(node_views) or any(
            a is not b for a, b in zip(previous, node_views, strict=True)):
        # Reused as is when nothing moved; when only usage did, its answers carry over.
        same_nodes = not reshaped and len(kept_nodes) == len(known_nodes) == len(previous)
        cache.node_set = NodeSet(node_views, like=previous if same_nodes else None)
    draining = frozenset(n.id for n in node_views if n.draining)
    expired = expired_drains(machine, now) if now is not None else frozenset()
    return Snapshot(cache.node_set, views, by_job, priorities, draining, expired, index,
                    live_by_job, totals, now)


def allocation_resources(group: Mapping[str, Any], gpu_devices: Sequence[int] = ()
                         ) -> dict[str, Any]:
    """The resources mapping of an allocation of ``group`` on these GPU devices."""
    res = group["resources"]
    return {"cpu_milli": res["cpu"], "memory_mib": res["memory"], "gpu": res.get("gpu", 0),
            "gpu_devices": list(gpu_devices)}


def new_allocation(job: Mapping[str, Any], group: Mapping[str, Any], index: int, node_id: str,
                   gpu_devices: Sequence[int], previous: Mapping[str, Any] | None,
                   shared_resources: dict[str, Any] | None = None) -> dict[str, Any]:
    """An allocation record as agents receive it (the allocation contract).
    ``shared_resources``: the group's :func:`allocation_resources` without devices, shared
    by the allocations that hold no device (records are never modified in place)."""
    spec = job["spec"]
    record: dict[str, Any] = {
        "id": new_id(),
        "job_id": job["id"],
        "job_version": job["version"],
        "job_type": spec["type"],
        "group": group["name"],
        "index": index,
        "node_id": node_id,
        "resources": (shared_resources if shared_resources is not None and not gpu_devices
                      else allocation_resources(group, gpu_devices)),
        # Shared with every allocation of the group (never changed in place).
        "task": group["task"],
        "ports": group.get("ports") or [],
        "restart": group.get("restart") or {},
        "priority": int(spec.get("priority", 50)),
    }
    if group.get("health") is not None:
        record["health"] = group["health"]
    if previous is not None:
        record["previous_alloc"] = previous["id"]
        # A copy lost with its node or stopped by the system used no attempt of its own.
        lost = previous.get("client_status") in ("lost", "stopped")
        record["reschedules"] = int(previous.get("reschedules", 0)) + (0 if lost else 1)
        record["failure_streak"] = next_streak(group, previous)
    return record
