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
from federation.state.node_usage import is_live

__all__ = ["Resources", "Snapshot", "alloc_resources", "is_live", "new_allocation", "take"]


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
    views = []
    for alloc in records:
        by_job.setdefault(alloc["job_id"], []).append(alloc)
        if not is_live(alloc):
            continue
        views.append(AllocationView(
            alloc["id"], alloc["job_id"], alloc["group"], alloc["node_id"],
            alloc_resources(alloc), priorities.get(alloc["job_id"], 50),
            tuple(int(d) for d in (alloc.get("resources") or {}).get("gpu_devices") or ())))
    usage = machine.node_usage
    node_views = []
    for node in list(machine.nodes.values()):
        node_id = node["id"]
        gpus = int(node["capacity"].get("gpu", 0) or 0)
        record = {**node, "allocated": {"cpu_milli": usage.cpu_milli.get(node_id, 0),
                                        "memory_mib": usage.memory_mib.get(node_id, 0),
                                        "gpu": 0},
                  "gpu_used_milli": usage.gpu_used(node_id, gpus) if gpus else ()}
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
