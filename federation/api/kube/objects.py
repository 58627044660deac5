"""Records of the state machine shown as Kubernetes objects, lists and Tables. Pure.

A job made from a manifest is shown as the manifest it holds, with the server's metadata
(uid, resourceVersion, generation) and a status computed from its allocations; a job
submitted through ``/v1`` is shown as the Deployment, Job or CronJob it amounts to. A
stopped job is a deleted object (it is absent) unless it is a suspended CronJob. Pods are
allocations: read-only views whose ``spec.nodeName`` is the federation node's name, plus a
``Pending`` pod for each instance the scheduler could not place, so ``kubectl describe``
shows why.

An object's ``resourceVersion`` is the highest modify index among its job and allocations:
it moves whenever its status does, which watches rely on.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from federation.api.kube.manifests import (
    DRIVER_ANNOTATION,
    GANG_ANNOTATION,
    GROUP_NAME,
)
from federation.api.kube.quantity import format_cpu, format_memory
from federation.specs.namespace import DEFAULT_NAMESPACE, split_key

LIVE = ("pending", "running")
JOB_LABEL = "federation.io/job"
ALLOC_ANNOTATION = "federation.io/allocation"


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: the AGE column's format."""
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def uid_of(key: str, create_index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"federation:{key}:{create_index}"))


def pod_name(job_name: str, alloc_id: str) -> str:
    return f"{job_name}-{hashlib.sha256(alloc_id.encode()).hexdigest()[:10]}"


def kind_of(job: Mapping[str, Any]) -> str:
    manifest = job.get("manifest")
    if isinstance(manifest, dict) and manifest.get("kind"):
        return str(manifest["kind"])
    spec = job["spec"]
    if spec["type"] == "service":
        return "Deployment"
    return "CronJob" if spec.get("schedule") else "Job"


def visible(job: Mapping[str, Any]) -> bool:
    """A stopped job is a deleted object, unless it is a suspended CronJob."""
    return not job["stopped"] or bool(job.get("suspended"))


@dataclass
class View:
    """What rendering needs from the state: one consistent read of the tables it uses."""

    jobs: Mapping[str, Mapping[str, Any]]
    allocations_of: Mapping[str, list[Mapping[str, Any]]]
    nodes: Mapping[str, Mapping[str, Any]]
    namespaces: Mapping[str, Mapping[str, Any]]
    status_of: Any  # callable job record -> pending|running|complete|failed|dead
    now: float
    nodes_by_name: dict[Any, Mapping[str, Any]] | None = None  # built on first use

    def node_named(self, name: Any) -> Mapping[str, Any] | None:
        if self.nodes_by_name is None:
            self.nodes_by_name = {n.get("name"): n for n in self.nodes.values()}
        return self.nodes_by_name.get(name)

    def resource_version(self, job: Mapping[str, Any]) -> int:
        allocs = self.allocations_of.get(job["id"], [])
        return max([int(job["modify_index"])] + [int(a["modify_index"]) for a in allocs])


# -- workloads ------------------------------------------------------------------------------
def _container_from_task(task: Mapping[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
    resources = group.get("resources") or {}
    requests: dict[str, Any] = {"cpu": format_cpu(int(resources.get("cpu", 0))),
                                "memory": format_memory(int(resources.get("memory", 0)))}
    if resources.get("gpu"):
        requests["nvidia.com/gpu"] = str(resources["gpu"])
    container: dict[str, Any] = {"name": "task", "command": list(task.get("command") or []),
                                 "resources": {"requests": requests}}
    if task.get("image"):
        container["image"] = task["image"]
    if task.get("env"):
        container["env"] = [{"name": k, "value": v} for k, v in task["env"].items()]
    return container


def synthesized_manifest(job: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest a job submitted through /v1 amounts to (read-only detail for views)."""
    spec = job["spec"]
    namespace, name = split_key(job["id"])
    group = spec["groups"][0]
    task = group.get("task") or {}
    annotations = {DRIVER_ANNOTATION: "exec"} if task.get("driver", "exec") == "exec" else {}
    template: dict[str, Any] = {
        "metadata": {"labels": {JOB_LABEL: name}, "annotations": annotations},
        "spec": {"containers": [_container_from_task(task, group)]}}
    kind = kind_of(job)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {
            "replicas": group["count"], "selector": {"matchLabels": {JOB_LABEL: name}},
            "template": template}}
    job_spec = {"parallelism": group["count"], "completions": group["count"],
                "template": {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}}
    if group.get("gang"):
        meta["annotations"] = {GANG_ANNOTATION: "true"}
    if kind == "CronJob":
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": {
            "schedule": spec["schedule"], "suspend": bool(job.get("suspended")),
            "concurrencyPolicy": "Forbid" if spec.get("prohibit_overlap", True) else "Allow",
            "jobTemplate": {"spec": job_spec}}}
    return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": job_spec}


def _counts(allocs: Iterable[Mapping[str, Any]], version: int, checked: bool) -> dict[str, int]:
    counts = {"live": 0, "updated": 0, "ready": 0, "complete": 0, "failed": 0}
    for alloc in allocs:
        status = alloc["client_status"]
        if status in LIVE:
            counts["live"] += 1
            if alloc.get("job_version") == version and alloc["desired_status"] == "run":
                counts["updated"] += 1
                if status == "running" and (alloc.get("healthy") is True or not checked):
                    counts["ready"] += 1
        elif status == "complete":
            counts["complete"] += 1
        elif status == "failed":
            counts["failed"] += 1
    return counts


def workload(view: View, job: Mapping[str, Any]) -> dict[str, Any]:
    """The Deployment, Job or CronJob object of a job record."""
    manifest = job.get("manifest")
    obj = copy.deepcopy(manifest) if isinstance(manifest, dict) else synthesized_manifest(job)
    namespace, name = split_key(job["id"])
    meta = obj.setdefault("metadata", {})
    created = parse_iso(meta.get("creationTimestamp")) or job["submit_time"]
    meta.update({"name": name, "namespace": namespace,
                 "uid": uid_of(job["id"], job["create_index"]),
                 "resourceVersion": str(view.resource_version(job)),
                 "generation": int(job["version"]), "creationTimestamp": iso(created)})
    group = job["spec"]["groups"][0]
    allocs = view.allocations_of.get(job["id"], [])
    counts = _counts(allocs, job["version"], bool((group.get("task") or {}).get("health")))
    kind = obj.get("kind")
    reason = unplaced_reason(job)
    if kind == "Deployment":
        wanted = int(group["count"])
        available = counts["ready"]
        status: dict[str, Any] = {
            "observedGeneration": int(job["version"]), "replicas": counts["live"],
            "updatedReplicas": counts["updated"], "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": max(0, wanted - available),
            "conditions": [
                {"type": "Available", "status": "True" if available >= wanted else "False",
                 "reason": "MinimumReplicasAvailable" if available >= wanted
                 else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available >= wanted
                 else (reason or "Deployment does not have minimum availability."),
                 "lastUpdateTime": iso(created), "lastTransitionTime": iso(created)},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"
                 if counts["updated"] >= wanted else "ReplicaSetUpdated",
                 "message": f'federation job "{name}" version {job["version"]}',
                 "lastUpdateTime": iso(created), "lastTransitionTime": iso(created)}]}
        for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas",
                    "unavailableReplicas"):
            if not status[key]:
                del status[key]  # the API server omits zero counts
    elif kind == "Job":
        state = view.status_of(job)
        status = {"active": counts["live"], "succeeded": counts["complete"],
                  "failed": counts["failed"], "startTime": iso(job["submit_time"]),
                  "ready": counts["ready"]}
        if state == "complete":
            finished = max([a.get("finished_at") or 0 for a in allocs] or [0]) or None
            status["completionTime"] = iso(finished)
            status["conditions"] = [{"type": "Complete", "status": "True"}]
        elif state == "failed":
            status["conditions"] = [{"type": "Failed", "status": "True",
                                     "reason": "BackoffLimitExceeded"}]
        status = {k: v for k, v in status.items() if v not in (0, None)}
    elif kind == "CronJob":
        children = [j for j in view.jobs.values() if j.get("parent") == job["id"]]
        active = [c for c in children if view.status_of(c) in ("pending", "running")]
        status = {"active": [{"kind": "Job", "namespace": namespace, "apiVersion": "batch/v1",
                              "name": split_key(c["id"])[1]} for c in active]}
        launched = [float(c["launch_time"]) for c in children if c.get("launch_time")]
        if launched:
            status["lastScheduleTime"] = iso(max(launched))
        status = {k: v for k, v in status.items() if v}
    else:
        status = {}
    obj["status"] = status
    return obj


def unplaced_reason(job: Mapping[str, Any]) -> str | None:
    reports = job.get("unplaced") or {}
    parts = []
    for group, report in sorted(reports.items()):
        if isinstance(report, dict):
            text = report.get("explanation") or report.get("reason") or str(report)
        else:
            text = str(report)
        parts.append(text if group == GROUP_NAME else f"{group}: {text}")
    return "; ".join(parts) or None


# -- pods -----------------------------------------------------------------------------------
def shown_allocations(allocs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Allocations that are pods: those meant to run, and stopped ones still running."""
    return [a for a in allocs
            if a["desired_status"] == "run" or a["client_status"] in LIVE]


def pod(view: View, job: Mapping[str, Any], alloc: Mapping[str, Any]) -> dict[str, Any]:
    namespace, name = split_key(job["id"])
    owner = workload_template(job)
    template_meta = owner.get("metadata") or {}
    node = view.nodes.get(alloc["node_id"]) or {}
    status = alloc["client_status"]
    phase = {"pending": "Pending", "running": "Running", "complete": "Succeeded",
             "failed": "Failed", "lost": "Failed", "stopped": "Succeeded"}.get(status, "Unknown")
    checked = bool(((job["spec"]["groups"][0]).get("task") or {}).get("health"))
    ready = status == "running" and (alloc.get("healthy") is True or not checked)
    containers = copy.deepcopy((owner.get("spec") or {}).get("containers") or [])
    started = alloc.get("started_at")
    meta: dict[str, Any] = {
        "name": pod_name(name, alloc["id"]), "namespace": namespace, "uid": alloc["id"],
        "resourceVersion": str(alloc["modify_index"]),
        "creationTimestamp": iso(started or job["submit_time"]),
        "labels": {**(template_meta.get("labels") or {}), JOB_LABEL: name},
        "annotations": {**(template_meta.get("annotations") or {}),
                        ALLOC_ANNOTATION: alloc["id"]},
        "ownerReferences": [{"apiVersion": _api_version(kind_of(job)), "kind": kind_of(job),
                             "name": name, "uid": uid_of(job["id"], job["create_index"]),
                             "controller": True}],
    }
    if alloc["desired_status"] != "run":
        meta["deletionTimestamp"] = iso(view.now)
    state: dict[str, Any]
    if status == "running":
        state = {"running": {"startedAt": iso(started)}}
    elif status == "pending":
        state = {"waiting": {"reason": "ContainerCreating"}}
    else:
        reason = {"complete": "Completed", "stopped": "Stopped"}.get(status, "Error")
        state = {"terminated": {"exitCode": alloc.get("exit_code", 0 if status == "complete"
                                                                 else 1),
                                "reason": reason,
                                "message": alloc.get("message") or "",
                                "startedAt": iso(started),
                                "finishedAt": iso(alloc.get("finished_at"))}}
    container_statuses = [{"name": c.get("name", "task"), "ready": ready,
                           "restartCount": int(alloc.get("restarts") or 0),
                           "image": c.get("image", ""), "imageID": "", "state": state,
                           "started": status == "running"} for c in containers]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node.get("name", alloc["node_id"]), "containers": containers,
                 "restartPolicy": (owner.get("spec") or {}).get("restartPolicy", "Always")},
        "status": {
            "phase": phase, "hostIP": _host_ip(node),
            "startTime": iso(started),
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": container_statuses,
        },
    }


def pending_pod(job: Mapping[str, Any], index: int, reason: str) -> dict[str, Any]:
    """An instance the scheduler could not place, shown as an unschedulable pod."""
    namespace, name = split_key(job["id"])
    owner = workload_template(job)
    template_meta = owner.get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-unplaced-{index}", "namespace": namespace,
                     "uid": uid_of(job["id"], -index - 1),
                     "resourceVersion": str(job["modify_index"]),
                     "creationTimestamp": iso(job["submit_time"]),
                     "labels": {**(template_meta.get("labels") or {}), JOB_LABEL: name}},
        "spec": {"containers": copy.deepcopy((owner.get("spec") or {}).get("containers") or [])},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": reason}]},
    }


def _host_ip(node: Mapping[str, Any]) -> str:
    address = (node.get("labels") or {}).get("federation.io/address", "")
    host = address.split("//")[-1].rsplit(":", 1)[0] if address else ""
    return host


def _api_version(kind: str) -> str:
    return {"Deployment": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "v1")


def workload_template(job: Mapping[str, Any]) -> dict[str, Any]:
    manifest = job.get("manifest")
    obj = manifest if isinstance(manifest, dict) else synthesized_manifest(job)
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return spec.get("template") or {}


def pods_of(view: View, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    pods = [pod(view, job, a) for a in shown_allocations(view.allocations_of.get(job["id"], []))]
    if job["stopped"]:
        return pods
    reports = job.get("unplaced") or {}
    missing = sum(int(r.get("unplaced", 0)) for r in reports.values() if isinstance(r, dict))
    reason = unplaced_reason(job) or "not placed yet"
    pods += [pending_pod(job, i, reason) for i in range(missing)]
    return pods


# -- namespaces -----------------------------------------------------------------------------
def namespace_names(view: View) -> list[str]:
    names = {DEFAULT_NAMESPACE, *view.namespaces}
    names.update(split_key(key)[0] for key, job in view.jobs.items() if visible(job))
    return sorted(names)


def namespace_object(view: View, name: str) -> dict[str, Any]:
    record = view.namespaces.get(name) or {}
    meta: dict[str, Any] = {"name": name, "uid": uid_of(f"namespace:{name}", 0),
                            "resourceVersion": str(record.get("modify_index", 1)),
                            "creationTimestamp": iso(record.get("created_at", 0.0)),
                            "labels": {"kubernetes.io/metadata.name": name,
                                       **(record.get("labels") or {})}}
    if record.get("annotations"):
        meta["annotations"] = dict(record["annotations"])
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


# -- events (why pending) -------------------------------------------------------------------
def events_for(job: Mapping[str, Any], obj: Mapping[str, Any], now: float
               ) -> list[dict[str, Any]]:
    """The scheduler's placement explanation as a ``FailedScheduling`` event on ``obj``."""
    reason = unplaced_reason(job)
    if reason is None:
        return []
    meta = obj["metadata"]
    return [{
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.unplaced", "namespace": meta.get("namespace"),
                     "uid": uid_of(f"event:{meta['uid']}", int(job["modify_index"])),
                     "resourceVersion": str(job["modify_index"]),
                     "creationTimestamp": iso(now)},
        "involvedObject": {"kind": obj["kind"], "name": meta["name"],
                           "namespace": meta.get("namespace"), "uid": meta["uid"],
                           "apiVersion": obj["apiVersion"]},
        "reason": "FailedScheduling", "type": "Warning",
        "message": f"federation scheduler: {reason}",
        "source": {"component": "federation-scheduler"},
        "firstTimestamp": iso(job["submit_time"]), "lastTimestamp": iso(now),
        "count": 1,
    }]


# -- tables ---------------------------------------------------------------------------------
def _column(name: str, kind: str = "string", priority: int = 0, description: str = ""
            ) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "name" if name == "Name" else "",
            "description": description, "priority": priority}


COLUMNS = {
    "Deployment": [_column("Name"), _column("Ready"), _column("Up-to-date", "integer"),
                   _column("Available", "integer"), _column("Age"),
                   _column("Containers", priority=1), _column("Images", priority=1),
                   _column("Selector", priority=1)],
    "Job": [_column("Name"), _column("Status"), _column("Completions"), _column("Duration"),
            _column("Age"), _column("Containers", priority=1), _column("Images", priority=1)],
    "CronJob": [_column("Name"), _column("Schedule"), _column("Suspend", "boolean"),
                _column("Active", "integer"), _column("Last Schedule"), _column("Age")],
    "Pod": [_column("Name"), _column("Ready"), _column("Status"),
            _column("Restarts", "string"), _column("Age"), _column("Node", priority=1),
            _column("Provider", priority=1), _column("Zone", priority=1)],
    "Namespace": [_column("Name"), _column("Status"), _column("Age")],
    "Event": [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
              _column("Message")],
}


def _age(meta: Mapping[str, Any], now: float) -> str:
    created = parse_iso(meta.get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration(now - created)


def _containers(template: Mapping[str, Any]) -> tuple[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return (",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "<exec>")) for c in containers))


def row(obj: Mapping[str, Any], now: float, view: View | None = None) -> list[Any]:
    """The cells of one object's Table row, in ``COLUMNS[kind]`` order."""
    kind, meta = obj["kind"], obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    age = _age(meta, now)
    if kind == "Deployment":
        names, images = _containers(spec.get("template") or {})
        selector = ",".join(f"{k}={v}" for k, v in
                            ((spec.get("selector") or {}).get("matchLabels") or {}).items())
        return [meta["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
                status.get("updatedReplicas", 0), status.get("availableReplicas", 0), age,
                names, images, selector]
    if kind == "Job":
        conditions = {c["type"] for c in status.get("conditions") or []}
        state = "Complete" if "Complete" in conditions else (
            "Failed" if "Failed" in conditions else "Running")
        started = parse_iso(status.get("startTime"))
        finished = parse_iso(status.get("completionTime")) or now
        duration = human_duration(finished - started) if started else ""
        names, images = _containers(spec.get("template") or {})
        return [meta["name"], state,
                f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}", duration, age,
                names, images]
    if kind == "CronJob":
        last = parse_iso(status.get("lastScheduleTime"))
        return [meta["name"], spec.get("schedule"), bool(spec.get("suspend")),
                len(status.get("active") or []),
                human_duration(now - last) if last else "<none>", age]
    if kind == "Pod":
        statuses = status.get("containerStatuses") or []
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
        node_name = spec.get("nodeName") or "<none>"
        provider, zone = "<none>", "<none>"
        node = view.node_named(spec.get("nodeName")) if view is not None else None
        if node is not None:
            provider = node.get("provider") or "<none>"
            zone = node.get("zone") or "<none>"
        return [meta["name"], f"{ready}/{len(statuses) or len(spec.get('containers') or [])}",
                pod_status_text(obj), str(restarts), age, node_name, provider, zone]
    if kind == "Namespace":
        return [meta["name"], (status.get("phase") or "Active"), age]
    if kind == "Event":
        last = parse_iso(obj.get("lastTimestamp"))
        involved = obj.get("involvedObject") or {}
        return [human_duration(now - last) if last else "<unknown>", obj.get("type"),
                obj.get("reason"), f"{str(involved.get('kind', '')).lower()}/"
                f"{involved.get('name', '')}", obj.get("message")]
    return [meta.get("name")]


def pod_status_text(obj: Mapping[str, Any]) -> str:
    """The STATUS column kubectl shows for a pod."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state:
            return str(state["waiting"].get("reason") or "Waiting")
        if "terminated" in state:
            return str(state["terminated"].get("reason") or "Terminated")
    conditions = status.get("conditions") or []
    if any(c.get("reason") == "Unschedulable" for c in conditions):
        return "Pending"
    return str(status.get("phase") or "Unknown")


def table(kind: str, objects: Sequence[Mapping[str, Any]], now: float, resource_version: str,
          view: View | None = None, include_object: str = "Metadata") -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table, the server-side printing ``kubectl get`` asks for."""
    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj, now, view)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {"kind": "PartialObjectMetadata",
                               "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": COLUMNS.get(kind, [_column("Name")]), "rows": rows}


def scale(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = ",".join(f"{k}={v}" for k, v in
                        (((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
                         or {}).items())
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector}}
