"""Nodes through the agent protocol, and the CLI against a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import Cluster, wait_for


def test_a_node_that_stops_heart_beating_is_marked_down_and_comes_back(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    reg = leader.post("/v1/nodes", json={
        "name": "edge-1", "pool": "rack-a", "rack": "r1", "labels": {"gpu": "none"},
        "capacity": {"cpu_milli": 2000, "memory_mib": 1024}}).json()
    headers = {"X-Node-Token": reg["token"]}
    node_url = f"/v1/nodes/{reg['id']}"
    assert leader.get(node_url).json()["status"] == "ready"
    assert 'federation_state_objects{kind="nodes"} 1.0' in leader.get("/metrics").text
    # --heartbeat-ttl is 2s in the harness; a new leader also waits one TTL before judging.
    wait_for(lambda: leader.get(node_url).json()["status"] == "down", 8, "the node marked down")
    beat = leader.post(node_url + "/heartbeat", json={}, headers=headers)
    assert beat.json()["status"] == "ready"
    drained = leader.post(node_url + "/drain").json()
    assert drained["draining"] is True
    for server in cluster.servers:
        wait_for(lambda s=server: s.get(node_url).json()["draining"], 5, "drain replicated")


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDERATION_ADDR": ",".join(cluster.urls)}
    return subprocess.run([sys.executable, "-m", "federation.cli.main", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_cli_runs_lists_and_stops_a_job(cluster: Cluster, tmp_path: Path) -> None:
    cluster.wait_leader()
    spec = tmp_path / "hello.yaml"
    spec.write_text("""
id: hello
type: batch
groups:
  - name: main
    count: 2
    resources: {cpu: 100, memory: 64}
    task: {command: [echo, hello]}
""")
    # No node has joined this cluster and no pool can add one: `job run` would refuse the
    # job as never placeable, so it is submitted with --force.
    run = _cli(cluster, "job", "run", "--force", str(spec))
    assert run.returncode == 0, run.stderr
    listed = json.loads(_cli(cluster, "-o", "json", "job", "list").stdout)
    assert [j["id"] for j in listed] == ["hello"]
    status = json.loads(_cli(cluster, "-o", "json", "status").stdout)
    assert status["leader"] is not None
    assert _cli(cluster, "job", "stop", "hello").returncode == 0
    job = json.loads(_cli(cluster, "-o", "json", "job", "status", "hello").stdout)
    assert job["status"] == "dead"


def test_the_cli_reports_a_bad_spec_in_one_line(cluster: Cluster, tmp_path: Path) -> None:
    cluster.wait_leader()
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"id": "bad", "type": "batch", "groups": [{
        "name": "g", "count": 0, "resources": {"cpu": 1, "memory": 1},
        "task": {"command": ["true"]}}]}))
    result = _cli(cluster, "job", "run", str(spec))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "groups[0].count" in lines[0]


def test_the_cli_keeps_working_when_the_first_address_is_dead(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    cluster.servers[0].kill()
    cluster.wait_leader()
    started = time.monotonic()
    result = _cli(cluster, "-o", "json", "job", "list")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert leader is not None


def test_a_saved_snapshot_restores_the_state_on_a_new_cluster(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    leader = cluster.wait_leader()
    for i in range(5):
        leader.post("/v1/jobs", json={"id": f"keep-{i}", "type": "service", "groups": [{
            "name": "g", "resources": {"cpu": 1, "memory": 1}, "task": {"command": ["true"]}}]})
    backup = tmp_path / "backup.json"
    assert _cli(cluster, "snapshot", "save", str(backup)).returncode == 0
    fresh = Cluster(tmp_path / "fresh").start()
    try:
        fresh.wait_leader()
        restored = _cli(fresh, "snapshot", "restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        for server in fresh.servers:
            wait_for(lambda s=server: len(s.get("/v1/jobs").json()) == 5, 10, "restored jobs")
    finally:
        fresh.kill_all()


def test_the_cli_configures_and_lists_queues(cluster: Cluster, tmp_path: Path) -> None:
    cluster.wait_leader()
    spec = tmp_path / "queue.yaml"
    spec.write_text("name: analytics\nweight: 3\nquota: {cpu: 8000, memory: 16384}\n")
    applied = _cli(cluster, "queue", "apply", str(spec))
    assert applied.returncode == 0, applied.stderr
    queues = {q["name"]: q for q in json.loads(_cli(cluster, "-o", "json", "queue",
                                                     "list").stdout)}
    assert queues["analytics"]["weight"] == 3.0
    assert queues["analytics"]["quota"]["cpu"] == 8000
    table = _cli(cluster, "queue", "list").stdout
    assert "analytics" in table and "default" in table
    spec.write_text("name: analytics\nweight: -1\n")
    bad = _cli(cluster, "queue", "apply", str(spec))
    assert bad.returncode != 0 and "weight" in bad.stderr
