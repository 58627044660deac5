"""The official `kubernetes` Python client against the endpoint: create, list, read, patch,
delete and a watch that sees ADDED, MODIFIED and DELETED."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.harness import wait_for
from tests.kubernetes_api.conftest import KubeCluster


@pytest.fixture
def apps(kube: KubeCluster) -> Iterator[client.AppsV1Api]:
    configuration = client.Configuration()
    configuration.host = kube.server.url + "/k8s"
    with client.ApiClient(configuration) as api:
        yield client.AppsV1Api(api)


def deployment(name: str, replicas: int = 1) -> client.V1Deployment:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name},
                                             annotations={"federation.io/driver": "exec"}),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="app", command=["sleep", "3600"],
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": "100m", "memory": "32Mi"}))]))))


def test_create_list_read_patch_and_delete(apps: client.AppsV1Api, kube: KubeCluster) -> None:
    created = apps.create_namespaced_deployment("default", deployment("py"))
    assert created.metadata.uid and created.spec.replicas == 1
    names = [d.metadata.name for d in apps.list_namespaced_deployment("default").items]
    assert "py" in names
    assert apps.read_namespaced_deployment("py", "default").spec.template.spec.containers[
        0].resources.requests == {"cpu": "100m", "memory": "32Mi"}

    patched = apps.patch_namespaced_deployment("py", "default", {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    assert kube.v1("/v1/jobs/py")["groups"][0]["count"] == 2
    kube.wait_pods("app=py", 2)

    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("py"))
    assert exc.value.status == 409

    apps.delete_namespaced_deployment("py", "default")
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("py", "default")
    assert exc.value.status == 404


def test_an_unknown_field_is_a_422_naming_it(kube: KubeCluster) -> None:
    body = client.ApiClient().sanitize_for_serialization(deployment("strict"))
    body["spec"]["template"]["spec"]["hostNetwork"] = True
    answer = httpx.post(kube.server.url + "/k8s/apis/apps/v1/namespaces/default/deployments",
                        json=body, params={"fieldValidation": "Strict"})
    assert answer.status_code == 422
    status = answer.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.hostNetwork"


def test_a_watch_sees_added_modified_and_deleted(apps: client.AppsV1Api,
                                                 kube: KubeCluster) -> None:
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()

    def follow() -> None:
        for event in stream.stream(apps.list_namespaced_deployment, "default",
                                   timeout_seconds=30):
            if event["object"].metadata.name == "watched":
                seen.append((event["type"], event["object"].metadata.name))
                if event["type"] == "DELETED":
                    stream.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    apps.create_namespaced_deployment("default", deployment("watched"))
    wait_for(lambda: ("ADDED", "watched") in seen, 20, "ADDED")
    apps.patch_namespaced_deployment("watched", "default", {"spec": {"replicas": 2}})
    wait_for(lambda: ("MODIFIED", "watched") in seen, 20, "MODIFIED")
    apps.delete_namespaced_deployment("watched", "default")
    wait_for(lambda: ("DELETED", "watched") in seen, 20, "DELETED")
    thread.join(10)
    assert not thread.is_alive()


def test_the_endpoint_checks_the_api_token_like_v1(tmp_path) -> None:
    from tests.harness import Cluster

    cluster = Cluster(tmp_path / "c", size=1, token="k8s-token-0123").start()
    try:
        url = cluster.servers[0].url + "/k8s/apis/apps/v1/namespaces/default/deployments"
        auth = {"Authorization": "Bearer k8s-token-0123"}
        ok = wait_for(lambda: httpx.get(url, headers=auth, timeout=5).status_code == 200
                      and httpx.get(url, headers=auth, timeout=5), 30, "the server")
        assert ok.json()["kind"] == "DeploymentList"
        assert httpx.get(url, timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(url, headers=wrong, timeout=5).status_code == 403
    finally:
        cluster.kill_all()
