"""The scheduler's view of the replicated state: nodes with what is allocated on them.

Reads a ``StateMachine`` (plain data, no I/O) and builds the immutable inputs of planning.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.scheduler.adapters import node_view
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.types import MILLI_PER_GPU, AllocationView, NodeView, Resources

__all__ = ["Resources", "Snapshot", "alloc_resources", "is_live", "new_allocation", "take"]

LIVE = ("pending", "running")


def is_live(alloc: Mapping[str, Any]) -> bool:
    return alloc["desired_status"] == "run" and alloc["client_status"] in LIVE


@dataclass(frozen=True)
class Snapshot:
    nodes: Sequence[NodeView]  # a NodeSet when taken from the state
    allocations: tuple[AllocationView, ...]
    by_job: Mapping[str, tuple[Mapping[str, Any], ...]]  # job id -> every allocation record
    priorities: Mapping[str, int]
    draining: frozenset[str] = frozenset()
    drain_expired: frozenset[str] = frozenset()  # draining past their deadline
    index: int = -1  # the state index it was taken at


def alloc_resources(alloc: Mapping[str, Any]) -> Resources:
    res = alloc.get("resources") or {}
    gpu = float(res.get("gpu", 0) or 0)
    share = int(round(gpu * MILLI_PER_GPU)) if 0 < gpu < 1 else 0
    return Resources(int(res.get("cpu_milli", 0)), int(res.get("memory_mib", 0)),
                     0 if share else int(gpu), share)


def expired_drains(machine: Any, now: float) -> frozenset[str]:
    """Draining nodes whose drain deadline has passed at ``now``."""
    return frozenset(
        n["id"] for n in list(machine.nodes.values())
        if n.get("draining") and n.get("drain_deadline") is not None
        and n["drain_deadline"] <= now)


def take(machine: Any, now: float | None = None) -> Snapshot:
    """Build a snapshot from the state machine's current tables (``now`` decides which
    drain deadlines have passed; none when it is not given)."""
    index = machine.index
    jobs = dict(machine.jobs)
    priorities = {job_id: int(job["spec"].get("priority", 50)) for job_id, job in jobs.items()}
    records = list(machine.allocations.values())
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    used: dict[str, list[int]] = {}
    gpu_used: dict[str, list[int]] = {}
    views = []
    nodes = {n["id"]: n for n in list(machine.nodes.values())}
    for alloc in records:
        by_job.setdefault(alloc["job_id"], []).append(alloc)
        if not is_live(alloc):
            continue
        res = alloc_resources(alloc)
        views.append(AllocationView(
            alloc["id"], alloc["job_id"], alloc["group"], alloc["node_id"], res,
            priorities.get(alloc["job_id"], 50),
            tuple(int(d) for d in (alloc.get("resources") or {}).get("gpu_devices") or ())))
        total = used.setdefault(alloc["node_id"], [0, 0])
        total[0] += res.cpu_milli
        total[1] += res.memory_mib
        node = nodes.get(alloc["node_id"])
        devices = (alloc.get("resources") or {}).get("gpu_devices") or ()
        if node is not None and devices:
            per_device = res.gpu_share_milli or MILLI_PER_GPU
            row = gpu_used.setdefault(node["id"], [0] * int(node["capacity"].get("gpu", 0)))
            for d in devices:
                if 0 <= int(d) < len(row):
                    row[int(d)] += per_device
    node_views = []
    for node in nodes.values():
        cpu, memory = used.get(node["id"], (0, 0))
        record = {**node, "allocated": {"cpu_milli": cpu, "memory_mib": memory, "gpu": 0},
                  "gpu_used_milli": gpu_used.get(node["id"], ())}
        node_views.append(node_view(record))
    node_views.sort(key=lambda n: n.id)
    draining = frozenset(n.id for n in node_views if n.draining)
    expired = expired_drains(machine, now) if now is not None else frozenset()
    return Snapshot(NodeSet(node_views), tuple(views),
                    {k: tuple(v) for k, v in by_job.items()}, priorities, draining, expired,
                    index)


def new_allocation(job: Mapping[str, Any], group: Mapping[str, Any], index: int, node_id: str,
                   gpu_devices: Sequence[int], previous: Mapping[str, Any] | None
                   ) -> dict[str, Any]:
    """An allocation record as agents receive it (the allocation contract)."""
    spec = job["spec"]
    res = group["resources"]
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "job_id": job["id"],
        "job_version": job["version"],
        "job_type": spec["type"],
        "group": group["name"],
        "index": index,
        "node_id": node_id,
        "resources": {"cpu_milli": res["cpu"], "memory_mib": res["memory"],
                      "gpu": res.get("gpu", 0), "gpu_devices": list(gpu_devices)},
        "task": dict(group["task"]),
        "ports": list(group.get("ports") or []),
        "restart": dict(group.get("restart") or {}),
        "priority": int(spec.get("priority", 50)),
    }
    if group.get("health") is not None:
        record["health"] = group["health"]
    if previous is not None:
        record["previous_alloc"] = previous["id"]
        lost = previous.get("client_status") == "lost"
        record["reschedules"] = int(previous.get("reschedules", 0)) + (0 if lost else 1)
    return record
