"""Kubernetes workloads applied with kubectl to federation's own /k8s endpoint, and plain
batch jobs, are placed on member clusters like on any node: ``topologySpreadConstraints`` on
``federation.io/cluster`` and a ``cluster`` constraint steer them."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import httpx

from tests.harness import Cluster, wait_for
from tests.kubernetes.conftest import cli, member
from tests.kubernetes.test_fake_apiserver import KUBECTL
from tests.kubernetes.test_member_placement import _allocs, _nodes, add

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 4
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {federation.io/driver: exec}
    spec:
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: federation.io/cluster, whenUnsatisfiable: DoNotSchedule}
      containers:
        - name: api
          image: busybox:1.36
          command: [sleep, "300"]
          resources: {requests: {cpu: 200m, memory: 128Mi}}
"""


def test_kubectl_deployments_and_plain_jobs_run_on_member_clusters(
        server: Cluster, fakes, tmp_path: Path):
    url = server.servers[0].url
    east = member(fakes, tmp_path, "east", 2)
    west = member(fakes, tmp_path, "west", 2)
    add(url, east, tmp_path)
    add(url, west, tmp_path)
    wait_for(lambda: sum(n["status"] == "ready" for n in _nodes(url)) == 4, 60,
             "four member nodes")

    kubeconfig = tmp_path / "federation.kubeconfig"
    kubeconfig.write_text(cli(url, "kubeconfig").stdout)
    manifest = tmp_path / "api.yaml"
    manifest.write_text(DEPLOYMENT)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}
    applied = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "apply", "-f",
                              str(manifest)], capture_output=True, text=True, env=env,
                             timeout=60)
    assert applied.returncode == 0, applied.stderr
    wait_for(lambda: len(east.federation_pods()) + len(west.federation_pods()) == 4, 60,
             "four pods in the member clusters")
    assert len(east.federation_pods()) == len(west.federation_pods()) == 2
    assert {p["metadata"]["labels"]["federation.io/job"] for p in west.federation_pods()} \
        == {"api"}

    def kubectl(*args: str) -> str:
        done = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    # kubectl logs on federation's /k8s reads the member pod's log.
    wait_for(lambda: kubectl("get", "pods", "-o", "name").count("pod/") == 4, 30,
             "four pods in kubectl get pods")
    first = kubectl("get", "pods", "-o", "name").split()[0]
    assert kubectl("logs", first).startswith("log of pod fed-")

    job = {"id": "report", "type": "batch", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "constraints": [{"attribute": "cluster", "operator": "=", "value": "west"}],
        "restart": {"attempts": 0},
        "task": {"driver": "docker", "image": "python:3.12", "command": ["python", "r.py"]}}]}
    assert httpx.post(url + "/v1/jobs", json=job, timeout=10).status_code == 201
    pod = wait_for(lambda: next((p for p in west.federation_pods()
                                 if p["metadata"]["labels"]["federation.io/job"] == "report"),
                                None), 30, "the batch pod in west")
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["image"] == "python:3.12"
    west.set_pod_phase("default", pod["metadata"]["name"], "Succeeded")
    wait_for(lambda: httpx.get(url + "/v1/jobs/report", timeout=5).json()["status"]
             == "complete", 30, "the batch job complete")
    (alloc,) = _allocs(url, "report")
    assert alloc["client_status"] == "complete" and alloc["exit_code"] == 0
    clusters = Counter(n.get("cluster") for n in _nodes(url) if n["id"] == alloc["node_id"])
    assert clusters == {"west": 1}

    # Removing a member cluster: its nodes are down at once, its pods deleted, and the
    # Deployment's replicas that ran there are placed on the cluster that remains.
    out = cli(url, "cluster", "remove", "west").stdout
    assert 'Cluster "west" removed (2 nodes down' in out
    assert all(n["status"] == "down" for n in _nodes(url) if n.get("cluster") == "west")
    wait_for(lambda: not west.federation_pods(), 30, "west's pods deleted")
    wait_for(lambda: len(east.federation_pods()) == 4, 60, "all four replicas in east")
