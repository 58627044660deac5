"""The pure mapping between member-cluster objects and federation records, and the mirror's
event rules: table-tested without any server."""

from __future__ import annotations

import pytest

from federation.members import translate
from federation.members.mirror import Mirror

CLUSTER = {"name": "east", "pool": "k8s", "labels": {"team": "ml"}, "image": "busybox:1.36"}


def node(name="n1", cpu="4", memory="8Gi", ready="True", taints=(), unschedulable=False,
         labels=None):
    return {"metadata": {"name": name, "uid": "u-1", "labels": {
        "topology.kubernetes.io/zone": "east-a", "topology.kubernetes.io/region": "east",
        "node.kubernetes.io/instance-type": "m5.large", **(labels or {})}},
            "spec": {"taints": list(taints), "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": "2"},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def pod(name, node_name="n1", cpu="500m", memory="1Gi", phase="Running", owned=False,
        init=None):
    labels = {translate.MANAGED_LABEL: "federation", translate.ALLOC_LABEL: name} \
        if owned else {}
    spec = {"nodeName": node_name, "containers": [
        {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    if init:
        spec["initContainers"] = [{"name": "i", "resources": {"limits": init}}]
    return {"metadata": {"name": name, "namespace": "x", "labels": labels}, "spec": spec,
            "status": {"phase": phase}}


@pytest.mark.parametrize(("text", "milli", "mib"), [
    ("2", 2000, 1), ("500m", 500, 1), ("1.5", 1500, 1), ("0.1", 100, 1),
    ("1Gi", None, 1024), ("512Mi", None, 512), ("1G", None, 954), ("3Ki", None, 1),
    ("1e3", 1_000_000, 1), ("bad", 0, 0)])
def test_quantities(text, milli, mib):
    if milli is not None:
        assert translate.cpu_milli(text) == milli
    assert translate.memory_mib(text) == mib


def test_a_ready_node_registers_with_its_topology_labels_taints_and_what_others_leave():
    used = translate.foreign_usage([
        pod("dns", cpu="250m", memory="256Mi"),
        pod("done", cpu="2", memory="2Gi", phase="Succeeded"),   # finished: holds nothing
        pod("ours", cpu="1", memory="1Gi", owned=True),           # federation's own
        pod("init", cpu="100m", memory="128Mi", init={"cpu": "1", "memory": "64Mi"}),
        pod("elsewhere", node_name="n2")])
    taint = {"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"}
    body = translate.registration(CLUSTER, node(taints=[taint]), used["n1"])
    assert body["name"] == "east.n1" and body["cluster"] == "east" and body["pool"] == "k8s"
    assert (body["provider"], body["region"], body["zone"], body["instance_type"]) == (
        "kubernetes", "east", "east-a", "m5.large")
    assert body["capacity"] == {"cpu_milli": 4000 - 250 - 1000, "memory_mib": 8192 - 256 - 128,
                                "gpu": 2}
    assert body["labels"]["team"] == "ml" and body["labels"]["taint.gpu"] == "yes:PreferNoSchedule"
    key = body["labels"][translate.REGISTRATION_LABEL]
    again = translate.registration(CLUSTER, node(taints=[taint]), used["n1"])
    assert again["labels"][translate.REGISTRATION_LABEL] == key
    fuller = translate.registration(CLUSTER, node(taints=[taint]), (3999, 0, 0))
    assert fuller["labels"][translate.REGISTRATION_LABEL] != key
    full = translate.registration(CLUSTER, node(), (9000, 99999, 5))
    assert full["capacity"] == {"cpu_milli": 1, "memory_mib": 1, "gpu": 0}


@pytest.mark.parametrize(("kwargs", "takes"), [
    ({}, True), ({"ready": "False"}, False), ({"ready": "Unknown"}, False),
    ({"unschedulable": True}, False),
    ({"taints": [{"key": "k", "effect": "NoSchedule"}]}, False),
    ({"taints": [{"key": "k", "effect": "NoExecute"}]}, False),
    ({"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}, True)])
def test_which_nodes_take_work(kwargs, takes):
    assert translate.takes_work(node(**kwargs)) is takes


ALLOC = {"id": "0123ABCdef", "job_id": "ml/train", "group": "worker", "index": 3,
         "job_type": "batch", "restart": {"attempts": 2}, "ports": ["http"],
         "resources": {"cpu_milli": 250, "memory_mib": 300, "gpu": 1},
         "task": {"driver": "exec", "command": ["python3", "-m", "train"],
                  "env": {"STAGE": "prod"}, "kill_timeout": "30s",
                  "health": {"type": "http", "port": "http", "path": "/ok", "interval": "5s",
                             "timeout": "1s", "grace": "20s", "failures": 4}}}


def test_an_allocation_becomes_a_pod_bound_to_its_node():
    body = translate.pod_for(ALLOC, CLUSTER, "n1", "node-id-1")
    meta, spec = body["metadata"], body["spec"]
    assert meta["name"] == "fed-0123abcdef" and meta["namespace"] == "default"
    assert meta["labels"][translate.ALLOC_LABEL] == "0123ABCdef"
    assert meta["labels"][translate.JOB_LABEL] == "train"
    assert meta["labels"]["federation.io/namespace"] == "ml"
    assert meta["annotations"]["federation.io/job-id"] == "ml/train"
    assert spec["nodeName"] == "n1" and spec["restartPolicy"] == "OnFailure"
    assert spec["terminationGracePeriodSeconds"] == 30
    (c,) = spec["containers"]
    assert c["image"] == "busybox:1.36" and c["command"] == ["python3", "-m", "train"]
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "300Mi",
                                          "nvidia.com/gpu": "1"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["STAGE"] == "prod" and env["FEDERATION_ALLOC_INDEX"] == "3"
    assert env["FEDERATION_PORT_HTTP"] == "8080"
    assert c["livenessProbe"] == {"httpGet": {"path": "/ok", "port": 8080},
                                  "initialDelaySeconds": 20, "periodSeconds": 5,
                                  "timeoutSeconds": 1, "failureThreshold": 4}
    service = translate.pod_for({**ALLOC, "job_type": "service",
                                 "task": {"driver": "docker", "image": "nginx",
                                          "command": ["nginx"]}}, CLUSTER, "n1", "x")
    assert service["spec"]["restartPolicy"] == "Always"
    assert service["spec"]["containers"][0]["image"] == "nginx"


@pytest.mark.parametrize(("status", "update"), [
    ({"phase": "Pending", "containerStatuses": [
        {"restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
     {"client_status": "pending", "restarts": 0, "message": "ImagePullBackOff"}),
    ({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
      "containerStatuses": [{"restartCount": 3, "state": {"running": {}}}]},
     {"client_status": "running", "restarts": 3, "healthy": False}),
    ({"phase": "Succeeded", "containerStatuses": [
        {"restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]},
     {"client_status": "complete", "restarts": 0, "exit_code": 0, "message": "Completed"}),
    ({"phase": "Failed", "containerStatuses": [
        {"restartCount": 1, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]},
     {"client_status": "failed", "restarts": 1, "exit_code": 137, "message": "OOMKilled"}),
    ({"phase": "Unknown"}, None)])
def test_a_pods_state_becomes_its_allocations_status(status, update):
    assert translate.alloc_update({"status": status}) == update


def _event(kind, name, rv):
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": str(rv)}}}


def test_the_mirror_applies_each_event_once_in_order():
    mirror = Mirror()
    mirror.replace([{"metadata": {"name": "a", "resourceVersion": "5"}}], "5")
    assert not mirror.apply(_event("MODIFIED", "a", 5))       # a replay
    assert mirror.apply(_event("MODIFIED", "a", 6))
    assert mirror.apply(_event("ADDED", "b", 7))
    assert mirror.apply(_event("DELETED", "b", 8))
    assert not mirror.apply(_event("ADDED", "b", 7))          # late replay of a deleted one
    assert mirror.apply(_event("ADDED", "b", 9))              # created again
    assert (mirror.applied, mirror.stale, mirror.resource_version) == (4, 2, "9")
    mirror.bookmark("12")
    assert mirror.resource_version == "12" and set(mirror.items) == {"/a", "/b"}
