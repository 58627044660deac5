"""The autoscaler end to end: three real `federation server` processes buying EC2 instances
from a real moto server (AMI and instance-type validation on).

Instances that moto starts run no agent, so where a test needs nodes it registers and
heart-beats them through the agent protocol itself, one per instance, as an agent would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.autoscaler.cloud_cluster import (
    Agents,
    Identity,
    launches,
    put_pool,
    start_cluster,
    stays,
    submit_wide_job,
    terminated,
)
from tests.harness import Cluster, ServerProcess, wait_for

CLUSTER_TAG = "fedtest"
PAUSING_SERVER = Path(__file__).with_name("pausing_server.py")


@pytest.fixture
def ec2(moto_url: str, aws_env: None) -> Any:
    httpx.post(moto_url + "/moto-api/reset")
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture
def ami(ec2: Any) -> str:
    return sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]


@pytest.fixture
def make_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 aws_env: None) -> Iterator[Any]:
    started: list[Cluster] = []

    def make(launcher: list[str] | None = None, **env: str) -> Cluster:
        cluster = start_cluster(tmp_path / "cluster", monkeypatch, launcher, **env)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster.kill_all()


def pool_spec(moto_url: str, ami: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "name": "burst", "provider": "aws", "region": "us-east-1",
        "zones": ["us-east-1a"], "min_nodes": 0, "max_nodes": 6,
        "instance_types": ["m5.large", "c5.2xlarge"], "scale_down_idle": "2s",
        "settings": {"endpoint_url": moto_url, "image": ami, "cluster": CLUSTER_TAG,
                     "join_grace": "1h"},
    }  # fmt: skip
    spec.update(extra)
    return spec


def alive(ec2: Any) -> list[dict[str, Any]]:
    return [
        i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    ]  # fmt: skip


def tags(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def ec2_identity(instance: dict[str, Any]) -> Identity:
    """An EC2 instance as its agent reports it: named by its instance id."""
    return Identity(name=instance["InstanceId"], instance_id=instance["InstanceId"],
                    zone=instance["Placement"]["AvailabilityZone"],
                    instance_type=instance["InstanceType"])


def ec2_agents(cluster: Cluster) -> Agents:
    return Agents(cluster.urls, "aws", "us-east-1", ec2_identity)


def test_min_nodes_launch_exactly_the_planned_instances_then_idle_ones_go(
        make_cluster, ec2, ami, moto_url):
    cluster = make_cluster()
    leader = cluster.wait_leader()
    put_pool(leader, pool_spec(moto_url, ami, min_nodes=2))
    instances = wait_for(lambda: len(alive(ec2)) == 2 and alive(ec2), 30, "two instances")
    (launch,) = wait_for(lambda: [a for a in launches(leader) if a["status"] == "done"], 15,
                         "the launch outcome committed")
    for inst in instances:
        assert inst["InstanceType"] == "m5.large"  # the pool's cheapest type
        assert inst["ImageId"] == ami
        assert tags(inst)["federation:cluster"] == CLUSTER_TAG
        assert tags(inst)["federation:pool"] == "burst"
        assert tags(inst)["federation:request"] == launch["token"]
    assert sorted(launch["instances"]) == sorted(i["InstanceId"] for i in instances)
    assert "below min_nodes 2" in launch["reason"]
    assert launch["hourly_cost"] == pytest.approx(0.192)
    (pool,) = leader.get("/v1/pools").json()
    assert (pool["launching"], pool["hourly_cost"]) == (2, pytest.approx(0.192))
    stays(leader, lambda: len(alive(ec2)) == 2 and len(launches(leader)) == 1, passes=6)

    agents = ec2_agents(cluster)
    try:
        for inst in instances:
            agents.join(inst, "burst")
        agents.start()
        wait_for(lambda: leader.get("/v1/pools").json()[0]["nodes"]["ready"] == 2, 10,
                 "both nodes ready")
        put_pool(leader, pool_spec(moto_url, ami, min_nodes=1))
        wait_for(lambda: len(alive(ec2)) == 1, 30, "one idle instance terminated")
        (term,) = wait_for(lambda: terminated(leader), 10, "the termination recorded")
        assert "idle for" in term["reason"] and term["hourly_cost"] == pytest.approx(0.096)
        gone = term["node_ids"][0]
        # Drained, terminated, and gone from the node table.
        assert leader.get(f"/v1/nodes/{gone}").status_code == 404
        stays(leader, lambda: len(alive(ec2)) == 1, passes=9)  # min_nodes 1 holds
    finally:
        agents.stop()


def test_blocked_demand_buys_what_fits_and_releases_it_when_the_job_stops(
        make_cluster, ec2, ami, moto_url):
    cluster = make_cluster()
    leader = cluster.wait_leader()
    put_pool(leader, pool_spec(moto_url, ami))
    submit_wide_job(leader, "aws")
    # 6 cores a task: only c5.2xlarge (8 cores) holds one, and one each is the cheapest.
    instances = wait_for(lambda: len(alive(ec2)) == 2 and alive(ec2), 30, "two instances")
    assert {i["InstanceType"] for i in instances} == {"c5.2xlarge"}
    (launch,) = launches(leader)
    assert "2 pending task(s)" in launch["reason"]
    assert {tags(i)["federation:request"] for i in instances} == {launch["token"]}
    stays(leader, lambda: len(alive(ec2)) == 2 and len(launches(leader)) == 1, passes=6)

    agents = ec2_agents(cluster)
    try:
        for inst in instances:
            agents.join(inst, "burst", cpu_milli=8000, memory_mib=16384)
        agents.start()
        wait_for(lambda: len(leader.get("/v1/allocations?job=wide").json()) == 2, 15,
                 "the scheduler to place both tasks on the new nodes")
        assert httpx.delete(f"{leader.url}/v1/jobs/wide", timeout=10).status_code == 200
        wait_for(lambda: alive(ec2) == [], 30, "the idle instances terminated")
        assert len(launches(leader)) == 1
    finally:
        agents.stop()


@pytest.mark.parametrize("pause", ["after-begin", "after-call"])
def test_killing_the_leader_mid_launch_never_launches_twice(
        make_cluster, ec2, ami, moto_url, pause, tmp_path):
    # The servers' AWS provider is wrapped to pause the first launch at that point.
    cluster = make_cluster(launcher=[sys.executable, str(PAUSING_SERVER), f"{pause}:60",
                                     str(tmp_path / "pause.claimed")])
    leader = cluster.wait_leader()
    put_pool(leader, pool_spec(moto_url, ami, min_nodes=3))
    (pending,) = wait_for(
        lambda: [a for a in launches(leader) if a["status"] == "pending"], 15,
        "launch.begin committed")
    # The leader reached the pause: the launch is committed and, after-begin, not called.
    wait_for(lambda: f"pausing launch {pending['token']} {pause}" in leader.log(), 15,
             "the leader to pause the launch")
    if pause == "after-begin":
        assert alive(ec2) == []
    else:
        wait_for(lambda: len(alive(ec2)) == 3, 15, "the provider call made")
    leader.kill()

    def new_leader() -> ServerProcess | None:
        current = cluster.wait_leader(5)
        return current if current is not leader else None

    survivor = wait_for(new_leader, 20, "a new leader")
    done = wait_for(lambda: [a for a in launches(survivor) if a["status"] == "done"], 30,
                    "the new leader to resume the launch")
    assert [a["token"] for a in done] == [pending["token"]]
    assert f"resuming launch {pending['token']}" in survivor.log()
    wait_for(lambda: len(alive(ec2)) == 3, 10, "three instances")
    stays(survivor, lambda: len(alive(ec2)) == 3 and len(launches(survivor)) == 1, passes=9)
    assert {tags(i)["federation:request"] for i in alive(ec2)} == {pending["token"]}


def test_pool_validation_names_the_field_and_writes_nothing(make_cluster, ami, moto_url):
    cluster = make_cluster()
    leader = cluster.wait_leader()
    spec = pool_spec(moto_url, ami, min_nodes=9)
    response = httpx.put(f"{leader.url}/v1/pools/burst", json=spec, timeout=10)
    assert response.status_code == 400 and "min_nodes" in response.json()["error"]["message"]
    response = httpx.put(f"{leader.url}/v1/pools/other", json=pool_spec(moto_url, ami),
                         timeout=10)
    assert response.status_code == 400 and response.json()["error"]["field"] == "name"
    response = httpx.put(f"{leader.url}/v1/pools/burst", timeout=10,
                         json=pool_spec(moto_url, ami, spot="sometimes"))
    assert response.status_code == 400 and response.json()["error"]["field"] == "spot"
    assert leader.get("/v1/pools?consistent=true").json() == []
    assert httpx.delete(f"{leader.url}/v1/pools/burst", timeout=10).status_code == 404


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "federation.cli.main", "--address", url, *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_applies_a_dry_run_pool_and_shows_what_would_be_bought(
        make_cluster, ec2, ami, moto_url, tmp_path):
    cluster = make_cluster()
    leader = cluster.wait_leader()
    spec = pool_spec(moto_url, ami, min_nodes=2)
    spec["settings"]["dry_run"] = True
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(spec))
    applied = cli(leader.url, "pool", "apply", str(path))
    assert applied.returncode == 0 and 'Pool "burst" applied (version 1)' in applied.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: burst\nprovider: aws\n")
    refused = cli(leader.url, "pool", "apply", str(bad))
    assert refused.returncode != 0 and "needs a region" in refused.stderr
    listed = cli(leader.url, "pool", "list")
    assert listed.returncode == 0 and "burst" in listed.stdout and "aws" in listed.stdout
    wait_for(lambda: "would launch 2 x m5.large" in cli(
        leader.url, "autoscaler", "activities").stdout, 15, "the dry-run decision")
    shown = json.loads(cli(leader.url, "autoscaler", "activities", "-o", "json").stdout)
    assert [(a["action"], a["dry_run"]) for a in shown] == [("launch", True)]
    stays(leader, lambda: alive(ec2) == [], passes=4)
