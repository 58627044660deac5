"""The pure mapping between a member cluster's objects and federation's records.

- a Kubernetes Node (and the pods on it that federation does not own) → a node registration
  (``provider: kubernetes``, ``cluster``, region/zone from the topology labels, labels and
  taints, capacity = allocatable minus the requests of the pods federation does not own);
- an allocation → the Pod that runs it, bound to its node (``spec.nodeName``);
- a Pod's phase, restarts and exit code → the allocation's client status.

No I/O here: ``federation.members.connector`` does the calls.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from federation.specs.duration import parse_duration

PROVIDER = "kubernetes"
ALLOC_LABEL = "federation.io/allocation"
JOB_LABEL = "federation.io/job"
CLUSTER_LABEL = "federation.io/cluster"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "federation"
REGISTRATION_LABEL = "federation.io/registration"
POD_NAMESPACE = "default"
CONTAINER = "task"
FIRST_PORT = 8080
HARD_TAINTS = ("NoSchedule", "NoExecute")
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")
_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3,
             "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


# -- quantities --------------------------------------------------------------------------
def quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``2``, ``1.5Gi``, ``1e3``) as a number;
    0 when it cannot be read."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and not (suffix == "E" and re.search(r"\de[+-]?\d+$", text)):
            try:
                return Decimal(text[: -len(suffix)]) * Decimal(str(_SUFFIXES[suffix]))
            except InvalidOperation:
                return Decimal(0)
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


def cpu_milli(value: Any) -> int:
    return int(math.ceil(quantity(value) * 1000))


def memory_mib(value: Any) -> int:
    return int(math.ceil(quantity(value) / (1 << 20)))


# -- nodes -------------------------------------------------------------------------------
def node_name(cluster: str, name: str) -> str:
    """The federation node name of a member node: unique across the pool."""
    return f"{cluster}.{name}"


def is_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def takes_work(node: Mapping[str, Any]) -> bool:
    """Ready, not cordoned, and without a taint federation's pods would not tolerate."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    if any(t.get("effect") in HARD_TAINTS for t in spec.get("taints") or []):
        return False
    return is_ready(node)


def is_owned(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_LABEL) == MANAGED_BY and bool(labels.get(ALLOC_LABEL))


def holds_resources(pod: Mapping[str, Any]) -> bool:
    """A pod that still counts against its node: bound and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return bool((pod.get("spec") or {}).get("nodeName")) and phase not in ("Succeeded",
                                                                            "Failed")


def pod_requests(pod: Mapping[str, Any]) -> tuple[int, int, int]:
    """(millicores, MiB, GPUs) a pod requests: its containers' requests (else limits)
    summed, or its largest init container's if larger, as the Kubernetes scheduler counts."""
    spec = pod.get("spec") or {}

    def one(container: Mapping[str, Any]) -> tuple[int, int, int]:
        res = container.get("resources") or {}
        asks = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return (cpu_milli(asks.get("cpu", 0)), memory_mib(asks.get("memory", 0)),
                int(quantity(asks.get("nvidia.com/gpu", 0))))

    total = [0, 0, 0]
    for container in spec.get("containers") or []:
        for i, amount in enumerate(one(container)):
            total[i] += amount
    for container in spec.get("initContainers") or []:
        for i, amount in enumerate(one(container)):
            total[i] = max(total[i], amount)
    return total[0], total[1], total[2]


def foreign_usage(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """Per Kubernetes node name, what the pods federation does not own request."""
    usage: dict[str, list[int]] = {}
    for pod in pods:
        if is_owned(pod) or not holds_resources(pod):
            continue
        sums = usage.setdefault(pod["spec"]["nodeName"], [0, 0, 0])
        for i, amount in enumerate(pod_requests(pod)):
            sums[i] += amount
    return {name: (s[0], s[1], s[2]) for name, s in usage.items()}


def registration(cluster: Mapping[str, Any], node: Mapping[str, Any],
                 used: tuple[int, int, int] = (0, 0, 0)) -> dict[str, Any]:
    """The ``POST /v1/nodes`` body for one member node. Capacity is what is left for
    federation: allocatable minus what the pods federation does not own request (at least
    1 millicore and 1 MiB, the smallest capacity a node may have: a full node)."""
    meta = node.get("metadata") or {}
    kube_labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    labels: dict[str, str] = {}
    for key, value in kube_labels.items():
        if _LABEL_KEY.match(key) and len(value) <= 253:
            labels[key] = value
    for taint in (node.get("spec") or {}).get("taints") or []:
        key = f"taint.{taint.get('key', '')}"
        if _LABEL_KEY.match(key):
            value = f"{taint.get('value') or ''}:{taint.get('effect') or ''}"
            labels[key] = value[:253]
    labels.update(cluster.get("labels") or {})
    body = {
        "name": node_name(cluster["name"], meta["name"]),
        "pool": cluster["pool"],
        "provider": PROVIDER,
        "cluster": cluster["name"],
        "region": _first(kube_labels, REGION_LABELS),
        "zone": _first(kube_labels, ZONE_LABELS),
        "instance_type": _first(kube_labels, INSTANCE_TYPE_LABELS),
        "instance_id": str(meta.get("uid") or "")[:128],
        "labels": labels,
        "capacity": {
            "cpu_milli": max(1, cpu_milli(allocatable.get("cpu", 0)) - used[0]),
            "memory_mib": max(1, memory_mib(allocatable.get("memory", 0)) - used[1]),
            "gpu": max(0, int(quantity(allocatable.get("nvidia.com/gpu", 0))) - used[2]),
        },
    }
    # The registration's fingerprint travels as a label: with the cluster secret, any server
    # derives the node token of this registration from it (a new leader's connector too).
    digest = hashlib.sha256(repr(sorted(_flat(body))).encode()).hexdigest()[:40]
    body["labels"][REGISTRATION_LABEL] = f"member-{digest}"
    return body


def _first(labels: Mapping[str, str], keys: Iterable[str]) -> str:
    for key in keys:
        if labels.get(key):
            return labels[key][:63]
    return ""


def _flat(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in body.items():
        if isinstance(value, Mapping):
            out += [(f"{key}.{k}", str(v)) for k, v in value.items()]
        else:
            out.append((key, str(value)))
    return out


# -- pods --------------------------------------------------------------------------------
def label_value(text: str) -> str:
    """A string made fit for a label value (63 characters of [A-Za-z0-9_.-])."""
    cleaned = _LABEL_VALUE.sub(".", text)[:63].strip("._-")
    return cleaned or "x"


def pod_name(alloc_id: str) -> str:
    return f"fed-{alloc_id.lower()}"[:63]


def pod_for(alloc: Mapping[str, Any], cluster: Mapping[str, Any], kube_node: str,
            federation_node_id: str) -> dict[str, Any]:
    """The Pod that runs one allocation on ``kube_node``: bound by ``spec.nodeName``,
    labelled with the allocation and job, with the task's image, command, env, resources
    and health check."""
    from federation.specs.namespace import split_key

    task = alloc.get("task") or {}
    res = alloc.get("resources") or {}
    namespace, job = split_key(str(alloc["job_id"]))
    ports = {name: FIRST_PORT + i for i, name in enumerate(alloc.get("ports") or [])}
    env = {str(k): str(v) for k, v in (task.get("env") or {}).items()}
    env.update({"FEDERATION_ALLOC_ID": str(alloc["id"]), "FEDERATION_JOB_ID": job,
                "FEDERATION_NAMESPACE": namespace,
                "FEDERATION_ALLOC_INDEX": str(alloc.get("index", 0)),
                "FEDERATION_GROUP": str(alloc.get("group", "")),
                "FEDERATION_NODE_ID": federation_node_id})
    env.update({f"FEDERATION_PORT_{name.upper()}": str(port) for name, port in ports.items()})
    amounts = {"cpu": f"{int(res.get('cpu_milli') or 0)}m",
               "memory": f"{int(res.get('memory_mib') or 0)}Mi"}
    gpus = int(math.ceil(float(res.get("gpu") or 0)))
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": task.get("image") or cluster.get("image") or "busybox:1.36",
        "command": list(task.get("command") or []),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
    }
    if ports:
        container["ports"] = [{"name": name[:15].replace("_", "-"), "containerPort": port,
                               "protocol": "TCP"} for name, port in ports.items()]
    health = task.get("health") or alloc.get("health")
    probe = _probe(health, ports) if health else None
    if probe is not None:
        container["livenessProbe"] = probe
        container["readinessProbe"] = dict(probe)
    restart = alloc.get("restart") or {}
    if alloc.get("job_type") == "batch":
        policy = "OnFailure" if int(restart.get("attempts", 0) or 0) > 0 else "Never"
    else:
        policy = "Always"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod_name(str(alloc["id"])), "namespace": POD_NAMESPACE,
            "labels": {ALLOC_LABEL: label_value(str(alloc["id"])), JOB_LABEL: label_value(job),
                       "federation.io/namespace": label_value(namespace),
                       "federation.io/group": label_value(str(alloc.get("group", ""))),
                       CLUSTER_LABEL: label_value(str(cluster["name"])),
                       MANAGED_LABEL: MANAGED_BY},
            "annotations": {"federation.io/allocation-id": str(alloc["id"]),
                            "federation.io/job-id": str(alloc["job_id"]),
                            "federation.io/node-id": federation_node_id},
        },
        "spec": {
            "nodeName": kube_node,
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": int(_seconds(task.get("kill_timeout"), 5)),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [container],
        },
    }


def _seconds(value: Any, default: float) -> float:
    try:
        return parse_duration(value) if value is not None else default
    except (ValueError, TypeError):
        return default


def _probe(health: Mapping[str, Any], ports: Mapping[str, int]) -> dict[str, Any] | None:
    kind = health.get("type")
    probe: dict[str, Any] = {
        "initialDelaySeconds": int(_seconds(health.get("grace"), 10)),
        "periodSeconds": max(1, int(_seconds(health.get("interval"), 10))),
        "timeoutSeconds": max(1, int(_seconds(health.get("timeout"), 2))),
        "failureThreshold": int(health.get("failures") or 3),
    }
    port = ports.get(str(health.get("port") or ""), next(iter(ports.values()), FIRST_PORT))
    if kind == "http":
        probe["httpGet"] = {"path": health.get("path") or "/", "port": port}
    elif kind == "tcp":
        probe["tcpSocket"] = {"port": port}
    elif kind == "command" and health.get("command"):
        probe["exec"] = {"command": list(health["command"])}
    else:
        return None
    return probe


def pod_alloc_id(pod: Mapping[str, Any]) -> str | None:
    meta = pod.get("metadata") or {}
    return (meta.get("annotations") or {}).get("federation.io/allocation-id") or (
        meta.get("labels") or {}).get(ALLOC_LABEL)


def alloc_update(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The allocation status a pod's state amounts to (``None``: nothing to say yet)."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    containers = status.get("containerStatuses") or []
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    update: dict[str, Any] = {"restarts": restarts}
    if phase == "Pending":
        update["client_status"] = "pending"
        waiting = [((c.get("state") or {}).get("waiting") or {}) for c in containers]
        reasons = [str(w["reason"]) for w in waiting if w.get("reason")]
        if reasons:
            update["message"] = ", ".join(reasons)
    elif phase == "Running":
        update["client_status"] = "running"
        ready = [c for c in (status.get("conditions") or []) if c.get("type") == "Ready"]
        if ready:
            update["healthy"] = ready[0].get("status") == "True"
    elif phase in ("Succeeded", "Failed"):
        update["client_status"] = "complete" if phase == "Succeeded" else "failed"
        ended = [((c.get("state") or {}).get("terminated") or {}) for c in containers]
        codes = [int(t["exitCode"]) for t in ended if t.get("exitCode") is not None]
        update["exit_code"] = int(codes[0]) if codes else (0 if phase == "Succeeded" else 1)
        reasons = [str(t["reason"]) for t in ended if t.get("reason")]
        if reasons or status.get("reason"):
            update["message"] = ", ".join(reasons) or str(status.get("reason"))
    else:
        return None
    return update


def differs(update: Mapping[str, Any], alloc: Mapping[str, Any]) -> bool:
    return any(alloc.get(k) != v for k, v in update.items() if k != "message")
