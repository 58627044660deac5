"""No input halts the cluster (real 3-server clusters on loopback).

Each test feeds one input that once stopped every server committing or stopped the leader's
scheduler for every job, then checks the cluster keeps committing (a control job is placed
within seconds) and that nothing was lost.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster, ServerProcess, wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "c", size=3,
                extra_args=["--heartbeat-ttl", "120", "--gc-interval", "1",
                            "--gc-periodic-keep", "3"]).start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.kill_all()


def add_node(server: ServerProcess, name: str, gpu: int = 0) -> str:
    response = server.post("/v1/nodes", json={
        "name": name, "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": gpu}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def job(job_id: str, *, kind: str = "service", gpu: float = 0, **extra) -> dict:
    resources = {"cpu": 100, "memory": 64, **({"gpu": gpu} if gpu else {})}
    return {"id": job_id, "type": kind, **extra, "groups": [{
        "name": "g", "count": 1, "resources": resources,
        "task": {"command": ["sleep", "600"]}}]}


def placed(server: ServerProcess, job_id: str, timeout: float = 10.0) -> list[dict]:
    def ready():
        allocs = server.get("/v1/allocations", params={"job": job_id}).json()
        return [a for a in allocs if a["desired_status"] == "run"]
    return wait_for(ready, timeout, f"an allocation of {job_id}")


def control_job_is_placed(c: Cluster, name: str) -> None:
    """The cluster commits and schedules: a new job is accepted and placed within seconds,
    and every server sees it."""
    leader = c.wait_leader()
    response = leader.post("/v1/jobs", json=job(name))
    assert response.status_code == 201, response.text
    placed(leader, name)
    for server in c.servers:
        wait_for(lambda s=server: s.get(f"/v1/jobs/{name}").status_code == 200, 10,
                 f"{name} on {server.id}")


def test_a_restore_with_a_node_without_name_is_refused_naming_it(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    for i in range(4):
        add_node(leader, f"n{i}")
    assert leader.post("/v1/jobs", json=job("before")).status_code == 201
    placed(leader, "before")
    snapshot = leader.get("/v1/snapshot").json()
    index_before = leader.get("/v1/status").json()["index"]

    bad = copy.deepcopy(snapshot)
    del bad["nodes"][3]["name"]
    response = leader.post("/v1/snapshot", json=bad)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "nodes[3].name"

    orphan = copy.deepcopy(snapshot)
    del orphan["allocations"][0]["job_id"]
    response = leader.post("/v1/snapshot", json=orphan)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "allocations[0].job_id"

    assert leader.get("/v1/status").json()["index"] == index_before  # nothing committed
    control_job_is_placed(cluster, "control")
    for server in cluster.servers:  # nothing lost, on any server
        assert {n["name"] for n in server.get("/v1/nodes").json()} == {f"n{i}" for i in range(4)}
        assert server.get("/v1/jobs/before").status_code == 200

    # A restart replays the log: the server comes back healthy and keeps up.
    follower = cluster.followers(leader)[0]
    follower.kill()
    follower.start()
    wait_for(lambda: follower.get("/v1/health").json()["leader_known"], 15, "a leader")
    control_job_is_placed(cluster, "after-restart")
    wait_for(lambda: follower.get("/v1/jobs/after-restart").status_code == 200, 10,
             "the restarted server to catch up")


def test_jobs_whose_scheduling_fails_are_set_aside_and_the_rest_is_placed(
        cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    for i in range(2):
        add_node(leader, f"gpu{i}", gpu=2)

    # A schedule that never fires is refused at the door, naming the field.
    response = leader.post("/v1/jobs", json=job("never", kind="batch", schedule="0 0 31 2 *"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "schedule"

    # Stored anyway (a backup taken before the rule, restored): a job the planner cannot
    # handle, and a periodic job whose schedule cannot be evaluated.
    snapshot = leader.get("/v1/snapshot").json()
    now = time.time()
    for job_id, spec in (
            ("unplannable", {**job("unplannable"), "groups": [{
                **job("x")["groups"][0], "resources": {"cpu": "lots", "memory": 64}}]}),
            ("never", job("never", kind="batch", schedule="0 0 31 2 *"))):
        snapshot["jobs"].append({
            "id": job_id, "spec": spec, "version": 1, "stopped": False, "parent": None,
            "launch_time": None, "unplaced": {}, "exhausted": {}, "submit_time": now - 60,
            "create_index": 1, "modify_index": 1})
    response = leader.post("/v1/snapshot", json=snapshot)
    assert response.status_code == 200, response.text

    # Valid input that once stopped every pass: GPU shares that do not add up to whole GPUs.
    for i in range(3):
        assert leader.post("/v1/jobs", json=job(f"share{i}", kind="batch", gpu=0.46)
                           ).status_code == 201
    control_job_is_placed(cluster, "control")
    for i in range(3):
        placed(leader, f"share{i}")

    def reason(job_id: str) -> str:
        unplaced = leader.get(f"/v1/jobs/{job_id}").json()["unplaced"]
        return unplaced.get("*", {}).get("explanation", "")

    assert wait_for(lambda: reason("unplannable"), 10, "the planning failure").startswith(
        "planning failed:")
    assert "does not fire within 5 years" in wait_for(lambda: reason("never"), 10,
                                                       "the schedule failure")
    log = leader.log()
    assert "job unplannable set aside: planning failed" in log
    assert log.count("job never set aside") == 1  # said once, not every pass
    control_job_is_placed(cluster, "control-2")


def test_a_per_second_cron_keeps_a_bounded_number_of_children(
        cluster: Cluster, tmp_path: Path) -> None:
    leader = cluster.wait_leader()
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    env.pop("FEDERATION_TOKEN", None)
    with open(tmp_path / "agent.log", "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "federation.cli.main", "agent", "--server",
             ",".join(cluster.urls), "--data-dir", str(tmp_path / "agent"), "--name", "a1",
             "--cpu", "2000", "--memory", "1024"], stdout=log, stderr=log, env=env)
    try:
        spec = job("tick", kind="batch", schedule="* * * * * *")
        spec["groups"][0]["task"]["command"] = ["true"]
        assert leader.post("/v1/jobs", json=spec).status_code == 201

        def children() -> list[dict]:
            return [j for j in leader.get("/v1/jobs").json() if j.get("parent") == "tick"]

        seen: set[str] = set()
        most = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = children()
            seen.update(j["id"] for j in current)
            most = max(most, len(current))
            time.sleep(0.25)
        assert len(seen) >= 8, f"only {len(seen)} children ran: {agent_log(tmp_path)}"
        # 3 finished children are kept; one more may be running, one more may have just
        # finished before the next collection (every second).
        assert most <= 3 + 2, f"{most} children at once"
        finished = [j for j in children() if j["status"] in ("complete", "failed")]
        # 3 kept, and what finished since the last collection (a second: one child, two
        # when the collection runs late on a busy machine).
        assert len(finished) <= 3 + 2, f"{len(finished)} finished children kept"
        for server in cluster.servers:  # collected on every server alike
            ids = {j["id"] for j in server.get("/v1/jobs", params={"consistent": "true"}
                                               ).json() if j.get("parent") == "tick"}
            assert len(ids) <= 3 + 2, f"{len(ids)} children on {server.id}"
    finally:
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(5)


def agent_log(tmp_path: Path) -> str:
    return (tmp_path / "agent.log").read_text(errors="replace")[-2000:]
