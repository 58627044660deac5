"""Kubernetes workload manifests as federation job specs. Pure.

``translate(manifest, namespace)`` checks a Deployment, Job or CronJob field by field against
what this endpoint implements (every other field is refused, naming it, so nothing is
silently ignored) and returns the user-form job spec it means, plus whether the job is
suspended. The mapping, which ``docs/kubernetes.md`` tabulates:

- Deployment → ``service`` job; Job → ``batch`` job; CronJob → periodic ``batch`` job.
- The pod template becomes one task group named ``pod``: its containers' requests are summed
  into the group's resources, and a container is one task. ``image`` runs on the ``docker``
  driver; the pod annotation ``federation.io/driver: exec`` runs ``command`` + ``args`` with
  the ``exec`` driver, several containers together under ``/bin/sh`` as one task.
- ``nodeSelector`` and the required node affinity become constraints on node attributes
  (well-known topology labels) or node labels; ``topologySpreadConstraints`` a spread.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.api.kube.quantity import QuantityError, cpu_millicores, devices, memory_mib
from federation.specs.namespace import DEFAULT_NAMESPACE, is_namespace

DRIVER_ANNOTATION = "federation.io/driver"
GANG_ANNOTATION = "federation.io/gang"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
GROUP_NAME = "pod"
DEFAULT_CPU_MILLI = 100
DEFAULT_MEMORY_MIB = 128
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GPU_RESOURCE = "nvidia.com/gpu"

# Node labels Kubernetes users already write, and the node attribute each one means here.
WELL_KNOWN_LABELS = {
    "topology.kubernetes.io/zone": "zone",
    "failure-domain.beta.kubernetes.io/zone": "zone",
    "topology.kubernetes.io/region": "region",
    "failure-domain.beta.kubernetes.io/region": "region",
    "node.kubernetes.io/instance-type": "instance_type",
    "beta.kubernetes.io/instance-type": "instance_type",
    "federation.io/provider": "provider",
    "federation.io/pool": "pool",
    "federation.io/rack": "rack",
    "federation.io/cluster": "cluster",
    "federation.io/node-id": "node.id",
}
OPERATORS = {"In": "in", "NotIn": "not_in", "Exists": "exists",
             "DoesNotExist": "not_exists"}

KINDS = {("apps/v1", "Deployment"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
         ("v1", "Namespace")}


class Invalid(Exception):
    """A manifest field this endpoint refuses: ``field`` in Kubernetes' path form
    (``spec.template.spec.containers[0].resources.requests.cpu``)."""

    def __init__(self, field: str, message: str, reason: str = "FieldValueInvalid") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Workload:
    """What a workload manifest means: the job spec (user form: local id and namespace)
    and whether it is suspended (a CronJob with ``suspend: true``)."""

    spec: dict[str, Any]
    suspend: bool = False


# -- the fields this endpoint understands --------------------------------------------------
# A tree of allowed fields: a dict maps field names to their subtree, ``[tree]`` is a list
# of such items, ``ANY`` accepts any value (checked later, or a free-form map).
ANY: Any = object()
META = {"name": ANY, "namespace": ANY, "labels": ANY, "annotations": ANY,
        # Set by the server; clients echo them back on replace, and they are not spec.
        "uid": ANY, "resourceVersion": ANY, "generation": ANY, "creationTimestamp": ANY,
        "managedFields": ANY, "selfLink": ANY}
PROBE = {"httpGet": {"path": ANY, "port": ANY, "scheme": ANY}, "tcpSocket": {"port": ANY},
         "exec": {"command": ANY}, "initialDelaySeconds": ANY, "periodSeconds": ANY,
         "timeoutSeconds": ANY, "failureThreshold": ANY, "successThreshold": ANY}
CONTAINER = {
    "name": ANY, "image": ANY, "imagePullPolicy": ANY, "command": ANY, "args": ANY,
    "env": [{"name": ANY, "value": ANY}],
    "ports": [{"containerPort": ANY, "name": ANY, "protocol": ANY}],
    "resources": {"requests": ANY, "limits": ANY},
    "readinessProbe": PROBE, "livenessProbe": PROBE,
}
NODE_SELECTOR_TERM = {"matchExpressions": [{"key": ANY, "operator": ANY, "values": ANY}]}
POD_SPEC = {
    "containers": [CONTAINER],
    "nodeSelector": ANY,
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [NODE_SELECTOR_TERM]}}},
    "topologySpreadConstraints": [{"maxSkew": ANY, "topologyKey": ANY,
                                   "whenUnsatisfiable": ANY, "labelSelector": ANY}],
    "restartPolicy": ANY,
    "terminationGracePeriodSeconds": ANY,
}
TEMPLATE = {"metadata": {"labels": ANY, "annotations": ANY, "creationTimestamp": ANY},
            "spec": POD_SPEC}
SELECTOR = {"matchLabels": ANY}
DEPLOYMENT = {
    "apiVersion": ANY, "kind": ANY, "metadata": META, "status": ANY,
    "spec": {"replicas": ANY, "selector": SELECTOR, "template": TEMPLATE,
             "strategy": {"type": ANY, "rollingUpdate": {"maxSurge": ANY,
                                                         "maxUnavailable": ANY}}},
}
JOB_SPEC = {"parallelism": ANY, "completions": ANY, "backoffLimit": ANY, "template": TEMPLATE,
            "selector": SELECTOR, "manualSelector": ANY}
JOB = {"apiVersion": ANY, "kind": ANY, "metadata": META, "status": ANY, "spec": JOB_SPEC}
CRONJOB = {
    "apiVersion": ANY, "kind": ANY, "metadata": META, "status": ANY,
    "spec": {"schedule": ANY, "concurrencyPolicy": ANY, "suspend": ANY,
             "jobTemplate": {"metadata": {"labels": ANY, "annotations": ANY,
                                          "creationTimestamp": ANY}, "spec": JOB_SPEC}},
}
NAMESPACE = {"apiVersion": ANY, "kind": ANY, "metadata": META, "spec": ANY, "status": ANY}
SCHEMAS = {"Deployment": DEPLOYMENT, "Job": JOB, "CronJob": CRONJOB, "Namespace": NAMESPACE}


def check_fields(value: Any, tree: Any, path: str) -> None:
    """Refuse the first field not in ``tree`` (``fieldValidation=Strict`` semantics, always)."""
    if tree is ANY or value is None:
        return
    if isinstance(tree, list):
        if not isinstance(value, list):
            raise Invalid(path, "must be a list")
        for i, item in enumerate(value):
            check_fields(item, tree[0], f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        raise Invalid(path or "<root>", "must be an object")
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key not in tree:
            raise Invalid(where, 'unknown field: Kubernetes does not define it here or '
                          'federation does not implement it', reason="FieldValueNotSupported")
        check_fields(item, tree[key], where)


def check_object(manifest: Any) -> tuple[str, str]:
    """``(apiVersion, kind)`` of a manifest this endpoint can take, or Invalid."""
    if not isinstance(manifest, dict):
        raise Invalid("<root>", "a manifest must be an object")
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(kind, str) or not kind:
        raise Invalid("kind", "Required value", reason="FieldValueRequired")
    if (api_version, kind) not in KINDS:
        supported = ", ".join(f"{v} {k}" for v, k in sorted(KINDS))
        raise Invalid("kind", f"{api_version} {kind} is not supported here; supported kinds: "
                      f"{supported}", reason="FieldValueNotSupported")
    check_fields(manifest, SCHEMAS[kind], "")
    return str(api_version), kind


def check_name(manifest: Mapping[str, Any]) -> str:
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise Invalid("metadata.name", "Required value: name is required",
                      reason="FieldValueRequired")
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise Invalid("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 label "
                      "must consist of lower case alphanumeric characters or '-', start and "
                      "end with an alphanumeric character, and be at most 63 characters")
    return name


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Invalid(field, "must map strings to strings")
    return dict(value)


def _int(value: Any, field: str, minimum: int = 0, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(field, f"Invalid value: {value!r}: must be an integer >= {minimum}")
    return value


def translate(manifest: dict[str, Any], namespace: str) -> Workload:
    """The job a Deployment, Job or CronJob means, in ``namespace``."""
    _, kind = check_object(manifest)
    name = check_name(manifest)
    meta = manifest.get("metadata") or {}
    _string_map(meta.get("labels"), "metadata.labels")
    annotations = _string_map(meta.get("annotations"), "metadata.annotations")
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise Invalid("spec", "Required value", reason="FieldValueRequired")
    if kind == "Deployment":
        return Workload(_deployment(name, namespace, spec))
    if kind == "Job":
        return Workload(_batch(name, namespace, spec, annotations, "spec"))
    if kind == "CronJob":
        return _cronjob(name, namespace, spec)
    raise Invalid("kind", f"{kind} is not a workload")


def _deployment(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    replicas = _int(spec.get("replicas"), "spec.replicas", 0, default=1)
    if replicas == 0:
        raise Invalid("spec.replicas", "Invalid value: 0: federation services run at least one "
                      "replica (delete the Deployment to stop it)")
    template = _template(spec, "spec")
    _check_selector(spec, template, "spec")
    group = _group(template, "spec.template", count=replicas, batch=False)
    return {"id": name, "namespace": namespace, "type": "service", "groups": [group],
            "update": {"max_parallel": _max_parallel(spec.get("strategy"), replicas)}}


def _percent_or_int(value: Any, field: str, replicas: int, round_up: bool) -> int:
    if value is None:
        value = "25%"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}%", value):
        share = replicas * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    raise Invalid(field, f"Invalid value: {value!r}: an integer or a percentage like '25%'")


def _max_parallel(strategy: Any, replicas: int) -> int:
    """How many replicas a rolling update replaces at once: the larger of maxSurge (rounded
    up) and maxUnavailable (rounded down), as the update replaces an instance by starting its
    successor and stopping it together; ``Recreate`` replaces all at once."""
    strategy = strategy or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind == "Recreate":
        if strategy.get("rollingUpdate"):
            raise Invalid("spec.strategy.rollingUpdate",
                          "Forbidden: may not be specified when strategy `type` is 'Recreate'")
        return replicas
    if kind != "RollingUpdate":
        raise Invalid("spec.strategy.type", f"Unsupported value: {kind!r}: supported values: "
                      '"Recreate", "RollingUpdate"', reason="FieldValueNotSupported")
    rolling = strategy.get("rollingUpdate") or {}
    surge = _percent_or_int(rolling.get("maxSurge"), "spec.strategy.rollingUpdate.maxSurge",
                            replicas, round_up=True)
    unavailable = _percent_or_int(rolling.get("maxUnavailable"),
                                  "spec.strategy.rollingUpdate.maxUnavailable", replicas,
                                  round_up=False)
    if surge == 0 and unavailable == 0:
        raise Invalid("spec.strategy.rollingUpdate.maxUnavailable",
                      "Invalid value: 0: may not be 0 when `maxSurge` is 0")
    return max(1, surge, unavailable)


def _batch(name: str, namespace: str, spec: dict[str, Any], annotations: Mapping[str, str],
           at: str) -> dict[str, Any]:
    parallelism = _int(spec.get("parallelism"), f"{at}.parallelism", 1, default=1)
    completions = _int(spec.get("completions"), f"{at}.completions", 1, default=parallelism)
    if spec.get("completions") is not None and spec.get("parallelism") is not None and (
            parallelism < completions):
        raise Invalid(f"{at}.parallelism", f"Invalid value: {parallelism}: federation runs "
                      "every completion at once, so parallelism must be at least completions")
    template = _template(spec, at)
    if spec.get("selector") is not None or spec.get("manualSelector") is not None:
        _check_selector(spec, template, at)
    gang = annotations.get(GANG_ANNOTATION)
    if gang not in (None, "true", "false"):
        raise Invalid(f"metadata.annotations[{GANG_ANNOTATION}]",
                      f"Invalid value: {gang!r}: \"true\" or \"false\"")
    group = _group(template, f"{at}.template", count=completions, batch=True)
    backoff = _int(spec.get("backoffLimit"), f"{at}.backoffLimit", 0, default=6)
    policy = ((template.get("spec") or {}).get("restartPolicy")) or "Never"
    if policy == "OnFailure":
        # The pod is restarted where it runs: the agent's restarts.
        group["restart"] = {"attempts": min(backoff, 100)}
        group["reschedule"] = {"attempts": 0}
    else:
        # A failed pod is replaced by a new one: placed again.
        group["restart"] = {"attempts": 0}
        group["reschedule"] = {"attempts": min(backoff, 100)}
    if gang == "true":
        group["gang"] = True
    return {"id": name, "namespace": namespace, "type": "batch", "groups": [group]}


def _cronjob(name: str, namespace: str, spec: dict[str, Any]) -> Workload:
    schedule = spec.get("schedule")
    if not isinstance(schedule, str) or not schedule.strip():
        raise Invalid("spec.schedule", "Required value", reason="FieldValueRequired")
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy not in ("Allow", "Forbid"):
        raise Invalid("spec.concurrencyPolicy", f"Unsupported value: {policy!r}: supported "
                      'values: "Allow", "Forbid"', reason="FieldValueNotSupported")
    suspend = spec.get("suspend", False)
    if not isinstance(suspend, bool):
        raise Invalid("spec.suspend", "must be true or false")
    template = spec.get("jobTemplate")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        raise Invalid("spec.jobTemplate.spec", "Required value", reason="FieldValueRequired")
    annotations = _string_map((template.get("metadata") or {}).get("annotations"),
                              "spec.jobTemplate.metadata.annotations")
    job = _batch(name, namespace, template["spec"], annotations, "spec.jobTemplate.spec")
    job["schedule"] = schedule
    job["prohibit_overlap"] = policy == "Forbid"
    return Workload(job, suspend=suspend)


def _template(spec: Mapping[str, Any], at: str) -> dict[str, Any]:
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        raise Invalid(f"{at}.template.spec", "Required value", reason="FieldValueRequired")
    return template


def _check_selector(spec: Mapping[str, Any], template: Mapping[str, Any], at: str) -> None:
    """The selector must select the template's labels, as the API server insists."""
    selector = spec.get("selector")
    match = _string_map((selector or {}).get("matchLabels"), f"{at}.selector.matchLabels")
    labels = _string_map((template.get("metadata") or {}).get("labels"),
                         f"{at}.template.metadata.labels")
    if at == "spec" and not match:
        raise Invalid(f"{at}.selector", "Required value", reason="FieldValueRequired")
    if any(labels.get(k) != v for k, v in match.items()):
        raise Invalid(f"{at}.template.metadata.labels", "Invalid value: `selector` does not "
                      "match template `labels`")


def _group(template: Mapping[str, Any], at: str, *, count: int, batch: bool) -> dict[str, Any]:
    pod = template["spec"]
    annotations = _string_map((template.get("metadata") or {}).get("annotations"),
                              f"{at}.metadata.annotations")
    _string_map((template.get("metadata") or {}).get("labels"), f"{at}.metadata.labels")
    driver = annotations.get(DRIVER_ANNOTATION, "docker")
    if driver not in ("exec", "docker"):
        raise Invalid(f"{at}.metadata.annotations[{DRIVER_ANNOTATION}]",
                      f"Unsupported value: {driver!r}: supported values: \"exec\", \"docker\"",
                      reason="FieldValueNotSupported")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise Invalid(f"{at}.spec.containers", "Required value", reason="FieldValueRequired")
    policy = pod.get("restartPolicy")
    allowed = ("Never", "OnFailure") if batch else ("Always",)
    if policy is not None and policy not in allowed:
        raise Invalid(f"{at}.spec.restartPolicy", f"Unsupported value: {policy!r}: supported "
                      f"values: {', '.join(repr(a) for a in allowed)}",
                      reason="FieldValueNotSupported")
    names: set[str] = set()
    cpu, memory, gpu = 0, 0, 0
    ports: list[str] = []
    port_numbers: dict[int, str] = {}
    commands: list[tuple[str, list[str], dict[str, str]]] = []
    images: list[str] = []
    checks: list[dict[str, Any]] = []
    for i, container in enumerate(containers):
        where = f"{at}.spec.containers[{i}]"
        if not isinstance(container, dict):
            raise Invalid(where, "must be an object")
        cname = container.get("name")
        if not isinstance(cname, str) or not DNS_LABEL.match(cname):
            raise Invalid(f"{where}.name", f"Invalid value: {cname!r}: a lowercase RFC 1123 "
                          "label is required")
        if cname in names:
            raise Invalid(f"{where}.name", f"Duplicate value: {cname!r}",
                          reason="FieldValueDuplicate")
        names.add(cname)
        c_cpu, c_memory, c_gpu = _requests(container.get("resources"), f"{where}.resources")
        cpu, memory, gpu = cpu + c_cpu, memory + c_memory, gpu + c_gpu
        for j, port in enumerate(container.get("ports") or []):
            pname = _port(port, f"{where}.ports[{j}]", port_numbers, ports)
            ports.append(pname)
        env = {}
        for j, item in enumerate(container.get("env") or []):
            key = item.get("name")
            if not isinstance(key, str) or not ENV_NAME.match(key):
                raise Invalid(f"{where}.env[{j}].name", f"Invalid value: {key!r}: a valid "
                              "environment variable name is required")
            value = item.get("value", "")
            if not isinstance(value, str):
                raise Invalid(f"{where}.env[{j}].value", "must be a string")
            env[key] = value
        command = _strings(container.get("command"), f"{where}.command")
        args = _strings(container.get("args"), f"{where}.args")
        image = container.get("image")
        if driver == "docker":
            if not isinstance(image, str) or not image:
                raise Invalid(f"{where}.image", "Required value", reason="FieldValueRequired")
            images.append(image)
        if not command + args:
            raise Invalid(f"{where}.command", "Required value: federation starts a container "
                          "with its command and args (the image's default command is not "
                          "used)", reason="FieldValueRequired")
        commands.append((cname, command + args, env))
        for probe_field in ("livenessProbe", "readinessProbe"):
            probe = container.get(probe_field)
            if probe is not None:
                checks.append(_probe(probe, f"{where}.{probe_field}", port_numbers, ports))
    if len(checks) > 1 and any(c != checks[0] for c in checks[1:]):
        raise Invalid(f"{at}.spec.containers", "Forbidden: federation runs one health check "
                      "per pod: give one probe, or identical liveness and readiness probes")
    task: dict[str, Any] = {"driver": driver}
    if len(commands) == 1:
        cname, argv, env = commands[0]
        task.update(command=argv, env=env)
    elif driver == "exec":
        task.update(command=["/bin/sh", "-c", _supervisor(commands)], env={})
    else:
        raise Invalid(f"{at}.spec.containers", "Forbidden: several containers in one pod run "
                      f"only with the exec driver (annotation {DRIVER_ANNOTATION}: exec)")
    if driver == "docker":
        task["image"] = images[0]
    if checks:
        task["health"] = checks[0]
    grace = pod.get("terminationGracePeriodSeconds")
    if grace is not None:
        task["kill_timeout"] = f"{_int(grace, f'{at}.spec.terminationGracePeriodSeconds')}s"
    group: dict[str, Any] = {
        "name": GROUP_NAME, "count": count, "task": task, "ports": ports,
        "resources": {"cpu": cpu or DEFAULT_CPU_MILLI, "memory": memory or DEFAULT_MEMORY_MIB,
                      "gpu": gpu},
        "constraints": _constraints(pod, f"{at}.spec"),
    }
    spread = _spread(pod.get("topologySpreadConstraints"), f"{at}.spec")
    if spread is not None:
        group["spread"] = spread
    return group


def _supervisor(commands: list[tuple[str, list[str], dict[str, str]]]) -> str:
    """A POSIX shell script running every container's command at once, each with its own
    environment (``env``, so nothing is interpreted by the shell); it stops them all on TERM
    and ends when they have all ended, with the last failure's status."""
    lines = ["trap 'kill 0' TERM INT", "pids=''"]
    for cname, argv, env in commands:
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        run = " ".join(shlex.quote(a) for a in argv)
        lines.append(f"# container {cname}")
        lines.append(f"env {assignments} {run} &")
        lines.append('pids="$pids $!"')
    lines += ["status=0", "for pid in $pids; do wait $pid || status=$?; done", "exit $status"]
    return "\n".join(lines)


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(field, "must be a list of strings")
    return list(value)


def _requests(resources: Any, at: str) -> tuple[int, int, int]:
    """(millicores, MiB, GPUs) a container asks for: its requests, else its limits (as the
    API server defaults requests to limits)."""
    resources = resources or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for part, values in (("requests", requests), ("limits", limits)):
        if not isinstance(values, dict):
            raise Invalid(f"{at}.{part}", "must be an object")
        for key in values:
            if key not in ("cpu", "memory", GPU_RESOURCE):
                raise Invalid(f"{at}.{part}[{key}]", f"Unsupported value: {key!r}: supported "
                              f'resources: "cpu", "memory", "{GPU_RESOURCE}"',
                              reason="FieldValueNotSupported")
    parsers: dict[str, Callable[[object], int]] = {
        "cpu": cpu_millicores, "memory": memory_mib, GPU_RESOURCE: devices}
    values = {}
    for key, parse in parsers.items():
        part = "requests" if key in requests else "limits"
        raw = requests.get(key, limits.get(key))
        if raw is None:
            values[key] = 0
            continue
        try:
            values[key] = parse(raw)
        except QuantityError as exc:
            raise Invalid(f"{at}.{part}[{key}]", f"Invalid value: {raw!r}: {exc}") from None
    if GPU_RESOURCE in requests and GPU_RESOURCE in limits and requests[GPU_RESOURCE] != limits[
            GPU_RESOURCE]:
        raise Invalid(f"{at}.requests[{GPU_RESOURCE}]",
                      "Invalid value: must be equal to the limit")
    return values["cpu"], values["memory"], values[GPU_RESOURCE]


def _port(port: Any, at: str, numbers: dict[int, str], taken: list[str]) -> str:
    number = port.get("containerPort")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise Invalid(f"{at}.containerPort", f"Invalid value: {number!r}: must be between 1 "
                      "and 65535, inclusive")
    protocol = port.get("protocol", "TCP")
    if protocol != "TCP":
        raise Invalid(f"{at}.protocol", f"Unsupported value: {protocol!r}: supported values: "
                      '"TCP"', reason="FieldValueNotSupported")
    name = port.get("name") or f"port{number}"
    clean = name.replace("-", "_")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", clean):
        raise Invalid(f"{at}.name", f"Invalid value: {name!r}: must start with a letter and hold "
                      "at most 32 lowercase letters, digits and '-'")
    if clean in taken or number in numbers:
        raise Invalid(at, "Duplicate value: a port of this pod has the same name or number",
                      reason="FieldValueDuplicate")
    numbers[number] = clean
    return clean


def _probe_port(port: Any, at: str, numbers: Mapping[int, str], names: list[str]) -> str:
    if isinstance(port, int) and not isinstance(port, bool) and port in numbers:
        return numbers[port]
    if isinstance(port, str) and port.replace("-", "_") in names:
        return port.replace("-", "_")
    raise Invalid(at, f"Invalid value: {port!r}: must name or number one of the container's "
                  "ports (the task listens on the port federation gives it)")


def _probe(probe: Any, at: str, numbers: Mapping[int, str], names: list[str]) -> dict[str, Any]:
    kinds = [k for k in ("httpGet", "tcpSocket", "exec") if probe.get(k) is not None]
    if len(kinds) != 1:
        raise Invalid(at, "Invalid value: exactly one of httpGet, tcpSocket and exec is needed")
    check: dict[str, Any] = {}
    if kinds[0] == "httpGet":
        http = probe["httpGet"]
        if http.get("scheme", "HTTP") != "HTTP":
            raise Invalid(f"{at}.httpGet.scheme", "Unsupported value: only HTTP",
                          reason="FieldValueNotSupported")
        check = {"type": "http", "path": http.get("path") or "/",
                 "port": _probe_port(http.get("port"), f"{at}.httpGet.port", numbers, names)}
    elif kinds[0] == "tcpSocket":
        check = {"type": "tcp", "port": _probe_port(probe["tcpSocket"].get("port"),
                                                    f"{at}.tcpSocket.port", numbers, names)}
    else:
        command = _strings(probe["exec"].get("command"), f"{at}.exec.command")
        if not command:
            raise Invalid(f"{at}.exec.command", "Required value", reason="FieldValueRequired")
        check = {"type": "command", "command": command}
    success = probe.get("successThreshold", 1)
    if success != 1:
        raise Invalid(f"{at}.successThreshold", f"Invalid value: {success!r}: must be 1")
    check["grace"] = f"{_int(probe.get('initialDelaySeconds'), f'{at}.initialDelaySeconds', 0, 0)}s"
    check["interval"] = f"{_int(probe.get('periodSeconds'), f'{at}.periodSeconds', 1, 10)}s"
    check["timeout"] = f"{_int(probe.get('timeoutSeconds'), f'{at}.timeoutSeconds', 1, 1)}s"
    check["failures"] = _int(probe.get("failureThreshold"), f"{at}.failureThreshold", 1, 3)
    return check


def node_attribute(label: str) -> str:
    """The node attribute a Kubernetes node label means here."""
    return WELL_KNOWN_LABELS.get(label, f"labels.{label}")


def _constraints(pod: Mapping[str, Any], at: str) -> list[dict[str, Any]]:
    constraints: list[dict[str, Any]] = [
        {"attribute": node_attribute(key), "operator": "=", "value": value}
        for key, value in _string_map(pod.get("nodeSelector"), f"{at}.nodeSelector").items()]
    affinity = (pod.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return constraints
    where = f"{at}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        raise Invalid(f"{where}.nodeSelectorTerms", "Invalid value: federation takes exactly "
                      "one node selector term (its expressions must all hold; terms would be "
                      "alternatives)")
    for i, expression in enumerate(terms[0].get("matchExpressions") or []):
        here = f"{where}.nodeSelectorTerms[0].matchExpressions[{i}]"
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values")
        if not isinstance(key, str) or not key:
            raise Invalid(f"{here}.key", "Required value", reason="FieldValueRequired")
        if operator not in OPERATORS:
            supported = ", ".join(f'"{o}"' for o in OPERATORS)
            raise Invalid(f"{here}.operator", f"Unsupported value: {operator!r}: supported "
                          f"values: {supported}", reason="FieldValueNotSupported")
        if operator in ("Exists", "DoesNotExist"):
            if values:
                raise Invalid(f"{here}.values", "Forbidden: may not be specified when "
                              f"`operator` is '{operator}'")
            constraints.append({"attribute": node_attribute(key),
                                "operator": OPERATORS[operator]})
            continue
        if not isinstance(values, list) or not values or not all(
                isinstance(v, str) for v in values):
            raise Invalid(f"{here}.values", "Required value: must be specified when `operator` "
                          "is 'In' or 'NotIn'", reason="FieldValueRequired")
        constraints.append({"attribute": node_attribute(key), "operator": OPERATORS[operator],
                            "value": list(values)})
    return constraints


def _spread(constraints: Any, at: str) -> str | None:
    if not constraints:
        return None
    if len(constraints) > 1:
        raise Invalid(f"{at}.topologySpreadConstraints", "Invalid value: federation spreads "
                      "a pod's replicas over one topology key")
    first = constraints[0]
    key = first.get("topologyKey")
    if not isinstance(key, str) or not key:
        raise Invalid(f"{at}.topologySpreadConstraints[0].topologyKey", "Required value",
                      reason="FieldValueRequired")
    _int(first.get("maxSkew"), f"{at}.topologySpreadConstraints[0].maxSkew", 1, 1)
    when = first.get("whenUnsatisfiable", "DoNotSchedule")
    if when not in ("DoNotSchedule", "ScheduleAnyway"):
        raise Invalid(f"{at}.topologySpreadConstraints[0].whenUnsatisfiable",
                      f"Unsupported value: {when!r}", reason="FieldValueNotSupported")
    return node_attribute(key)


def namespace_of(manifest: Mapping[str, Any], request_namespace: str | None) -> str:
    """The namespace a namespaced object goes to: its own, which must agree with the URL's."""
    given = (manifest.get("metadata") or {}).get("namespace")
    if given is not None and request_namespace is not None and given != request_namespace:
        raise Invalid("metadata.namespace", "Invalid value: the namespace of the provided "
                      "object does not match the namespace sent on the request",
                      reason="FieldValueInvalid")
    chosen = given or request_namespace or DEFAULT_NAMESPACE
    if not is_namespace(chosen):
        raise Invalid("metadata.namespace", f"Invalid value: {chosen!r}: a lowercase RFC 1123 "
                      "label is required")
    return str(chosen)


def is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                 "selfLink")


def stored_manifest(manifest: Mapping[str, Any], namespace: str, created: str | None
                    ) -> dict[str, Any]:
    """A manifest as kept with its job: without status and server-owned metadata, with its
    namespace and creation time."""
    kept = {k: v for k, v in manifest.items() if k != "status"}
    meta = {k: v for k, v in (manifest.get("metadata") or {}).items()
            if k not in SERVER_FIELDS}
    meta["namespace"] = namespace
    meta["creationTimestamp"] = created
    kept["metadata"] = meta
    return kept

