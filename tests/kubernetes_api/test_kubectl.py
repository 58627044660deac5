"""The real kubectl against a real server and two agents: apply, re-apply, read, scale,
delete, logs, describe, and refusals, as a kubectl user sees them."""

from __future__ import annotations

import time

import httpx

from tests.agent.conftest import processes_under
from tests.harness import wait_for
from tests.kubernetes_api.conftest import KubeCluster


def web(replicas: int = 3, env: str = "[{name: STAGE, value: one}]", sidecar: str = "",
        name: str = "web", cpu: str = "250m") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  strategy:  # replace every replica at once: these tests are not about rollout pacing
    rollingUpdate: {{maxSurge: 100%}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{federation.io/driver: exec}}
    spec:
      containers:
      - name: app
        image: busybox
        command: ["sh", "-c", "echo started $STAGE; exec sleep 3600"]
        env: {env}
        resources:
          requests: {{cpu: {cpu}, memory: 64Mi}}
{sidecar}"""


SIDECAR = """\
      - name: sidecar
        command: ["sleep", "3600"]
"""


def test_kubectl_discovers_the_served_kinds(kube: KubeCluster) -> None:
    out = kube.kubectl("api-resources", "--no-headers").stdout
    names = {line.split()[0] for line in out.splitlines()}
    assert {"deployments", "jobs", "cronjobs", "pods", "namespaces"} <= names


def test_apply_reapply_unchanged_wide_and_delete(kube: KubeCluster) -> None:
    assert "deployment.apps/web created" in kube.apply(web()).stdout
    pods = kube.wait_pods("app=web", 3)
    assert {p["spec"]["nodeName"] for p in pods} <= {"k1", "k2"}

    # An edited file arrives as a strategic merge patch: env changed, a sidecar added,
    # replicas 4, and the cpu request (not in the patch) kept.
    out = kube.apply(web(replicas=4, env="[{name: STAGE, value: two}]", sidecar=SIDECAR))
    assert "deployment.apps/web configured" in out.stdout
    deploy = kube.get_json("deployment", "web")
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["resources"]["requests"] == {"cpu": "250m", "memory": "64Mi"}
    job = kube.v1("/v1/jobs/web")
    assert job["groups"][0]["resources"]["cpu"] == 250 and job["groups"][0]["count"] == 4
    pods = kube.wait_pods("app=web", 4)
    assert all(len(p["status"]["containerStatuses"]) == 2 for p in pods)

    again = kube.apply(web(replicas=4, env="[{name: STAGE, value: two}]", sidecar=SIDECAR))
    assert "deployment.apps/web unchanged" in again.stdout
    assert kube.v1("/v1/jobs/web")["version"] == job["version"]

    wide = kube.kubectl("get", "pods", "-l", "app=web", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE",
                               "PROVIDER", "ZONE"]
    assert all(" 2/2 " in line and " Running " in line for line in wide[1:])
    table = kube.kubectl("get", "deploy", "web").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "4/4", "4", "4"]

    started = time.monotonic()
    out = kube.kubectl("delete", "-f", "-", stdin=web(replicas=4, sidecar=SIDECAR))
    assert 'deployment.apps "web" deleted' in out.stdout
    assert time.monotonic() - started < 10
    gone = kube.kubectl("get", "deployment", "web", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    wait_for(lambda: not kube.pods("app=web"), 30, "the pods of web to end")


def test_scale_rollout_status_logs_and_deleting_a_pod(kube: KubeCluster) -> None:
    kube.apply(web(name="echo", replicas=1))
    (pod,) = kube.wait_pods("app=echo", 1)
    assert kube.kubectl("scale", "deployment/echo", "--replicas=2").returncode == 0
    kube.kubectl("rollout", "status", "deployment/echo", "--timeout=40s", timeout=60)
    pods = kube.wait_pods("app=echo", 2)
    assert pod["metadata"]["name"] in {p["metadata"]["name"] for p in pods}  # not restarted

    name = pods[0]["metadata"]["name"]
    wait_for(lambda: "started one" in kube.kubectl("logs", name).stdout, 20, "the log line")

    victim = pods[1]["metadata"]["name"]
    kube.kubectl("delete", "pod", victim, timeout=40)
    replaced = kube.wait_pods("app=echo", 2)
    assert victim not in {p["metadata"]["name"] for p in replaced}
    kube.kubectl("delete", "deployment", "echo")


def test_describe_shows_why_a_pod_is_pending(kube: KubeCluster) -> None:
    kube.apply(web(name="huge", replicas=1, cpu="64"))
    pending = wait_for(lambda: [p for p in kube.pods("app=huge")
                                if p["status"]["phase"] == "Pending"], 20, "a pending pod")
    out = kube.kubectl("describe", "pod", pending[0]["metadata"]["name"]).stdout
    assert "FailedScheduling" in out and "exhausted cpu" in out
    assert "FailedScheduling" in kube.kubectl("describe", "deployment", "huge").stdout
    kube.kubectl("delete", "deployment", "huge")


def test_a_gang_job_runs_to_completion(kube: KubeCluster) -> None:
    kube.apply("""\
apiVersion: batch/v1
kind: Job
metadata:
  name: gang
  annotations: {federation.io/gang: "true"}
spec:
  completions: 2
  parallelism: 2
  backoffLimit: 1
  template:
    metadata:
      annotations: {federation.io/driver: exec}
    spec:
      restartPolicy: Never
      containers:
      - {name: work, command: ["true"]}
""")
    assert kube.v1("/v1/jobs/gang")["groups"][0]["gang"] is True
    wait_for(lambda: kube.get_json("job", "gang")["status"].get("succeeded") == 2, 30,
             "the job to complete")
    row = kube.kubectl("get", "job", "gang", "--no-headers").stdout.split()
    assert row[:3] == ["gang", "Complete", "2/2"]
    kube.kubectl("delete", "job", "gang")


def test_a_suspended_cronjob_stays_listed_and_launches_nothing(kube: KubeCluster) -> None:
    kube.apply("""\
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  suspend: true
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {federation.io/driver: exec}
        spec:
          restartPolicy: OnFailure
          containers:
          - {name: t, command: ["true"]}
""")
    row = kube.kubectl("get", "cronjob", "tick", "--no-headers").stdout.split()
    assert row[:3] == ["tick", "*", "*"] or row[0] == "tick"
    assert kube.get_json("cronjob", "tick")["spec"]["suspend"] is True
    job = kube.v1("/v1/jobs/tick")
    assert (job["schedule"], job["prohibit_overlap"], job["stopped"]) == ("* * * * *", True,
                                                                          True)
    kube.kubectl("delete", "cronjob", "tick")
    assert kube.kubectl("get", "cronjob", "tick", check=False).returncode != 0


BAD = {
    "unknown field": (web(name="bad1").replace("        env:", "        colour: red\n        env:"),
                      "spec.template.spec.containers[0].colour"),
    "unknown kind": ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec: {}\n",
                     'no matches for kind "StatefulSet"'),
    "bad quantity": (web(name="bad3", cpu="2x"),
                     "spec.template.spec.containers[0].resources.requests[cpu]"),
    "bad name": (web(name="Bad_Name"), "metadata.name"),
}


def test_bad_manifests_are_refused_naming_the_field_and_nothing_is_written(
        kube: KubeCluster) -> None:
    before = kube.v1("/v1/jobs", params={"namespace": "*"})
    for what, (manifest, field) in BAD.items():
        result = kube.apply(manifest, check=False)
        assert result.returncode != 0, what
        assert field in result.stderr, (what, result.stderr)
    huge = web(name="huge-file", env="[{name: BLOB, value: " + "x" * (10 << 20) + "}]")
    result = kube.apply(huge, check=False)
    assert result.returncode != 0
    assert "larger than" in result.stderr or "too large" in result.stderr.lower(), result.stderr
    assert kube.v1("/v1/jobs", params={"namespace": "*"}) == before


def test_server_side_apply_fails_with_a_clear_message(kube: KubeCluster) -> None:
    result = kube.apply(web(name="ssa"), "--server-side", check=False)
    assert result.returncode != 0
    assert "server-side apply is not supported" in result.stderr


def test_namespaces_hold_jobs_of_the_same_name(kube: KubeCluster) -> None:
    kube.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: ml, labels: {team: ml}}\n")
    kube.apply(web(name="same", replicas=1))
    kube.apply(web(name="same", replicas=1), "-n", "ml")
    kube.wait_pods("app=same", 1, namespace="ml")
    names = kube.kubectl("get", "ns", "--no-headers").stdout
    assert {"default", "ml"} <= {line.split()[0] for line in names.splitlines()}
    everywhere = kube.v1("/v1/jobs", params={"namespace": "*"})
    assert {(j["namespace"], j["id"]) for j in everywhere} >= {("default", "same"),
                                                               ("ml", "same")}
    listed = kube.federation("-n", "ml", "job", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in __import__("json").loads(listed.stdout)] == ["same"]
    kube.kubectl("delete", "namespace", "ml")
    assert kube.v1("/v1/jobs/same", params={"namespace": "ml"})["stopped"] is True
    assert kube.v1("/v1/jobs/same")["stopped"] is False
    kube.kubectl("delete", "deployment", "same")


def test_federation_job_run_takes_the_same_manifests(kube: KubeCluster) -> None:
    result = kube.federation("job", "run", "-", stdin=web(name="via-cli", replicas=1))
    assert result.returncode == 0, result.stderr
    assert 'deployment "via-cli" submitted' in result.stdout
    kube.wait_pods("app=via-cli", 1)
    # kubectl sees the object it would have created, and an apply of the same file agrees.
    assert kube.get_json("deployment", "via-cli")["spec"]["replicas"] == 1
    kube.kubectl("delete", "deployment", "via-cli")


def test_the_k8s_endpoint_answers_status_objects(kube: KubeCluster) -> None:
    missing = httpx.get(kube.server.url + "/k8s/apis/apps/v1/namespaces/default/deployments/x")
    assert missing.status_code == 404
    assert missing.json()["kind"] == "Status" and missing.json()["reason"] == "NotFound"
    doc = httpx.get(kube.server.url + "/k8s/openapi/v3/apis/apps/v1").json()
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                        "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def test_an_image_runs_a_real_container_through_dockerd(kube: KubeCluster, docker_engine,
                                                        tmp_path) -> None:
    """No federation.io/driver annotation: the docker driver runs the image (a private
    dockerd with an offline busybox image; skipped, naming why, when dockerd cannot run)."""
    import os
    import signal
    import subprocess
    import sys

    log = open(tmp_path / "docker-agent.log", "ab")  # noqa: SIM115 - the child's lifetime
    agent = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "agent", "--server", kube.server.url,
         "--data-dir", str(tmp_path / "kd"), "--name", "kd", "--cpu", "2000",
         "--memory", "2048", "--labels", "docker=yes"],
        stdout=log, stderr=log, env={**docker_engine.env(), "OTEL_TRACES_EXPORTER": "none"})
    log.close()
    try:
        kube.apply(f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: boxed}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: boxed}}}}
  template:
    metadata: {{labels: {{app: boxed}}}}
    spec:
      nodeSelector: {{docker: "yes"}}
      containers:
      - name: box
        image: {docker_engine.image}
        command: ["sh", "-c", "echo inside-a-container; exec sleep 3600"]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
""")
        (pod,) = kube.wait_pods("app=boxed", 1, timeout=60)
        assert pod["spec"]["nodeName"] == "kd"
        assert kube.v1("/v1/jobs/boxed")["groups"][0]["task"]["driver"] == "docker"
        wait_for(lambda: "inside-a-container" in kube.kubectl(
            "logs", pod["metadata"]["name"]).stdout, 30, "the container's output")
        running = docker_engine.cli("ps", "--format", "{{.Image}}").stdout
        assert docker_engine.image in running
        kube.kubectl("delete", "deployment", "boxed")
        wait_for(lambda: docker_engine.image not in docker_engine.cli(
            "ps", "--format", "{{.Image}}").stdout, 40, "the container to stop")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        for pid in processes_under(tmp_path, agents=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leftovers = docker_engine.cli("ps", "-aq").stdout.split()
        if leftovers:
            docker_engine.cli("rm", "-f", *leftovers)
