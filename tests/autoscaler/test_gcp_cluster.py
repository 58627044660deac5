"""The autoscaler end to end on GCP: three real `federation server` processes whose leader buys
Compute Engine instances through the real google-cloud-compute client from the fake GCE REST
server of ``tests/fakes`` (running in this process, on loopback).

Instances of the fake run no agent, so the test registers and heart-beats one node per
instance through the agent protocol itself, as the agent on it would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gce_server import FakeGCE
from tests.harness import Cluster, ServerProcess, wait_for

PROJECT = "fed-test"
CLUSTER_TAG = "fedtest"
ZONES = ["us-central1-a", "us-central1-b"]


@pytest.fixture
def gce() -> Iterator[FakeGCE]:
    fake = FakeGCE().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setenv("FEDERATION_AUTOSCALER_INTERVAL", "0.3")
    monkeypatch.setenv("FEDERATION_AUTOSCALER_RECONCILE", "1")
    started = Cluster(tmp_path / "cluster").start()
    try:
        started.wait_leader()
        yield started
    finally:
        started.kill_all()


def pool_spec(gce: FakeGCE) -> dict[str, Any]:
    return {
        "name": "gburst", "provider": "gcp", "region": "us-central1", "zones": ZONES,
        "min_nodes": 0, "max_nodes": 4, "instance_types": ["e2-standard-2", "e2-highcpu-8"],
        "scale_down_idle": "2s",
        "settings": {"project": PROJECT, "endpoint_url": gce.url, "anonymous": True,
                     "cluster": CLUSTER_TAG, "join_grace": "1h"},
    }  # fmt: skip


def instances(gce: FakeGCE) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The fake's instances that exist and are not being deleted, keyed (project, zone, name)."""
    with gce.lock:
        return {k: dict(v) for k, v in gce.instances.items() if v["status"] != "STOPPING"}


def activities(server: ServerProcess) -> list[dict[str, Any]]:
    return server.get("/v1/autoscaler/activities").json()


def terminated(server: ServerProcess) -> list[dict[str, Any]]:
    return [a for a in activities(server) if a["kind"] == "terminate" and a["status"] == "done"]


def stays(predicate: Any, seconds: float) -> None:
    """``predicate`` holds for ``seconds`` (checked every 0.2 s): nothing more happens."""
    done = threading.Event()
    left = seconds
    while left > 0:
        assert predicate()
        done.wait(0.2)
        left -= 0.2


class Agents:
    """Registers one node per GCE instance and heart-beats them, as agents on them would."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.nodes: list[tuple[str, str]] = []  # (node id, token)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def join(self, zone: str, raw: dict[str, Any], pool: str) -> None:
        body = {"name": raw["name"], "pool": pool, "provider": "gcp", "region": "us-central1",
                "zone": zone, "instance_type": raw["machineType"].rsplit("/", 1)[-1],
                "instance_id": f"{zone}/{raw['name']}",
                "capacity": {"cpu_milli": 8000, "memory_mib": 8192}}
        for url in self.urls:
            try:
                response = httpx.post(url + "/v1/nodes", json=body, timeout=5)
            except httpx.HTTPError:
                continue
            if response.status_code == 201:
                self.nodes.append((response.json()["id"], response.json()["token"]))
                return
        raise AssertionError(f"no server registered {raw['name']}")

    def start(self) -> Agents:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(0.4):
            for node_id, token in list(self.nodes):
                for url in self.urls:
                    try:
                        httpx.post(f"{url}/v1/nodes/{node_id}/heartbeat", timeout=2,
                                   headers={"X-Node-Token": token})
                        break
                    except httpx.HTTPError:
                        continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_blocked_demand_buys_gce_instances_in_the_next_zone_and_releases_them_when_idle(
        gce: FakeGCE, cluster: Cluster) -> None:
    gce.exhausted_zones.add("us-central1-a")
    leader = cluster.wait_leader()
    response = httpx.put(f"{leader.url}/v1/pools/gburst", json=pool_spec(gce), timeout=10)
    assert response.status_code == 200, response.text
    job = {"id": "wide", "type": "batch", "groups": [{
        "name": "w", "count": 2, "resources": {"cpu": 6000, "memory": 4096},
        "constraints": [{"attribute": "provider", "operator": "=", "value": "gcp"}],
        "task": {"driver": "exec", "command": ["true"]}}]}
    response = httpx.post(f"{leader.url}/v1/jobs", json=job, timeout=10)
    assert response.status_code == 201, response.text

    # 6 cores a task: one e2-highcpu-8 each is the cheapest fit; zone a has no capacity.
    launched = wait_for(lambda: len(instances(gce)) == 2 and instances(gce), 30,
                        "two GCE instances")
    (launch,) = wait_for(
        lambda: [a for a in activities(leader)
                 if a["kind"] == "launch" and a["status"] != "pending"],
        15, "the launch outcome committed")
    assert launch["status"] == "done" and launch["instance_type"] == "e2-highcpu-8"
    assert "2 pending task(s)" in launch["reason"]
    assert any("us-central1-a" in f and "ZONE_RESOURCE_POOL_EXHAUSTED" in f
               for f in launch["failures"]), launch["failures"]
    assert sorted(launch["instances"]) == sorted(f"{z}/{n}" for _, z, n in launched)
    servers = ",".join(sorted(s.url for s in cluster.servers))
    for (project, zone, _), raw in launched.items():
        assert (project, zone) == (PROJECT, "us-central1-b")
        assert raw["machineType"] == "zones/us-central1-b/machineTypes/e2-highcpu-8"
        assert raw["labels"] == {"federation-cluster": CLUSTER_TAG, "federation-pool": "gburst",
                                 "federation-request": launch["token"]}
        (item,) = raw["metadata"]["items"]
        assert item["key"] == "startup-script"
        assert f"--server {servers}" in item["value"] and "--pool gburst" in item["value"]
        assert "FEDERATION_TOKEN=" in item["value"]
    with gce.lock:
        assert not [k for k in gce.instances if k[1] == "us-central1-a"]
    stays(lambda: len(instances(gce)) == 2
          and len([a for a in activities(leader) if a["kind"] == "launch"]) == 1, 2.0)

    agents = Agents(cluster.urls)
    try:
        for (_, zone, _), raw in launched.items():
            agents.join(zone, raw, "gburst")
        agents.start()
        wait_for(lambda: len(leader.get("/v1/allocations?job=wide").json()) == 2, 15,
                 "the scheduler to place both tasks on the new nodes")
        assert httpx.delete(f"{leader.url}/v1/jobs/wide", timeout=10).status_code == 200
        wait_for(lambda: instances(gce) == {}, 30, "the idle instances deleted")
        wait_for(lambda: len(terminated(leader)) == 2, 10, "both terminations recorded")
        terms = terminated(leader)
        assert sorted(i for t in terms for i in t["instance_ids"]) == sorted(launch["instances"])
        assert all("idle for" in t["reason"] for t in terms)
        assert len([a for a in activities(leader) if a["kind"] == "launch"]) == 1
        wait_for(lambda: [n for n in leader.get("/v1/nodes").json()
                          if n["pool"] == "gburst"] == [], 10, "the released nodes forgotten")
    finally:
        agents.stop()
