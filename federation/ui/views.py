"""What each UI page shows, computed from the state machine: pure functions returning plain
data for the templates (no HTTP, no I/O), so they can run off the event loop and be tested
alone.

Pages are bounded: the jobs list pages on the server, and per-job views read only that
job's allocations through ``alloc_ids_by_job``, so a state of thousands of jobs costs one
page of rows, not the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from federation.api.views import allocated_by_node, versions_view
from federation.autoscaler.observe import activities, pool_view
from federation.scheduler.backoff import waiting
from federation.specs.namespace import DEFAULT_NAMESPACE, split_key
from federation.state.machine import ALLOC_CLIENT_STATUSES, StateMachine

JOB_TYPES = ("service", "batch")
JOB_STATUSES = ("pending", "running", "degraded", "complete", "failed", "dead")
JOB_SORTS = ("id", "-id", "priority", "-priority", "submitted", "-submitted", "status")
PAGE_SIZES = (25, 50, 100)
RESOURCE_KEYS = ("cpu_milli", "memory_mib", "gpu")


@dataclass(frozen=True)
class JobQuery:
    """The jobs list's filters, sort and page, as given in the URL (already checked)."""

    type: str = ""
    status: str = ""
    queue: str = ""
    namespace: str = ""
    search: str = ""
    sort: str = "id"
    page: int = 1
    per_page: int = 25

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> JobQuery:
        """Unknown or malformed values fall back to the defaults: a URL is never an error."""
        def pick(name: str, allowed: tuple[str, ...], default: str = "") -> str:
            value = params.get(name, default)
            return value if value in allowed else default

        def number(name: str, default: int) -> int:
            raw = params.get(name, "")
            return int(raw) if raw.isdigit() and int(raw) > 0 else default

        per_page = number("per_page", 25)
        return cls(
            type=pick("type", JOB_TYPES), status=pick("status", JOB_STATUSES),
            queue=params.get("queue", "")[:63], search=params.get("q", "")[:63],
            namespace=params.get("namespace", "")[:63],
            sort=pick("sort", JOB_SORTS, "id"), page=min(number("page", 1), 1_000_000),
            per_page=per_page if per_page in PAGE_SIZES else 25)

    def params(self, **changes: Any) -> dict[str, str]:
        """URL parameters of this query with some changed (for links), defaults left out."""
        values = {"type": self.type, "status": self.status, "queue": self.queue,
                  "namespace": self.namespace, "q": self.search, "sort": self.sort,
                  "page": self.page, "per_page": self.per_page, **changes}
        defaults = {"sort": "id", "page": 1, "per_page": 25}
        return {k: str(v) for k, v in values.items() if v not in ("", None)
                and defaults.get(k) != v}


def job_row(machine: StateMachine, job: Mapping[str, Any], status: str) -> dict[str, Any]:
    spec = job["spec"]
    namespace, name = split_key(job["id"])
    return {
        "id": job["id"], "namespace": namespace, "name": name, "type": spec["type"],
        "priority": spec.get("priority", 50),
        "queue": spec.get("queue", "default"), "status": status, "version": job["version"],
        "submit_time": job.get("submit_time"), "periodic": bool(spec.get("schedule")),
        "parent": job.get("parent"), "allocations": machine.allocation_counts(job["id"]),
        "waiting": bool(job.get("unplaced")) and not job["stopped"],
    }


def jobs_page(machine: StateMachine, query: JobQuery) -> dict[str, Any]:
    """One page of jobs after filtering and sorting, and the counts for the pager."""
    jobs = list(machine.jobs.values())
    queues = sorted({j["spec"].get("queue", "default") for j in jobs})
    namespaces = sorted({split_key(j["id"])[0] for j in jobs} | set(machine.namespaces)
                        | {DEFAULT_NAMESPACE})
    selected = []
    for job in jobs:
        spec = job["spec"]
        if query.namespace and split_key(job["id"])[0] != query.namespace:
            continue
        if query.type and spec["type"] != query.type:
            continue
        if query.queue and spec.get("queue", "default") != query.queue:
            continue
        if query.search and query.search not in split_key(job["id"])[1]:
            continue
        selected.append(job)
    # Status is derived from allocations, so it is computed only when a filter or the sort
    # needs it for every job; otherwise only for the rows shown.
    need_status = bool(query.status) or query.sort == "status"
    statuses = {j["id"]: machine.job_status(j) for j in selected} if need_status else {}
    if query.status:
        selected = [j for j in selected if statuses[j["id"]] == query.status]
    key, reverse = query.sort.lstrip("-"), query.sort.startswith("-")
    sort_keys = {
        "id": lambda j: j["id"],
        "priority": lambda j: (j["spec"].get("priority", 50), j["id"]),
        "submitted": lambda j: (j.get("submit_time") or 0, j["id"]),
        "status": lambda j: (statuses[j["id"]], j["id"]),
    }
    selected.sort(key=sort_keys[key], reverse=reverse)
    total = len(selected)
    pages = max(1, -(-total // query.per_page))
    page = min(query.page, pages)
    shown = selected[(page - 1) * query.per_page: page * query.per_page]
    rows = [job_row(machine, j, statuses.get(j["id"]) or machine.job_status(j)) for j in shown]
    return {"rows": rows, "total": total, "all": len(jobs), "page": page, "pages": pages,
            "queues": queues, "namespaces": namespaces}


def next_runs(schedule: str | None, now: float, count: int = 5) -> list[float]:
    if not schedule:
        return []
    ticks = croniter(schedule, datetime.fromtimestamp(now, UTC))
    return [ticks.get_next(float) for _ in range(count)]


def job_detail(machine: StateMachine, job_id: str, now: float) -> dict[str, Any] | None:
    job = machine.jobs.get(job_id)
    if job is None:
        return None
    spec = job["spec"]
    allocs = [machine.allocations[i] for i in list(machine.alloc_ids_by_job.get(job_id, ()))
              if i in machine.allocations]
    allocs.sort(key=lambda a: (a["group"], a.get("index", 0), -a.get("create_index", 0)))
    names = _node_names(machine)
    by_status: dict[str, list[dict[str, Any]]] = {s: [] for s in ALLOC_CLIENT_STATUSES}
    for alloc in allocs:
        by_status.setdefault(alloc["client_status"], []).append(
            alloc_row(alloc, names))
    groups = []
    for group in spec["groups"]:
        mine = [a for a in allocs if a["group"] == group["name"]]
        live = [a for a in mine if a["desired_status"] == "run"
                and a["client_status"] in ("pending", "running")]
        running = sum(1 for a in live if a["client_status"] == "running")
        gang = None
        if group.get("gang"):
            # All or none: either every member is placed, or none is and the gang waits.
            gang = ("complete" if len(live) >= group["count"]
                    else "waiting: nothing placed until all " + str(group["count"]) + " fit"
                    if not live else f"partial: {len(live)} of {group['count']}")
        groups.append({"name": group["name"], "count": group["count"],
                       "resources": group.get("resources") or {},
                       "driver": (group.get("task") or {}).get("driver"),
                       "placed": len(live), "running": running, "gang": gang})
    unplaced = [{"group": g, "explanation": (r or {}).get("explanation", ""),
                 "unplaced": (r or {}).get("unplaced", 0)}
                for g, r in (job.get("unplaced") or {}).items()]
    children = sorted((j for j in list(machine.jobs.values()) if j.get("parent") == job_id),
                      key=lambda j: j.get("launch_time") or 0, reverse=True)[:10]
    return {
        "id": job_id, "namespace": split_key(job_id)[0], "type": spec["type"],
        "priority": spec.get("priority", 50),
        "queue": spec.get("queue", "default"), "status": machine.job_status(job),
        "stopped": job["stopped"], "version": job["version"],
        "submit_time": job.get("submit_time"), "parent": job.get("parent"),
        "schedule": spec.get("schedule"), "depends_on": spec.get("depends_on") or [],
        "next_runs": [] if job["stopped"] else next_runs(spec.get("schedule"), now),
        "children": [{"id": c["id"], "status": machine.job_status(c),
                      "launch_time": c.get("launch_time")} for c in children],
        "groups": groups, "unplaced": unplaced, "by_status": by_status,
        "counts": {s: len(v) for s, v in by_status.items()}, "spec": spec,
        "versions": versions_view(job),
        "replacements": [{**w, "short": short_id(str(w["alloc_id"])),
                          "in_seconds": max(0.0, w["replace_at"] - now)}
                         for w in waiting(spec["groups"], allocs)],
    }


def _node_names(machine: StateMachine) -> dict[str, str]:
    return {n["id"]: n["name"] for n in list(machine.nodes.values())}


def alloc_row(alloc: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": alloc["id"], "short": short_id(alloc["id"]), "job_id": alloc["job_id"],
        "group": alloc["group"], "index": alloc.get("index", 0),
        "node_id": alloc["node_id"], "node": names.get(alloc["node_id"], alloc["node_id"]),
        "desired": alloc["desired_status"], "status": alloc["client_status"],
        "message": alloc.get("message") or "", "exit_code": alloc.get("exit_code"),
    }


def short_id(alloc_id: str) -> str:
    """The distinctive end of an allocation id (they share a long time-ordered prefix)."""
    return alloc_id[-8:] if len(alloc_id) > 8 else alloc_id


def alloc_detail(machine: StateMachine, alloc_id: str) -> dict[str, Any] | None:
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        return None
    node = machine.nodes.get(alloc["node_id"]) or {}
    row = alloc_row(alloc, _node_names(machine))
    # What is known of its life, in order; the state keeps times the agent reported.
    timeline = [("placed", None, f"on {row['node']} (index {alloc.get('create_index')})")]
    if alloc.get("started_at"):
        timeline.append(("started", alloc["started_at"], ""))
    if alloc.get("restarts"):
        timeline.append(("restarted", None, f"{alloc['restarts']} time(s)"))
    if alloc.get("finished_at"):
        what = alloc["client_status"]
        detail = f"exit code {alloc['exit_code']}" if alloc.get("exit_code") is not None else ""
        timeline.append((what, alloc["finished_at"], detail))
    if alloc["desired_status"] != "run":
        timeline.append((f"told to {alloc['desired_status']}", None,
                         f"index {alloc.get('modify_index')}"))
    return {**row, "node_record": {k: node.get(k) for k in (
        "name", "provider", "pool", "region", "zone", "status")},
        "resources": alloc.get("resources") or {}, "restarts": alloc.get("restarts", 0),
        "healthy": alloc.get("healthy"), "ports": alloc.get("ports") or {},
        "timeline": [{"event": e, "time": t, "detail": d} for e, t, d in timeline],
        "live": alloc["client_status"] in ("pending", "running")
        and alloc["desired_status"] == "run",
        "running": alloc["client_status"] == "running" and alloc["desired_status"] == "run",
        "namespace": split_key(str(alloc["job_id"]))[0]}


def nodes_view(machine: StateMachine,
               seen: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The nodes page; ``seen``: the heartbeats this server saw (they are not in the state,
    which holds the last transition only)."""
    usage = allocated_by_node(machine)
    seen = seen or {}
    rows = []
    for node in sorted(list(machine.nodes.values()), key=lambda n: n["name"]):
        used = usage.get(node["id"], {})
        rows.append({
            "id": node["id"], "name": node["name"], "pool": node.get("pool"),
            "provider": node.get("provider"), "zone": node.get("zone"),
            "status": node["status"], "draining": node.get("draining", False),
            "capacity": node.get("capacity") or {}, "used": used,
            "last_heartbeat": max(node.get("last_heartbeat") or 0.0,
                                  seen.get(node["id"], 0.0)) or None,
        })
    return rows


def capacity_by(machine: StateMachine, attribute: str) -> list[dict[str, Any]]:
    """Used and total resources of ready nodes, grouped by one node attribute."""
    usage = allocated_by_node(machine)
    groups: dict[str, dict[str, Any]] = {}
    for node in list(machine.nodes.values()):
        if node["status"] != "ready":
            continue
        key = str(node.get(attribute) or "-")
        entry = groups.setdefault(key, {"name": key, "nodes": 0,
                                        "total": dict.fromkeys(RESOURCE_KEYS, 0),
                                        "used": dict.fromkeys(RESOURCE_KEYS, 0)})
        entry["nodes"] += 1
        capacity = node.get("capacity") or {}
        for k in RESOURCE_KEYS:
            entry["total"][k] += capacity.get(k, 0) or 0
            entry["used"][k] += usage.get(node["id"], {}).get(k, 0) or 0
    for entry in groups.values():
        total, used = entry["total"], entry["used"]
        entry["percent"] = {k: round(100 * used[k] / total[k]) if total[k] else 0
                            for k in RESOURCE_KEYS}
    return sorted(groups.values(), key=lambda e: e["name"])


def overview(machine: StateMachine, status: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "status": status,
        "capacity": {attr: capacity_by(machine, attr) for attr in ("provider", "pool", "zone")},
        "activities": activities(machine, limit=10),
        "counts": {"nodes": len(machine.nodes), "jobs": len(machine.jobs),
                   "allocations": len(machine.allocations)},
    }


def pools_view(machine: StateMachine) -> list[dict[str, Any]]:
    return [pool_view(machine, p)
            for p in sorted(list(machine.pools.values()), key=lambda p: p["name"])]
