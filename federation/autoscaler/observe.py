"""What the autoscaler sees: pure functions from the replicated state to planner inputs.

Reads ``StateMachine`` tables (pools, nodes, allocations, jobs with their blocked demand,
launch records) and returns planner types or plain views; no I/O, no clock. The API's pool
and activity views are built here too, so the executor and the API count the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from federation import model
from federation.autoscaler.planner import (
    Constraint,
    Launching,
    Node,
    PoolState,
    Resources,
    Task,
)
from federation.autoscaler.scaledown import Destination, Occupancy, Work, utilisation
from federation.model import fit, is_live, node_attributes
from federation.providers.base import InstanceType
from federation.specs.pool import PoolSpec, parse_duration
from federation.state.capacity import RELEASE_DRAIN_ACTION, in_flight
from federation.state.machine import StateMachine

DEFAULT_JOIN_GRACE = 600.0
DEFAULT_ORPHAN_GRACE = 600.0


def pool_setting_seconds(spec: PoolSpec, key: str, default: float) -> float:
    """A duration from the pool's free-form ``settings`` (``join_grace: 10m``)."""
    value = spec.settings.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        return default


def pool_dry_run(spec: PoolSpec) -> bool:
    return spec.settings.get("dry_run") in (True, "true", "yes", 1)


def instance_id_of(node: Mapping[str, Any]) -> str:
    """The provider's instance id of a node: what its agent reported, else its name."""
    return str(node.get("instance_id") or node.get("name") or "")


def allocated_by_node(machine: StateMachine) -> dict[str, Resources]:
    """Resources held on each node by allocations that run or are about to (GPUs: devices
    with anything on them), from the per-node totals the state keeps."""
    usage = machine.node_usage
    used: dict[str, Resources] = {}
    for node_id in usage.cpu_milli.keys() | usage.memory_mib.keys() | usage.gpu_milli.keys():
        used[node_id] = Resources(usage.cpu_milli.get(node_id, 0),
                                  usage.memory_mib.get(node_id, 0),
                                  usage.gpu_devices_busy(node_id))
    return used


def busy_nodes(machine: StateMachine) -> set[str]:
    """Nodes with at least one allocation that runs or is about to."""
    return {a["node_id"] for a in list(machine.allocations.values()) if is_live(a)}


def last_finished_on(machine: StateMachine) -> dict[str, float]:
    """The latest ``finished_at`` an agent reported per node (0 when none)."""
    out: dict[str, float] = {}
    for alloc in list(machine.allocations.values()):
        finished = alloc.get("finished_at")
        if isinstance(finished, int | float) and not isinstance(finished, bool):
            out[alloc["node_id"]] = max(out.get(alloc["node_id"], 0.0), float(finished))
    return out


def launch_records(machine: StateMachine, pool: str | None = None) -> list[dict[str, Any]]:
    return [r for r in list(machine.launches.values())
            if r["kind"] == "launch" and (pool is None or r["pool"] == pool)]


def instance_states(machine: StateMachine, pool: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every instance id the state knows in ``pool``: its state and its launch record."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for record in launch_records(machine, pool):
        for iid, state in record["instances"].items():
            out[iid] = (state, record)
    return out


def pool_nodes(machine: StateMachine, pool: str) -> list[dict[str, Any]]:
    """Nodes of ``pool`` that count as capacity: ready, and not being terminated by us."""
    states = instance_states(machine, pool)
    out = []
    for node in list(machine.nodes.values()):
        if node.get("pool") != pool or node.get("status") != "ready":
            continue
        known = states.get(instance_id_of(node))
        if known is not None and known[0] != "running":
            continue
        out.append(node)
    return sorted(out, key=lambda n: n["name"])


def joined_instance_ids(machine: StateMachine, pool: str) -> set[str]:
    """Instance ids of every node that ever registered in ``pool`` (any status)."""
    return {instance_id_of(n) for n in list(machine.nodes.values()) if n.get("pool") == pool}


def launching(machine: StateMachine, pool: str) -> list[Launching]:
    """Instances committed for launch that have not joined as nodes yet."""
    joined = joined_instance_ids(machine, pool)
    out = []
    for record in launch_records(machine, pool):
        zone = record["zones"][0] if len(record["zones"]) == 1 else None
        if record["status"] == "pending":
            out.append(Launching(record["instance_type"], record["count"], zone,
                                 record["spot"], record["token"]))
            continue
        waiting = sum(1 for iid, state in record["instances"].items()
                      if state == "running" and iid not in joined)
        if waiting:
            out.append(Launching(record["instance_type"], waiting, zone, record["spot"],
                                 record["token"]))
    return out


def _node_resources(value: Any) -> Resources:
    res = value if isinstance(value, Mapping) else {}
    return Resources(int(res.get("cpu_milli", 0)), int(res.get("memory_mib", 0)),
                     int(res.get("gpu", 0)))


def node_prices(machine: StateMachine, pool: str) -> dict[str, float]:
    """Instance id -> hourly price, from the launch records of ``pool``."""
    return {iid: float(rec["price_per_hour"])
            for iid, (_, rec) in instance_states(machine, pool).items()}


def pool_state(
    machine: StateMachine,
    spec: PoolSpec,
    catalog: Iterable[InstanceType],
    idle_since: Mapping[str, float | None],
) -> PoolState:
    """The planner's view of one pool."""
    used = allocated_by_node(machine)
    prices = node_prices(machine, spec.name)
    members = pool_nodes(machine, spec.name)
    groups = groups_on_nodes(machine, {n["id"] for n in members})
    nodes = []
    for node in members:
        iid = instance_id_of(node)
        price = node.get("price_per_hour") or prices.get(iid)
        gpus = int((node.get("capacity") or {}).get("gpu", 0) or 0)
        nodes.append(Node(
            id=node["id"],
            instance_type=str(node.get("instance_type") or ""),
            capacity=_node_resources(node.get("capacity")),
            allocated=used.get(node["id"], Resources()),
            zone=node.get("zone") or None,
            rack=node.get("rack") or None,
            labels=dict(node.get("labels") or {}),
            price_per_hour=float(price) if price is not None else None,
            idle_since=idle_since.get(node["id"]),
            draining=bool(node.get("draining")),
            gpu_used_milli=tuple(machine.node_usage.gpu_used(node["id"], gpus)),
            groups=groups.get(node["id"], {}),
        ))
    return PoolState(spec=spec, catalog=tuple(catalog), nodes=tuple(nodes),
                     launching=tuple(launching(machine, spec.name)))


def groups_on_nodes(machine: StateMachine, node_ids: set[str]) -> dict[str, dict[str, int]]:
    """Live instances per ``job/group`` on each of ``node_ids``."""
    out: dict[str, dict[str, int]] = {}
    if not node_ids:
        return out
    for alloc in list(machine.allocations.values()):
        if alloc["node_id"] in node_ids and is_live(alloc):
            key = f"{alloc.get('job_id')}/{alloc.get('group')}"
            row = out.setdefault(alloc["node_id"], {})
            row[key] = row.get(key, 0) + 1
    return out


def _constraint(raw: Mapping[str, Any]) -> Constraint:
    value = raw.get("value")
    return Constraint(str(raw.get("attribute", "")), str(raw.get("operator", "=")),
                      tuple(value) if isinstance(value, list) else value)


def demand(machine: StateMachine) -> list[Task]:
    """Blocked demand: for each running job, each group the scheduler could not place.

    The scheduler records ``job["unplaced"] = {group: {"unplaced": n, ...}}`` (``count`` is
    read too); one task of the group's resources and constraints stands for each unplaced
    copy. Entries that name no group of the spec (a job waiting for a dependency) are not
    demand.
    """
    out: list[Task] = []
    for job in sorted(list(machine.jobs.values()), key=lambda j: j["id"]):
        unplaced = job.get("unplaced")
        if job.get("stopped") or not isinstance(unplaced, Mapping):
            continue
        groups = {g.get("name"): g for g in job["spec"].get("groups") or []}
        for name in sorted(unplaced):
            entry = unplaced[name]
            count = 0
            if isinstance(entry, Mapping):
                count = entry.get("count", entry.get("unplaced", 0))
            group = groups.get(name)
            if group is None or not isinstance(count, int) or count <= 0:
                continue
            res = group.get("resources") or {}
            limit = group.get("max_per_node")
            out.append(Task(
                id=f"{job['id']}/{name}",
                resources=Resources(int(res.get("cpu", 0)), int(res.get("memory", 0)),
                                    int(math.ceil(float(res.get("gpu", 0))))),
                constraints=tuple(_constraint(c) for c in group.get("constraints") or []),
                count=count,
                ask=model.Resources.from_spec(res),
                max_per_node=fit.per_node_limit(
                    bool(group.get("distinct_hosts")),
                    int(limit) if isinstance(limit, int) and limit > 0 else None),
            ))
    return out


# -- what scale-down under a utilisation threshold reads ---------------------------------------
DRAIN_ACTION = RELEASE_DRAIN_ACTION  # the note the executor records when it drains a node


def node_work(machine: StateMachine) -> dict[str, tuple[Work, ...]]:
    """Per node, its live allocations with what moving them must respect: the group's
    constraints and per-node limits, and whether it is batch (finishes in place)."""
    out: dict[str, list[Work]] = {}
    jobs = dict(machine.jobs)
    for alloc in sorted(list(machine.allocations.values()), key=lambda a: a["id"]):
        if not is_live(alloc):
            continue
        job = jobs.get(alloc.get("job_id", ""))
        spec = job["spec"] if job is not None else {}
        group: Mapping[str, Any] = next((g for g in spec.get("groups") or []
                                         if g.get("name") == alloc.get("group")), {})
        res = alloc.get("resources") or {}
        limit = group.get("max_per_node")
        out.setdefault(alloc["node_id"], []).append(Work(
            alloc_id=alloc["id"],
            group=f"{alloc.get('job_id')}/{alloc.get('group')}",
            resources=Resources(int(res.get("cpu_milli", 0)), int(res.get("memory_mib", 0)),
                                int(math.ceil(float(res.get("gpu", 0))))),
            batch=spec.get("type") == "batch",
            constraints=tuple(_constraint(c) for c in group.get("constraints") or []),
            max_per_node=1 if group.get("distinct_hosts") else (
                int(limit) if isinstance(limit, int) and limit > 0 else None),
        ))
    return {node_id: tuple(items) for node_id, items in out.items()}


def destinations(machine: StateMachine) -> tuple[Destination, ...]:
    """Every ready node that is not draining, with its free room and the groups on it."""
    used = allocated_by_node(machine)
    groups: dict[str, dict[str, int]] = {}
    for alloc in list(machine.allocations.values()):
        if is_live(alloc):
            key = f"{alloc.get('job_id')}/{alloc.get('group')}"
            on_node = groups.setdefault(alloc["node_id"], {})
            on_node[key] = on_node.get(key, 0) + 1
    out = []
    for node in sorted(list(machine.nodes.values()), key=lambda n: n["id"]):
        if node.get("status") != "ready" or node.get("draining"):
            continue
        free = _node_resources(node.get("capacity")) - used.get(node["id"], Resources())
        out.append(Destination(node["id"], free, node_attributes(node),
                               groups.get(node["id"], {})))
    return tuple(out)


def under_threshold(machine: StateMachine, specs: Iterable[PoolSpec]) -> set[str]:
    """Ready nodes of pools with ``scale_down_utilization`` whose utilisation is under it."""
    thresholds = {s.name: s.scale_down_utilization for s in specs
                  if s.scale_down_utilization is not None}
    if not thresholds:
        return set()
    used = allocated_by_node(machine)
    out = set()
    for node in list(machine.nodes.values()):
        threshold = thresholds.get(node.get("pool", ""))
        if threshold is None or node.get("status") != "ready":
            continue
        share = utilisation(used.get(node["id"], Resources()),
                            _node_resources(node.get("capacity")))
        if share < threshold:
            out.add(node["id"])
    return out


def drained_to_release(machine: StateMachine) -> dict[str, str]:
    """Draining nodes the autoscaler drained to release them (its ``drain`` notes), with
    the reason it gave."""
    out: dict[str, str] = {}
    notes = sorted((r for r in list(machine.launches.values())
                    if r["kind"] == "note" and r.get("action") == DRAIN_ACTION),
                   key=lambda r: r["create_index"])
    for note in notes:
        node_id = (note.get("detail") or {}).get("node_id")
        node = machine.nodes.get(node_id) if isinstance(node_id, str) else None
        if node is not None and node.get("draining"):
            out[node["id"]] = str((note.get("detail") or {}).get("why") or note["reason"])
    return out


def occupancy(machine: StateMachine, under_since: Mapping[str, float]) -> Occupancy:
    """What scale-down needs beyond the pools' ``Node``s, from one snapshot. With no node
    under a threshold there is no work to move, so allocations are not read again."""
    drained = drained_to_release(machine)
    if not under_since:
        return Occupancy(drained=drained)
    return Occupancy(work=node_work(machine), under_since=dict(under_since),
                     destinations=destinations(machine), drained=drained)


# -- views for the API -----------------------------------------------------------------------
def pool_view(machine: StateMachine, record: Mapping[str, Any]) -> dict[str, Any]:
    """A pool with its live node counts (from ``machine.nodes``) and hourly cost."""
    name = record["name"]
    counts = {"ready": 0, "down": 0, "draining": 0, "total": 0}
    prices = node_prices(machine, name)
    cost = 0.0
    priced: set[str] = set()
    for node in list(machine.nodes.values()):
        if node.get("pool") != name:
            continue
        counts["total"] += 1
        status = str(node.get("status", "ready"))
        counts[status] = counts.get(status, 0) + 1
        if node.get("draining"):
            counts["draining"] += 1
        iid = instance_id_of(node)
        if status == "ready" and iid not in prices:
            cost += float(node.get("price_per_hour") or 0.0)
    for iid, (state, rec) in instance_states(machine, name).items():
        if state != "terminated" and iid not in priced:
            priced.add(iid)
            cost += float(rec["price_per_hour"])
    pending = sum(lc.count for lc in launching(machine, name))
    return {
        **record["spec"],
        "version": record["version"],
        "nodes": counts,
        "launching": pending,
        "instances": len(priced),
        "hourly_cost": round(cost, 6),
        "create_index": record["create_index"],
        "modify_index": record["modify_index"],
    }


def activity_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """One activity: what was decided, why, what it costs per hour, and what happened."""
    kind = record["kind"]
    if kind == "launch":
        action = "launch"
        if record["status"] == "pending":
            outcome = f"launching {record['count']} x {record['instance_type']}"
        elif record["status"] == "failed":
            outcome = f"failed: {record['error'] or '; '.join(record['failures']) or 'nothing'}"
        else:
            outcome = f"launched {len(record['instances'])} instance(s)"
            if record["shortfall"]:
                outcome += f", {record['shortfall']} short"
                if record["failures"]:
                    outcome += f" ({'; '.join(record['failures'])})"
    elif kind == "terminate":
        action = "terminate"
        ids = ", ".join(record["instance_ids"])
        outcome = {"pending": f"terminating {ids}", "done": f"terminated {ids}"}.get(
            record["status"], f"failed: {record['error']}")
    else:
        action = record["action"]
        outcome = "dry run: not acted upon" if record["dry_run"] else "recorded"
    view = {k: v for k, v in record.items() if k != "kind"}
    view.update({"kind": kind, "action": action, "outcome": outcome,
                 "in_flight": in_flight(dict(record))})
    return view


def activities(machine: StateMachine, limit: int = 100,
               pool: str | None = None) -> list[dict[str, Any]]:
    """The most recent activities first."""
    records = [r for r in list(machine.launches.values())
               if pool is None or r.get("pool") == pool]
    records.sort(key=lambda r: (r["create_index"], r["token"]), reverse=True)
    return [activity_view(r) for r in records[:limit]]
