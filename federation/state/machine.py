"""The replicated state machine: every change to cluster state is a command applied here.

``StateMachine.apply(command)`` is deterministic: no I/O, no clock reads (time travels in the
command as ``time``), no randomness, so every master that applies the same log holds the same
state. A command is a plain, JSON-serialisable dict with an ``id`` and a ``type``; a command
whose id was already applied returns the recorded result again, so clients may retry safely.

Records in the tables are never modified in place: a change replaces the record with a new
dict. Readers on other threads may therefore hold and return a record without locking.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from federation.errors import Conflict, FederationError, NotFound, ValidationError
from federation.specs.namespace import key_consistent
from federation.state import capacity, namespaces, queues
from federation.state.node_usage import NodeUsage
from federation.state.plan_check import fitting_placements

Command = dict[str, Any]
Result = dict[str, Any]

DEDUPE_WINDOW_SECONDS = 600.0
DEDUPE_MAX_ENTRIES = 200_000
ALLOC_CLIENT_STATUSES = ("pending", "running", "complete", "failed", "lost")
ALLOC_DESIRED_STATUSES = ("run", "stop", "evict")
# What an agent may report about an allocation; placement fields are the scheduler's alone.
ALLOC_CLIENT_FIELDS = frozenset({
    "id", "client_status", "exit_code", "signal", "message", "ports", "restarts",
    "started_at", "finished_at", "healthy",
})
SNAPSHOT_VERSION = 1


class StateMachine:
    """Cluster state: servers, nodes, jobs, allocations and a monotonic index."""

    def __init__(self) -> None:
        self.index = 0
        self.servers: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.node_ids_by_name: dict[str, str] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.allocations: dict[str, dict[str, Any]] = {}
        self.alloc_ids_by_job: dict[str, set[str]] = {}
        self.node_usage = NodeUsage()
        # Allocation writes per job, and the index the counts restart from after a restore:
        # readers cache per-job views keyed by both (local bookkeeping, not in snapshots).
        self.alloc_writes: dict[str, int] = {}
        self.alloc_epoch = 0
        self.pools: dict[str, dict[str, Any]] = {}
        self.launches: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.applied: OrderedDict[str, tuple[float, Result]] = OrderedDict()

    # -- applying commands ---------------------------------------------------------------
    def apply(self, command: Command) -> Result:
        command_id = command.get("id")
        if isinstance(command_id, str) and command_id in self.applied:
            return self.applied[command_id][1]
        handler = _HANDLERS.get(command.get("type", ""))
        try:
            if not isinstance(command_id, str) or not command_id:
                raise ValidationError("a command needs a string id", field="id")
            if handler is None:
                raise ValidationError(f"unknown command type {command.get('type')!r}", field="type")
            value = handler(self, command)
            result: Result = {"ok": True, "index": self.index, "value": value}
        except FederationError as exc:
            result = {"ok": False, "index": self.index, "status": exc.http_status,
                      "error": {**exc.to_dict()}}
        if isinstance(command_id, str) and command_id:
            self._remember(command_id, _time(command), result)
        return result

    def _remember(self, command_id: str, now: float, result: Result) -> None:
        self.applied[command_id] = (now, result)
        horizon = now - DEDUPE_WINDOW_SECONDS
        while self.applied:
            _, (oldest, _) = next(iter(self.applied.items()))
            if oldest >= horizon and len(self.applied) <= DEDUPE_MAX_ENTRIES:
                break
            self.applied.popitem(last=False)

    def _bump(self) -> int:
        self.index += 1
        return self.index

    # -- snapshot ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-serialisable data (for backups)."""
        return {
            "version": SNAPSHOT_VERSION,
            "index": self.index,
            "servers": list(self.servers.values()),
            "nodes": list(self.nodes.values()),
            "jobs": list(self.jobs.values()),
            "allocations": list(self.allocations.values()),
            "pools": list(self.pools.values()),
            "launches": list(self.launches.values()),
            "queues": list(self.queues.values()),
            "namespaces": list(self.namespaces.values()),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> StateMachine:
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise ValidationError(
                f"unsupported snapshot (expected version {SNAPSHOT_VERSION})", field="version"
            )
        machine = cls()
        try:
            machine.index = int(data["index"])
            machine.servers = {s["id"]: dict(s) for s in data["servers"]}
            machine.nodes = {n["id"]: dict(n) for n in data["nodes"]}
            machine.jobs = {j["id"]: dict(j) for j in data["jobs"]}
            machine.allocations = {a["id"]: dict(a) for a in data["allocations"]}
            machine.pools = {p["name"]: dict(p) for p in data.get("pools", [])}
            machine.launches = {la["token"]: dict(la) for la in data.get("launches", [])}
            machine.queues = {q["name"]: dict(q) for q in data.get("queues", [])}
            machine.namespaces = {n["name"]: dict(n) for n in data.get("namespaces", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed snapshot: {exc!r}") from None
        machine.node_ids_by_name = {n["name"]: n["id"] for n in machine.nodes.values()}
        for alloc in machine.allocations.values():
            machine.alloc_ids_by_job.setdefault(alloc["job_id"], set()).add(alloc["id"])
        machine.node_usage = NodeUsage.of(machine.allocations)
        machine.recount_alloc_writes()
        return machine

    def recount_alloc_writes(self) -> None:
        self.alloc_writes = {job_id: len(ids) for job_id, ids in self.alloc_ids_by_job.items()}
        self.alloc_epoch = self.index

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Raft snapshots and journals pickle the machine; ones written before the per-node
        # usage existed are given it on load.
        self.__dict__.update(state)
        if "node_usage" not in state:
            self.node_usage = NodeUsage.of(self.allocations)
        if "alloc_writes" not in state:
            self.recount_alloc_writes()
        if "namespaces" not in state:
            self.namespaces = {}

    def put_allocation(self, record: dict[str, Any]) -> None:
        """Write an allocation record, keeping the per-job and per-node indexes current."""
        self.node_usage.replace(self.allocations.get(record["id"]), record)
        self.allocations[record["id"]] = record
        self.alloc_ids_by_job.setdefault(record["job_id"], set()).add(record["id"])
        self.alloc_writes[record["job_id"]] = self.alloc_writes.get(record["job_id"], 0) + 1

    def stop_job(self, job_id: str, index: int) -> None:
        """Mark a job stopped at ``index`` and tell its running allocations to stop."""
        job = self.jobs[job_id]
        self.jobs[job_id] = {**job, "stopped": True, "version": job["version"] + 1,
                             "modify_index": index}
        for alloc_id in list(self.alloc_ids_by_job.get(job_id, ())):
            alloc = self.allocations[alloc_id]
            if alloc["desired_status"] == "run":
                self.put_allocation({**alloc, "desired_status": "stop", "modify_index": index})

    # -- derived views -------------------------------------------------------------------
    def allocation_counts(self, job_id: str) -> dict[str, int]:
        counts = dict.fromkeys(ALLOC_CLIENT_STATUSES, 0)
        for alloc_id in list(self.alloc_ids_by_job.get(job_id, ())):
            alloc = self.allocations.get(alloc_id)
            if alloc is not None:
                counts[alloc["client_status"]] += 1
        return counts

    def job_status(self, job: dict[str, Any]) -> str:
        """pending | running | complete | failed | dead, derived from the allocations."""
        if job["stopped"]:
            return "dead"
        counts = self.allocation_counts(job["id"])
        wanted = sum(g["count"] for g in job["spec"]["groups"])
        if job["spec"]["type"] == "batch" and job.get("exhausted"):
            return "failed"
        if job["spec"]["type"] == "batch" and wanted and counts["complete"] >= wanted:
            return "complete"
        if counts["running"]:
            return "running"
        return "pending"


def _time(command: Command) -> float:
    value = command.get("time", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _require(command: Command, key: str, kind: type | tuple[type, ...]) -> Any:
    value = command.get(key)
    if not isinstance(value, kind):
        raise ValidationError(f"command field {key!r} is missing or malformed", field=key)
    return value


# -- handlers: validate first, then change state (a failed command changes nothing) -------
def _noop(sm: StateMachine, command: Command) -> dict[str, Any]:
    return {"index": sm.index}


def _server_upsert(sm: StateMachine, command: Command) -> dict[str, Any]:
    server = _require(command, "server", dict)
    for key in ("id", "raft", "http"):
        if not isinstance(server.get(key), str) or not server[key]:
            raise ValidationError(f"server.{key} is required", field=f"server.{key}")
    record = {"id": server["id"], "raft": server["raft"], "http": server["http"]}
    if sm.servers.get(record["id"]) != record:
        record["modify_index"] = sm._bump()
        sm.servers[record["id"]] = record
    return {"id": record["id"]}


def _node_register(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _require(command, "node", dict)
    for key in ("id", "name", "token_hash"):
        if not isinstance(node.get(key), str) or not node[key]:
            raise ValidationError(f"node.{key} is required", field=key)
    now = _time(command)
    existing_id = sm.node_ids_by_name.get(node["name"])
    existing = sm.nodes.get(existing_id) if existing_id else None
    index = sm._bump()
    record = {
        **node,
        "id": existing["id"] if existing else node["id"],
        "status": "ready",
        "draining": existing["draining"] if existing else False,
        "last_heartbeat": now,
        "registered_at": existing["registered_at"] if existing else now,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    sm.nodes[record["id"]] = record
    sm.node_ids_by_name[record["name"]] = record["id"]
    return {"id": record["id"], "reregistered": existing is not None}


def _node(sm: StateMachine, command: Command) -> dict[str, Any]:
    node_id = _require(command, "node_id", str)
    node = sm.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}", field="node_id")
    return node


def _node_heartbeat(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _node(sm, command)
    index = sm._bump()
    updated = {**node, "status": "ready", "last_heartbeat": _time(command)}
    if node["status"] != "ready":
        # Only a change of status is a change of the node for the scheduler; a routine
        # heartbeat keeps modify_index so it wakes no scheduling work.
        updated["modify_index"] = index
    sm.nodes[node["id"]] = updated
    return {"id": node["id"], "status": "ready"}


def _node_drain(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _node(sm, command)
    draining = command.get("draining", True)
    if not isinstance(draining, bool):
        raise ValidationError("draining must be true or false", field="draining")
    deadline = command.get("deadline") if draining else None
    if deadline is not None and not isinstance(deadline, int | float):
        raise ValidationError("deadline must be a time in seconds", field="deadline")
    if node["draining"] != draining or node.get("drain_deadline") != deadline:
        sm.nodes[node["id"]] = {**node, "draining": draining, "drain_deadline": deadline,
                                "modify_index": sm._bump()}
    return {"id": node["id"], "draining": draining, "deadline": deadline}


def _node_mark_down(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Mark a node down, unless a heartbeat landed after the leader decided it was silent."""
    node = _node(sm, command)
    seen = command.get("last_heartbeat_seen")
    if not isinstance(seen, int | float):
        raise ValidationError("last_heartbeat_seen is required", field="last_heartbeat_seen")
    if node["status"] == "down" or node["last_heartbeat"] > seen:
        return {"id": node["id"], "status": node["status"], "changed": False}
    index = sm._bump()
    sm.nodes[node["id"]] = {**node, "status": "down", "modify_index": index}
    lost = 0
    for alloc in list(sm.allocations.values()):
        if alloc["node_id"] == node["id"] and alloc["client_status"] in ("pending", "running"):
            # Lost, and told to stop: if the node comes back it must not run a second copy.
            sm.put_allocation({**alloc, "client_status": "lost",
                               "desired_status": "stop", "modify_index": index})
            lost += 1
    return {"id": node["id"], "status": "down", "changed": True, "lost": lost}


def _depends_on_cycle(sm: StateMachine, job_id: str, depends_on: list[str]) -> bool:
    stack, seen = list(depends_on), set()
    while stack:
        current = stack.pop()
        if current == job_id:
            return True
        if current in seen:
            continue
        seen.add(current)
        parent = sm.jobs.get(current)
        if parent is not None:
            stack.extend(parent["spec"]["depends_on"])
    return False


def _job_register(sm: StateMachine, command: Command) -> dict[str, Any]:
    spec = _require(command, "spec", dict)
    job_id = spec.get("id")
    if not isinstance(job_id, str) or not isinstance(spec.get("groups"), list):
        raise ValidationError("a validated job spec is required", field="spec")
    for i, parent in enumerate(spec.get("depends_on") or []):
        if parent not in sm.jobs:
            raise ValidationError(f"no job {parent!r} to depend on", field=f"depends_on[{i}]")
    if _depends_on_cycle(sm, job_id, spec.get("depends_on") or []):
        raise ValidationError("dependencies would form a cycle", field="depends_on")
    if not key_consistent(spec):
        raise ValidationError("the job key does not match its namespace", field="namespace")
    # A job made from a Kubernetes object keeps that object (its metadata, the last-applied
    # configuration kubectl compares against); it is never read by the scheduler.
    manifest = command.get("manifest")
    if manifest is not None and not isinstance(manifest, dict):
        raise ValidationError("a manifest must be a mapping", field="manifest")
    # A suspended job (a CronJob with suspend: true) is registered stopped: nothing runs,
    # and it stays visible as suspended rather than deleted.
    suspend = command.get("suspend", False)
    if not isinstance(suspend, bool):
        raise ValidationError("suspend must be true or false", field="suspend")
    existing = sm.jobs.get(job_id)
    if (existing is not None and existing["spec"] == spec
            and existing["stopped"] == suspend and existing.get("suspended", False) == suspend
            and existing.get("manifest") == manifest):
        return {"id": job_id, "version": existing["version"], "changed": False,
                "index": sm.index}
    index = sm._bump()
    parent = command.get("parent")
    if parent is not None and parent not in sm.jobs:
        raise ValidationError(f"no periodic job {parent!r}", field="parent")
    record = {
        "id": job_id,
        "spec": spec,
        "version": existing["version"] + 1 if existing else 1,
        "stopped": False,
        "parent": parent if parent is not None else (existing or {}).get("parent"),
        "launch_time": command.get("launch_time"),
        "unplaced": {},
        "exhausted": {},
        "submit_time": _time(command),
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    if manifest is not None:
        record["manifest"] = manifest
    if suspend:
        record["stopped"] = record["suspended"] = True
    sm.jobs[job_id] = record
    return {"id": job_id, "version": record["version"], "changed": True, "index": index}


def _job_deregister(sm: StateMachine, command: Command) -> dict[str, Any]:
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", field="job_id")
    if job["stopped"] and not job.get("suspended"):
        return {"id": job_id, "version": job["version"], "changed": False, "index": sm.index}
    index = sm._bump()
    if job["stopped"]:  # a suspended job: deleting it leaves it stopped, no longer suspended
        sm.jobs[job_id] = {**job, "suspended": False, "modify_index": index}
        return {"id": job_id, "version": job["version"], "changed": True, "index": index}
    sm.stop_job(job_id, index)
    return {"id": job_id, "version": job["version"] + 1, "changed": True, "index": index}


def _alloc_upsert(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Place allocations (a scheduler plan). All or nothing: one bad entry rejects the lot."""
    allocations = _require(command, "allocations", list)
    for i, alloc in enumerate(allocations):
        where = f"allocations[{i}]"
        if not isinstance(alloc, dict):
            raise ValidationError("an allocation must be a mapping", field=where)
        for key in ("id", "job_id", "group", "node_id"):
            if not isinstance(alloc.get(key), str):
                raise ValidationError(f"{key} is required", field=f"{where}.{key}")
        if alloc["job_id"] not in sm.jobs:
            raise NotFound(f"no job {alloc['job_id']!r}", field=f"{where}.job_id")
        if alloc["node_id"] not in sm.nodes:
            raise NotFound(f"no node {alloc['node_id']!r}", field=f"{where}.node_id")
        if alloc.get("desired_status", "run") not in ALLOC_DESIRED_STATUSES:
            raise ValidationError("unknown desired_status", field=f"{where}.desired_status")
        if alloc.get("client_status", "pending") not in ALLOC_CLIENT_STATUSES:
            raise ValidationError("unknown client_status", field=f"{where}.client_status")
    index = sm._bump()
    for alloc in allocations:
        existing = sm.allocations.get(alloc["id"])
        record = {
            "desired_status": "run",
            "client_status": "pending",
            "resources": {},
            **(existing or {}),
            **alloc,
            "create_index": existing["create_index"] if existing else index,
            "modify_index": index,
        }
        sm.put_allocation(record)
    return {"count": len(allocations)}


def _alloc_update_status(sm: StateMachine, command: Command) -> dict[str, Any]:
    updates = _require(command, "updates", list)
    for i, update in enumerate(updates):
        if not isinstance(update, dict) or update.get("id") not in sm.allocations:
            raise NotFound("no such allocation", field=f"updates[{i}].id")
        if update.get("client_status") not in ALLOC_CLIENT_STATUSES:
            raise ValidationError("unknown client_status", field=f"updates[{i}].client_status")
        foreign = sorted(set(update) - ALLOC_CLIENT_FIELDS)
        if foreign:
            raise ValidationError(f"an allocation update cannot set {foreign[0]!r}",
                                  field=f"updates[{i}].{foreign[0]}")
        node_id = command.get("node_id")
        if node_id is not None and sm.allocations[update["id"]]["node_id"] != node_id:
            raise Conflict("allocation belongs to another node", field=f"updates[{i}].id")
    index = sm._bump()
    for update in updates:
        alloc = sm.allocations[update["id"]]
        sm.put_allocation({**alloc, **update, "modify_index": index})
    return {"count": len(updates)}


def _plan_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Commit one job's scheduling decision: new allocations, stops, evictions, and what
    could not be placed (the blocked demand the autoscaler reads). Refused when the job
    changed since it was planned, so a stale plan never lands."""
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", field="job_id")
    if job["version"] != command.get("job_version") or job["stopped"]:
        raise Conflict("the job changed since this plan was made", field="job_version")
    group_fields = command.get("group_fields") or {}
    if not isinstance(group_fields, dict) or not all(
            isinstance(v, dict) for v in group_fields.values()):
        raise ValidationError("group_fields maps a group to its fields", field="group_fields")
    allocations = [
        {**group_fields.get(a["group"], {}), **a}
        if isinstance(a, dict) and isinstance(a.get("group"), str) else a
        for a in command.get("allocations") or []]
    stops = command.get("stops") or []
    evictions = command.get("evictions") or []
    for i, alloc in enumerate(allocations):
        if not isinstance(alloc, dict) or not isinstance(alloc.get("node_id"), str):
            raise ValidationError("an allocation needs a node_id", field=f"allocations[{i}]")
        if alloc.get("job_id") != job_id or not isinstance(alloc.get("group"), str):
            raise ValidationError("an allocation of another job or no group",
                                  field=f"allocations[{i}].job_id")
        if alloc.get("id") in sm.allocations:
            raise Conflict("allocation id already used", field=f"allocations[{i}].id")
    for field, ids in (("stops", stops), ("evictions", evictions)):
        for i, alloc_id in enumerate(ids):
            if alloc_id not in sm.allocations:
                raise NotFound("no such allocation", field=f"{field}[{i}]")
    accepted, refused = fitting_placements(sm.nodes, sm.allocations, sm.node_usage, job,
                                           allocations, [*stops, *evictions])
    index = sm._bump()
    for alloc in accepted:
        sm.put_allocation({"desired_status": "run", "client_status": "pending", **alloc,
                           "create_index": index, "modify_index": index})
    for desired, ids in (("stop", stops), ("evict", evictions)):
        for alloc_id in ids:
            alloc = sm.allocations[alloc_id]
            if alloc["desired_status"] == "run":
                sm.put_allocation({**alloc, "desired_status": desired, "modify_index": index})
    sm.jobs[job_id] = {**job, "unplaced": command.get("unplaced") or {},
                       "exhausted": command.get("exhausted") or {}, "modify_index": index}
    return {"placed": len(accepted), "stopped": len(stops), "evicted": len(evictions),
            "refused_nodes": refused, "refused": len(allocations) - len(accepted)}


def _job_blocked(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record why a job is not scheduled at all (e.g. waiting for a dependency)."""
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}", field="job_id")
    unplaced = command.get("unplaced") or {}
    if job.get("unplaced") != unplaced:
        sm.jobs[job_id] = {**job, "unplaced": unplaced, "modify_index": sm._bump()}
    return {"id": job_id}


def _state_restore(sm: StateMachine, command: Command) -> dict[str, Any]:
    restored = StateMachine.from_snapshot(_require(command, "snapshot", dict))
    index = max(sm.index, restored.index) + 1
    # Cluster membership (servers) and the dedupe window describe this cluster, not the
    # workload: a snapshot taken elsewhere must not replace them.
    restored.servers = sm.servers
    restored.applied = sm.applied
    # Heartbeats in a backup are as old as the backup: give every ready node a full TTL from
    # the restore to report again, instead of declaring it dead at once.
    now = _time(command)
    restored.nodes = {
        node_id: {**node, "last_heartbeat": max(node["last_heartbeat"], now)}
        for node_id, node in restored.nodes.items()}
    sm.__dict__.update(restored.__dict__)
    sm.index = index
    sm.alloc_epoch = index
    return {"nodes": len(sm.nodes), "jobs": len(sm.jobs), "allocations": len(sm.allocations)}


_HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "noop": _noop,
    "server.upsert": _server_upsert,
    "node.register": _node_register,
    "node.heartbeat": _node_heartbeat,
    "node.drain": _node_drain,
    "node.mark_down": _node_mark_down,
    "job.register": _job_register,
    "job.deregister": _job_deregister,
    "alloc.upsert": _alloc_upsert,
    "alloc.update_status": _alloc_update_status,
    "state.restore": _state_restore,
    "plan.apply": _plan_apply,
    "job.blocked": _job_blocked,
}
_HANDLERS.update(capacity.HANDLERS)
_HANDLERS.update(queues.HANDLERS)
_HANDLERS.update(namespaces.HANDLERS)
COMMAND_TYPES = tuple(_HANDLERS)
