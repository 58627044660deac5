"""The plan applier's re-check, run as a plan is applied: every node a plan places work on
must still be ready, not draining, and able to hold it after the plan's own stops and
evictions there.

It runs inside the state machine, so it sees the latest state by construction and gives the
same answer on every server. A node that fails the check loses all of the plan's placements
on it; a gang group that loses any instance loses all of them; the rest of the plan lands and
the scheduler re-plans what was dropped.

It also keeps an instance from running twice: a placement for a job's group and index that
already has a live allocation is dropped, unless the plan releases that allocation (a rolling
update, a drain deadline) or the placement names it as the copy it replaces (a service moved
off a draining node runs both until the replacement is up). Plans made before a leader change
or from a stale view are caught here whatever their origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from federation.model import fit
from federation.model.allocations import allocation_view, is_live
from federation.model.nodes import node_view
from federation.model.resources import resources_of_record
from federation.model.usage import NodeUsage


def fitting_placements(
    nodes: Mapping[str, Mapping[str, Any]],
    allocations: Mapping[str, Mapping[str, Any]],
    usage: NodeUsage,
    job: Mapping[str, Any],
    placements: list[dict[str, Any]],
    released: Iterable[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The placements that fit, in their order, and the ids of the nodes that refused.

    CPU and memory are summed per node straight from the records; a node that is also given
    GPUs, or freed by the plan's stops and evictions, goes through the model's per-node
    re-check (:func:`federation.model.fit.node_takes`), which knows devices and releases."""
    if not placements:
        return [], []
    released = list(released)
    freeing = {allocations[a]["node_id"] for a in released if a in allocations}
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in placements:
        by_node.setdefault(p["node_id"], []).append(p)
    rejected: list[str] = []
    careful: set[str] = set()  # nodes with GPUs asked for or room freed: the full check
    for node_id, here in by_node.items():
        record = nodes.get(node_id)
        if record is None or record.get("status") != "ready" or record.get("draining"):
            rejected.append(node_id)
            continue
        if node_id in freeing or any((p.get("resources") or {}).get("gpu") for p in here):
            careful.add(node_id)
            continue
        capacity = record.get("capacity") or {}
        cpu = sum(int((p.get("resources") or {}).get("cpu_milli", 0) or 0) for p in here)
        memory = sum(int((p.get("resources") or {}).get("memory_mib", 0) or 0) for p in here)
        if (usage.cpu_milli.get(node_id, 0) + cpu > int(capacity.get("cpu_milli", 0) or 0)
                or usage.memory_mib.get(node_id, 0) + memory
                > int(capacity.get("memory_mib", 0) or 0)):
            rejected.append(node_id)
    if careful:
        rejected += _careful_check(nodes, allocations, usage, job,
                                   [p for p in placements if p["node_id"] in careful], released)
    if not rejected:
        return placements, []
    refused = set(rejected)
    kept = without(placements, [i for i, p in enumerate(placements) if p["node_id"] in refused],
                   job)
    return kept, sorted(refused)


def without(placements: list[dict[str, Any]], positions: Iterable[int],
            job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``placements`` less those at ``positions``; a gang group that loses one loses all."""
    dropped = set(positions)
    gangs = {g["name"] for g in job["spec"]["groups"] if g.get("gang")}
    broken = {placements[i]["group"] for i in dropped} & gangs
    return [p for i, p in enumerate(placements) if i not in dropped and p["group"] not in broken]


def duplicate_placements(
    allocations: Mapping[str, Mapping[str, Any]],
    job_alloc_ids: Iterable[str],
    placements: list[dict[str, Any]],
    released: Iterable[str],
) -> list[int]:
    """The positions in ``placements`` of those that would run an instance twice: another
    placement of the plan took its group and index first, or the job (whose allocation ids
    are ``job_alloc_ids``) has a live allocation there that the plan does not release and
    the placement does not name as ``previous_alloc``.

    Costs one look at each of the job's allocations, only when the plan places work."""
    if not placements:
        return []
    wanted: dict[tuple[str, int], int] = {}
    duplicates: list[int] = []
    for position, p in enumerate(placements):
        key = (p["group"], p.get("index", 0))
        if key in wanted:
            duplicates.append(position)
        else:
            wanted[key] = position
    released = set(released)
    holders: dict[tuple[str, int], list[str]] = {}
    for alloc_id in job_alloc_ids:
        alloc = allocations[alloc_id]
        if alloc_id in released or not is_live(alloc):
            continue
        key = (alloc["group"], alloc.get("index", 0))
        if key in wanted:
            holders.setdefault(key, []).append(alloc_id)
    for key, ids in holders.items():
        position = wanted[key]
        if any(alloc_id != placements[position].get("previous_alloc") for alloc_id in ids):
            duplicates.append(position)
    return sorted(duplicates)


def _careful_check(
    nodes: Mapping[str, Mapping[str, Any]],
    allocations: Mapping[str, Mapping[str, Any]],
    usage: NodeUsage,
    job: Mapping[str, Any],
    placements: list[dict[str, Any]],
    released: Iterable[str],
) -> list[str]:
    touched = {p["node_id"] for p in placements}
    freed: dict[str, list[Any]] = {}
    for alloc_id in released:
        alloc = allocations.get(alloc_id)
        if alloc is not None and is_live(alloc) and alloc["node_id"] in touched:
            freed.setdefault(alloc["node_id"], []).append(allocation_view(alloc))
    asks: dict[str, list[Any]] = {}
    for p in placements:
        devices = tuple(int(d) for d in (p.get("resources") or {}).get("gpu_devices") or ())
        asks.setdefault(p["node_id"], []).append(
            (p["job_id"], p["group"], resources_of_record(p), devices))
    refused = []
    for node_id in sorted(touched):
        record = nodes[node_id]
        gpus = int((record.get("capacity") or {}).get("gpu", 0) or 0)
        view = node_view({
            **record,
            "allocated": {"cpu_milli": usage.cpu_milli.get(node_id, 0),
                          "memory_mib": usage.memory_mib.get(node_id, 0)},
            "gpu_used_milli": usage.gpu_used(node_id, gpus) if gpus else (),
        })
        if not fit.node_takes(view, asks[node_id], freed.get(node_id, ())):
            refused.append(node_id)
    return refused
