"""Three real masters on loopback: election, replication, failover, restart, durability."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from federation.client import Client
from federation.errors import FederationError
from tests.harness import Cluster, wait_for


def job(job_id: str) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "work", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["true"]}}]}


def test_three_servers_elect_one_leader_and_list_each_other(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    status = wait_for(lambda: (s := leader.status()) and all(x["id"] for x in s["servers"]) and s,
                      10, "every server to announce itself")
    roles = sorted(s["role"] for s in status["servers"])
    assert roles == ["follower", "follower", "leader"]
    assert {s["http"] for s in status["servers"]} == set(cluster.urls)


def test_a_write_through_a_follower_is_acknowledged_and_visible_everywhere(cluster) -> None:
    follower = cluster.followers(cluster.wait_leader())[0]
    response = follower.post("/v1/jobs", json=job("via-follower"))
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    for server in cluster.servers:
        got = wait_for(lambda s=server: s.get("/v1/jobs/via-follower").status_code == 200,
                       5, f"the job on {server.id}")
        assert got
    consistent = cluster.servers[2].get("/v1/jobs/via-follower", params={"consistent": "true"})
    assert consistent.json()["id"] == "via-follower"


def test_after_the_leader_is_killed_a_survivor_acknowledges_a_write_within_3s(cluster) -> None:
    leader = cluster.wait_leader()
    survivors = cluster.followers(leader)
    leader.kill()
    killed_at = time.monotonic()

    def write() -> bool:
        r = httpx.post(survivors[0].url + "/v1/jobs", json=job("after-failover"), timeout=2,
                       headers={"Idempotency-Key": "after-failover-1"})
        return r.status_code == 201

    wait_for(write, 3.0, "a write acknowledged after the leader was killed", interval=0.05)
    assert time.monotonic() - killed_at < 3.0


def test_a_restarted_server_catches_up(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    victim = cluster.followers(leader)[0]
    victim.kill()
    for i in range(20):
        assert leader.post("/v1/jobs", json=job(f"while-down-{i}")).status_code == 201
    victim.start()
    wait_for(lambda: len(victim.get("/v1/jobs").json()) == 20, 10, "the restarted follower")


def test_all_state_survives_a_full_cluster_restart(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    for i in range(30):
        assert leader.post("/v1/jobs", json=job(f"durable-{i}")).status_code == 201
    reg = leader.post("/v1/nodes", json={"name": "rack1-host1",
                                         "capacity": {"cpu_milli": 4000, "memory_mib": 8192}})
    assert reg.status_code == 201
    cluster.stop()
    cluster.start()
    cluster.wait_leader()
    for server in cluster.servers:
        jobs = wait_for(lambda s=server: (j := s.get("/v1/jobs").json()) and len(j) == 30 and j,
                        10, f"all jobs back on {server.id}")
        assert {j["id"] for j in jobs} == {f"durable-{i}" for i in range(30)}
        nodes = server.get("/v1/nodes").json()
        assert [n["name"] for n in nodes] == ["rack1-host1"]


def test_no_acknowledged_write_is_lost_across_two_leader_kills(cluster: Cluster) -> None:
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with Client(cluster.urls, timeout=2, deadline=8, backoff=0.05) as client:
            i = 0
            while not stop.is_set():
                job_id = f"w-{i}"
                try:
                    client.submit_job(job(job_id))
                    acknowledged.append(job_id)
                except FederationError:
                    pass
                i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for _ in range(2):
            time.sleep(1.0)
            leader = cluster.wait_leader()
            leader.kill()
            time.sleep(1.0)
            cluster.wait_leader()
            leader.start()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(15)
    assert len(acknowledged) > 50, "the writer made too little progress to prove anything"
    cluster.wait_leader()
    for server in cluster.servers:
        def has_all(s=server) -> bool:
            present = {j["id"] for j in s.get("/v1/jobs").json()}
            return set(acknowledged) <= present
        wait_for(has_all, 15, f"every acknowledged job on {server.id}")


def test_with_no_quorum_writes_get_503_with_what_is_known(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c").start()
    try:
        leader = c.wait_leader()
        for follower in c.followers(leader):
            follower.kill()
        survivor = leader
        r = wait_for(lambda: (x := survivor.post("/v1/jobs", json=job("no-quorum"))).status_code
                     == 503 and x, 10, "a 503 without quorum")
        body = r.json()["error"]
        assert body["code"] in ("no_leader", "commit_timeout")
        assert "leader" in body
    finally:
        c.kill_all()
