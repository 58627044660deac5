"""Member clusters' nodes join the pool and their pods run federation's work, placed by
federation's scheduler like any node's: a real server, real agents, the real `kubernetes`
client against fake member API servers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from tests.harness import Cluster, wait_for
from tests.kubernetes.conftest import cli, member, start_agent

SLEEP = ["sleep", "300"]


def _nodes(url: str) -> list[dict]:
    return httpx.get(url + "/v1/nodes", timeout=5).json()


def _allocs(url: str, job: str) -> list[dict]:
    return httpx.get(url + f"/v1/allocations?job={job}", timeout=5).json()


def add(url: str, fake, tmp_path: Path, *extra: str) -> None:
    kubeconfig = tmp_path / f"{fake.name}.kubeconfig"
    kubeconfig.write_text(fake.kubeconfig())
    cli(url, "cluster", "add", fake.name, "--kubeconfig", str(kubeconfig), *extra)


def test_a_spread_service_lands_across_both_clusters_and_the_agents(
        server: Cluster, fakes, agents, tmp_path: Path):
    url = server.servers[0].url
    east = member(fakes, tmp_path, "east", 3)
    west = member(fakes, tmp_path, "west", 5)
    add(url, east, tmp_path, "--labels", "team=ml")
    add(url, west, tmp_path)
    for name in ("agent-1", "agent-2"):
        start_agent(url, tmp_path / "agents", name, agents)

    def pool_ready() -> bool:
        ready = [n for n in _nodes(url) if n["status"] == "ready"]
        return len(ready) == 10
    wait_for(pool_ready, 60, "3 + 5 member nodes and 2 agents in the pool")
    nodes = {n["name"]: n for n in _nodes(url)}
    east1 = nodes["east.east-1"]
    assert east1["provider"] == "kubernetes" and east1["cluster"] == "east"
    assert east1["region"] == "east" and east1["zone"] == "east-a"
    assert east1["labels"]["team"] == "ml" and east1["pool"] == "east"
    assert east1["capacity"] == {"cpu_milli": 4000, "memory_mib": 8192, "gpu": 0}

    job = {"id": "web", "type": "service", "groups": [{
        "name": "web", "count": 10, "spread": "cluster",
        "resources": {"cpu": 100, "memory": 64},
        "task": {"driver": "exec", "command": SLEEP, "env": {"STAGE": "prod"}}}]}
    assert httpx.post(url + "/v1/jobs", json=job, timeout=10).status_code == 201

    def all_running() -> list[dict] | None:
        allocs = [a for a in _allocs(url, "web") if a["desired_status"] == "run"]
        running = [a for a in allocs if a["client_status"] == "running"]
        return allocs if len(running) == 10 else None
    allocs = wait_for(all_running, 60, "10 running replicas")
    by_id = {n["id"]: n for n in _nodes(url)}
    per_cluster = Counter(by_id[a["node_id"]].get("cluster") or "agents" for a in allocs)
    assert set(per_cluster) == {"east", "west", "agents"}, per_cluster
    assert max(per_cluster.values()) - min(per_cluster.values()) <= 1, per_cluster

    # Every member replica is a Pod in its cluster, bound to the chosen node, labelled.
    for fake in (east, west):
        pods = {p["metadata"]["labels"]["federation.io/allocation"]: p
                for p in fake.federation_pods()}
        mine = [a for a in allocs if by_id[a["node_id"]].get("cluster") == fake.name]
        assert len(pods) == len(mine)
        for alloc in mine:
            pod = pods[alloc["id"]]
            node = by_id[alloc["node_id"]]["name"]
            assert f"{fake.name}.{pod['spec']['nodeName']}" == node
            assert pod["metadata"]["labels"]["federation.io/job"] == "web"
            (container,) = pod["spec"]["containers"]
            assert container["command"] == SLEEP
            assert container["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["STAGE"] == "prod" and env["FEDERATION_ALLOC_ID"] == alloc["id"]
            assert pod["status"]["phase"] == "Running"

    # Restarts flow back; logs come from the pod's log; stopping deletes the pods.
    pod = east.federation_pods()[0]
    alloc_id = pod["metadata"]["labels"]["federation.io/allocation"]
    east.set_pod_phase("default", pod["metadata"]["name"], "Running", restarts=2)
    wait_for(lambda: httpx.get(url + f"/v1/allocations/{alloc_id}", timeout=5).json()
             .get("restarts") == 2, 20, "the restarts to flow back")
    logs = httpx.get(url + f"/v1/allocations/{alloc_id}/logs", timeout=10)
    assert logs.status_code == 200 and logs.text == f"log of pod {pod['metadata']['name']}\n"
    assert httpx.delete(url + "/v1/jobs/web", timeout=10).status_code == 200
    wait_for(lambda: not east.federation_pods() and not west.federation_pods(), 30,
             "the pods to be deleted")
