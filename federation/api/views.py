"""How records of the state machine are shown to API users."""

from __future__ import annotations

from typing import Any

from federation.model import MILLI_PER_GPU
from federation.scheduler.backoff import waiting
from federation.specs.diff import changed_fields
from federation.specs.namespace import split_key, to_external
from federation.state.machine import StateMachine, job_versions

_HIDDEN_NODE_FIELDS = ("token_hash",)


def allocated_by_node(machine: StateMachine) -> dict[str, dict[str, float]]:
    """What the live allocations hold per node, from the per-node totals the state keeps
    (GPUs as devices: shares add up as fractions)."""
    usage = machine.node_usage
    out: dict[str, dict[str, float]] = {}
    for node_id in usage.cpu_milli.keys() | usage.memory_mib.keys() | usage.gpu_milli.keys():
        devices = usage.gpu_milli.get(node_id, {})
        out[node_id] = {"cpu_milli": usage.cpu_milli.get(node_id, 0),
                        "memory_mib": usage.memory_mib.get(node_id, 0),
                        "gpu": sum(devices.values()) / MILLI_PER_GPU}
    return out


def node_view(node: dict[str, Any], allocated: dict[str, float] | None,
              last_seen: float | None = None) -> dict[str, Any]:
    """A node as users see it. ``last_heartbeat`` is the later of its last committed
    transition and the last heartbeat the answering server saw (the leader sees them all)."""
    view = {k: v for k, v in node.items() if k not in _HIDDEN_NODE_FIELDS}
    if last_seen is not None and last_seen > (view.get("last_heartbeat") or 0.0):
        view["last_heartbeat"] = last_seen
    view["allocated"] = allocated or {"cpu_milli": 0, "memory_mib": 0, "gpu": 0}
    return view


def heartbeat_reply(node: dict[str, Any], last_seen: float | None,
                    ttl: float) -> dict[str, Any]:
    """What a heartbeat answers: the node's standing, a few fields (never its work list)."""
    return {"id": node["id"], "name": node["name"], "status": node["status"],
            "draining": node.get("draining", False),
            "last_heartbeat": max(last_seen or 0.0, node.get("last_heartbeat") or 0.0),
            "heartbeat_ttl": ttl}


def alloc_view(alloc: dict[str, Any]) -> dict[str, Any]:
    """An allocation as users see it: its job's local id and namespace."""
    namespace, job_id = split_key(alloc["job_id"])
    return {**alloc, "job_id": job_id, "namespace": namespace}


def job_view(machine: StateMachine, job: dict[str, Any]) -> dict[str, Any]:
    return {
        **to_external(job["spec"]),
        "version": job["version"],
        "status": machine.job_status(job),
        "stopped": job["stopped"],
        "allocations": machine.allocation_counts(job["id"]),
        "replacements": waiting(job["spec"]["groups"], [
            a for a in (machine.allocations.get(i)
                        for i in list(machine.alloc_ids_by_job.get(job["id"], ())))
            if a is not None and a["client_status"] == "failed"]),
        "unplaced": job.get("unplaced") or {},
        "parent": split_key(job["parent"])[1] if job.get("parent") else None,
        "submit_time": job["submit_time"],
        "create_index": job["create_index"],
        "modify_index": job["modify_index"],
    }


def versions_view(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's kept versions as users see them (specs in their external form)."""
    versions = job_versions(job)
    out = []
    for i, entry in enumerate(versions):
        older = versions[i + 1]["spec"] if i + 1 < len(versions) else None
        out.append({
            "version": entry["version"], "current": i == 0, "stopped": entry["stopped"],
            "submit_time": entry["submit_time"], "spec": to_external(entry["spec"]),
            "changes": changed_fields(to_external(older), to_external(entry["spec"]))
            if older is not None else []})
    return out
