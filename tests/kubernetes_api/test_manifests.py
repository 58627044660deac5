"""Manifests as job specs: what each supported field becomes, and every refusal naming its
field."""

from __future__ import annotations

import copy

import pytest

from federation.api.kube.manifests import Invalid, translate
from federation.api.kube.quantity import QuantityError, cpu_millicores, memory_mib
from federation.specs.job import validate_job


def deployment(**spec_extra) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"},
                                           "annotations": {"federation.io/driver": "exec"}},
                              "spec": {"containers": [{
                                  "name": "app", "command": ["sleep"], "args": ["60"],
                                  "env": [{"name": "A", "value": "1"}],
                                  "resources": {"requests": {"cpu": "250m", "memory": "64Mi",
                                                             "nvidia.com/gpu": 1}},
                                  "ports": [{"containerPort": 8080, "name": "http"}],
                                  "readinessProbe": {"httpGet": {"path": "/ok", "port": "http"},
                                                     "periodSeconds": 5},
                              }]}},
                 **spec_extra},
    }


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def test_a_deployment_is_a_service_job_with_one_group_per_pod_template():
    spec = translate(deployment(), "ml").spec
    validate_job(spec)
    assert (spec["id"], spec["namespace"], spec["type"]) == ("web", "ml", "service")
    (group,) = spec["groups"]
    assert group["count"] == 3
    assert group["resources"] == {"cpu": 250, "memory": 64, "gpu": 1}
    assert group["ports"] == ["http"]
    assert group["task"] == {"driver": "exec", "command": ["sleep", "60"], "env": {"A": "1"},
                             "health": {"type": "http", "path": "/ok", "port": "http",
                                        "grace": "0s", "interval": "5s", "timeout": "1s",
                                        "failures": 3}}


def test_node_selector_and_required_affinity_become_constraints():
    manifest = deployment()
    pod_spec(manifest)["nodeSelector"] = {"topology.kubernetes.io/zone": "z1", "gpu": "a100"}
    pod_spec(manifest)["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchExpressions": [
                {"key": "federation.io/provider", "operator": "NotIn", "values": ["gcp"]},
                {"key": "rack", "operator": "In", "values": ["r1", "r2"]},
                {"key": "ssd", "operator": "Exists"},
                {"key": "spot", "operator": "DoesNotExist"}]}]}}}
    pod_spec(manifest)["topologySpreadConstraints"] = [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "ScheduleAnyway"}]
    (group,) = translate(manifest, "default").spec["groups"]
    assert group["constraints"] == [
        {"attribute": "zone", "operator": "=", "value": "z1"},
        {"attribute": "labels.gpu", "operator": "=", "value": "a100"},
        {"attribute": "provider", "operator": "not_in", "value": ["gcp"]},
        {"attribute": "labels.rack", "operator": "in", "value": ["r1", "r2"]},
        {"attribute": "labels.ssd", "operator": "exists"},
        {"attribute": "labels.spot", "operator": "not_exists"}]
    assert group["spread"] == "zone"


def test_rolling_update_surge_and_unavailability_set_how_many_are_replaced_at_once():
    manifest = deployment(strategy={"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}})
    assert translate(manifest, "default").spec["update"] == {"max_parallel": 2}


def test_an_image_without_the_exec_annotation_runs_on_docker():
    manifest = deployment()
    del manifest["spec"]["template"]["metadata"]["annotations"]
    pod_spec(manifest)["containers"][0]["image"] = "busybox:1"
    task = translate(manifest, "default").spec["groups"][0]["task"]
    assert (task["driver"], task["image"]) == ("docker", "busybox:1")


def test_several_containers_run_together_under_one_exec_task():
    manifest = deployment()
    pod_spec(manifest)["containers"].append(
        {"name": "sidecar", "command": ["sleep", "7200"],
         "resources": {"requests": {"cpu": "100m"}}})
    group = translate(manifest, "default").spec["groups"][0]
    assert group["resources"]["cpu"] == 350  # requests are summed
    assert group["task"]["command"][:2] == ["/bin/sh", "-c"]
    assert "env A=1 sleep 60 &" in group["task"]["command"][2]


def test_a_job_is_a_batch_with_its_gang_and_back_off():
    manifest = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "train", "annotations": {"federation.io/gang": "true"}},
                "spec": {"completions": 4, "parallelism": 4, "backoffLimit": 2,
                         "template": {"metadata": {"annotations": {
                             "federation.io/driver": "exec"}}, "spec": {
                             "restartPolicy": "OnFailure",
                             "containers": [{"name": "t", "command": ["true"]}]}}}}
    (group,) = translate(manifest, "default").spec["groups"]
    assert (group["count"], group["gang"], group["restart"]["attempts"]) == (4, True, 2)


def test_a_cronjob_is_a_periodic_batch_and_suspend_travels_with_it():
    manifest = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
                "spec": {"schedule": "0 2 * * *", "concurrencyPolicy": "Forbid",
                         "suspend": True, "jobTemplate": {"spec": {"template": {
                             "metadata": {"annotations": {"federation.io/driver": "exec"}},
                             "spec": {"restartPolicy": "Never",
                                      "containers": [{"name": "t", "command": ["true"]}]}}}}}}
    workload = translate(manifest, "default")
    assert workload.suspend
    assert (workload.spec["schedule"], workload.spec["prohibit_overlap"]) == ("0 2 * * *", True)


def _set(path: str, value):
    def change(manifest: dict) -> None:
        node = manifest
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        node[parts[-1]] = value
    return change


C0 = "spec.template.spec.containers.0"
REFUSED = [
    ("spec.template.spec.volumes", _set("spec.template.spec.volumes", [])),
    ("spec.template.spec.containers[0].workingDir", _set(f"{C0}.workingDir", "/x")),
    ("spec.paused", _set("spec.paused", True)),
    ("spec.template.spec.containers[0].resources.requests[cpu]",
     _set(f"{C0}.resources.requests.cpu", "2x")),
    ("spec.template.spec.containers[0].resources.requests[ephemeral-storage]",
     _set(f"{C0}.resources.requests.ephemeral-storage", "1Gi")),
    ("metadata.name", _set("metadata.name", "Web_1")),
    ("kind", _set("kind", "StatefulSet")),
    ("spec.replicas", _set("spec.replicas", -1)),
    ("spec.template.spec.containers[0].command",
     lambda m: (m["spec"]["template"]["spec"]["containers"][0].pop("command"),
                m["spec"]["template"]["spec"]["containers"][0].pop("args"))),
    ("spec.template.metadata.labels", _set("spec.selector", {"matchLabels": {"app": "x"}})),
    ("spec.template.spec.containers[0].readinessProbe.httpGet.port",
     _set(f"{C0}.readinessProbe.httpGet.port", 9999)),
    ("spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].operator",
     _set("spec.template.spec.affinity", {"nodeAffinity": {
         "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
             "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}]}}})),
]


@pytest.mark.parametrize(("field", "mutate"), REFUSED, ids=[f for f, _ in REFUSED])
def test_what_is_not_implemented_is_refused_naming_the_field(field, mutate):
    manifest = copy.deepcopy(deployment())
    mutate(manifest)
    with pytest.raises(Invalid) as exc:
        translate(manifest, "default")
    assert exc.value.field == field


@pytest.mark.parametrize(("text", "milli"), [("500m", 500), ("2", 2000), (1.5, 1500),
                                             ("0.1", 100), ("2e-1", 200)])
def test_cpu_quantities(text, milli):
    assert cpu_millicores(text) == milli


@pytest.mark.parametrize(("text", "mib"), [("64Mi", 64), ("1Gi", 1024), ("1G", 954),
                                           ("1048576", 1), ("512Ki", 1)])
def test_memory_quantities(text, mib):
    assert memory_mib(text) == mib


@pytest.mark.parametrize("bad", ["2x", "", "1.2.3", "Mi", True, None, "-1"])
def test_bad_quantities(bad):
    with pytest.raises(QuantityError):
        cpu_millicores(bad)


def test_does_not_exist_holds_only_on_nodes_without_the_label():
    from federation.model.constraints import Constraint

    absent = Constraint("labels.spot", "not_exists")
    assert absent.matches(None) and not absent.matches("true")
    assert str(absent) == "labels.spot not exists"
