"""The fake member API server speaks the Kubernetes wire protocol: checked with the real
kubectl and the real `kubernetes` Python client, so it cannot drift from what they expect."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from tests.kubernetes.fake_apiserver import FakeKubeAPIServer

KUBECTL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl")


@pytest.fixture
def fake(tmp_path: Path):
    server = FakeKubeAPIServer(name="east", tls_dir=str(tmp_path / "tls"),
                               bookmark_interval=0.3).start()
    server.add_node("east-1", cpu="4", memory="8Gi", zone="east-a", region="east")
    server.add_node("east-2", cpu="2", memory="4Gi", zone="east-b", region="east")
    server.add_pod("dns", "east-1", cpu="250m", memory="128Mi")
    yield server
    server.stop()


def kubectl(tmp_path: Path, fake: FakeKubeAPIServer, *args: str) -> str:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(fake.kubeconfig())
    env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}
    result = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def api(fake: FakeKubeAPIServer) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config_dict(yaml.safe_load(fake.kubeconfig())))


def test_kubectl_reads_nodes_pods_and_logs(tmp_path: Path, fake: FakeKubeAPIServer):
    names = kubectl(tmp_path, fake, "get", "nodes")
    assert "east-1" in names and "east-2" in names
    pods = json.loads(kubectl(tmp_path, fake, "get", "pods", "-A", "-o", "json"))
    (pod,) = pods["items"]
    assert pod["metadata"]["name"] == "dns" and pod["spec"]["nodeName"] == "east-1"
    assert pod["status"]["phase"] == "Running"
    nodes = json.loads(kubectl(tmp_path, fake, "get", "nodes", "-o", "json"))
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in nodes["items"]}
    assert labels["east-2"]["topology.kubernetes.io/zone"] == "east-b"
    assert kubectl(tmp_path, fake, "logs", "-n", "kube-system", "dns") == "log of pod dns\n"
    assert kubectl(tmp_path, fake, "get", "pods", "-A", "-l", "app=none",
                   "-o", "name") == ""


def test_the_client_creates_binds_updates_and_is_told_of_conflicts(fake: FakeKubeAPIServer):
    v1 = api(fake)
    body = {"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    v1.create_namespaced_pod("default", body)
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_pod("default", body)
    assert exists.value.status == 409
    v1.create_namespaced_binding("default", client.V1Binding(
        metadata=client.V1ObjectMeta(name="web"),
        target=client.V1ObjectReference(kind="Node", name="east-2")), _preload_content=False)
    pod = v1.read_namespaced_pod("web", "default")
    assert pod.spec.node_name == "east-2"
    stale = pod.metadata.resource_version
    pod.metadata.labels["v"] = "2"
    v1.replace_namespaced_pod("web", "default", pod)
    pod.metadata.resource_version = stale
    with pytest.raises(ApiException) as conflict:
        v1.replace_namespaced_pod("web", "default", pod)
    assert conflict.value.status == 409 and "Conflict" in conflict.value.body
    only = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=east-2")
    assert [p.metadata.name for p in only.items] == ["web"]


def _events(v1: client.CoreV1Api, rv: str, timeout: int = 2) -> list[dict]:
    resp = v1.list_node(watch=True, resource_version=rv, allow_watch_bookmarks=True,
                        timeout_seconds=timeout, _preload_content=False)
    try:
        return [json.loads(line) for line in iter_resp_lines(resp) if line]
    finally:
        resp.release_conn()


def test_watches_resume_send_bookmarks_and_answer_410_when_too_old(fake: FakeKubeAPIServer):
    v1 = api(fake)
    listed = v1.list_node()
    rv = listed.metadata.resource_version
    fake.add_node("east-3")
    fake.set_node_ready("east-2", False)
    events = _events(v1, rv, timeout=1)
    changes = [(e["type"], e["object"]["metadata"]["name"]) for e in events
               if e["type"] != "BOOKMARK"]
    assert changes == [("ADDED", "east-3"), ("MODIFIED", "east-2")]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(
        events[1]["object"]["metadata"]["resourceVersion"])
    # Resuming from the last event seen replays nothing twice.
    last = events[1]["object"]["metadata"]["resourceVersion"]
    resumed = _events(v1, last, timeout=1)
    assert resumed and {e["type"] for e in resumed} == {"BOOKMARK"}
    fake.compact()
    (gone,) = _events(v1, rv, timeout=1)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410
    assert gone["object"]["reason"] == "Expired"


def test_the_client_reads_the_version(fake: FakeKubeAPIServer):
    info = client.VersionApi(api(fake).api_client).get_code()
    assert (info.major, info.minor) == ("1", "37")
