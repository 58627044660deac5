"""The autoscaler end to end on GCP: three real `federation server` processes whose leader buys
Compute Engine instances through the real google-cloud-compute client from the fake GCE REST
server of ``tests/fakes`` (running in this process, on loopback).

Instances of the fake run no agent, so the test registers and heart-beats one node per
instance through the agent protocol itself, as the agent on it would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.autoscaler.cloud_cluster import (
    Agents,
    Identity,
    activities,
    launches,
    put_pool,
    start_cluster,
    stays,
    submit_wide_job,
    terminated,
)
from tests.fakes.gce_server import FakeGCE
from tests.harness import Cluster, wait_for

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
    started = start_cluster(tmp_path / "cluster", monkeypatch)
    try:
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


def gce_identity(item: tuple[tuple[str, str, str], dict[str, Any]]) -> Identity:
    """A fake GCE instance, an item of ``instances``, as its agent reports it: named by its
    name, with the instance id ``zone/name``."""
    (_, zone, _), raw = item
    return Identity(name=raw["name"], instance_id=f"{zone}/{raw['name']}", zone=zone,
                    instance_type=raw["machineType"].rsplit("/", 1)[-1])


def test_blocked_demand_buys_gce_instances_in_the_next_zone_and_releases_them_when_idle(
        gce: FakeGCE, cluster: Cluster) -> None:
    gce.exhausted_zones.add("us-central1-a")
    leader = cluster.wait_leader()
    put_pool(leader, pool_spec(gce))
    submit_wide_job(leader, "gcp")

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
    stays(leader, lambda: len(instances(gce)) == 2 and len(launches(leader)) == 1, passes=6)

    agents = Agents(cluster.urls, "gcp", "us-central1", gce_identity)
    try:
        for item in launched.items():
            agents.join(item, "gburst", cpu_milli=8000)
        agents.start()
        wait_for(lambda: len(leader.get("/v1/allocations?job=wide").json()) == 2, 15,
                 "the scheduler to place both tasks on the new nodes")
        assert httpx.delete(f"{leader.url}/v1/jobs/wide", timeout=10).status_code == 200
        wait_for(lambda: instances(gce) == {}, 30, "the idle instances deleted")
        wait_for(lambda: len(terminated(leader)) == 2, 10, "both terminations recorded")
        terms = terminated(leader)
        assert sorted(i for t in terms for i in t["instance_ids"]) == sorted(launch["instances"])
        assert all("idle for" in t["reason"] for t in terms)
        assert len(launches(leader)) == 1
        wait_for(lambda: [n for n in leader.get("/v1/nodes").json()
                          if n["pool"] == "gburst"] == [], 10, "the released nodes forgotten")
    finally:
        agents.stop()
