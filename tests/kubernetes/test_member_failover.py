"""The connectors run on the leader: when it fails, the new leader's connectors take the
member clusters over, re-register their nodes with those nodes' own tokens, and adopt the
pods they find: nothing runs twice, nothing is lost, new work still becomes pods."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.harness import Cluster, wait_for
from tests.kubernetes.conftest import member
from tests.kubernetes.test_member_placement import add


def _get(cluster: Cluster, path: str):
    for server in cluster.alive():
        try:
            return httpx.get(server.url + path, timeout=5).json()
        except httpx.HTTPError:
            continue
    raise AssertionError("no server answered")


def test_a_new_leader_takes_over_the_member_clusters_without_duplicates(
        tmp_path: Path, fakes):
    cluster = Cluster(tmp_path / "servers", size=3).start()
    try:
        leader = cluster.wait_leader(timeout=30)
        east = member(fakes, tmp_path, "east", 2)
        add(leader.url, east, tmp_path)
        wait_for(lambda: sum(n["status"] == "ready" for n in _get(cluster, "/v1/nodes")) == 2,
                 60, "the member nodes")
        job = {"id": "web", "type": "service", "groups": [{
            "name": "web", "count": 4, "resources": {"cpu": 100, "memory": 64},
            "task": {"driver": "exec", "command": ["sleep", "300"]}}]}
        assert httpx.post(leader.url + "/v1/jobs", json=job, timeout=10).status_code == 201

        def running() -> set[str]:
            return {a["id"] for a in _get(cluster, "/v1/allocations?job=web")
                    if a["desired_status"] == "run" and a["client_status"] == "running"}
        wait_for(lambda: len(running()) == 4, 60, "four running replicas")
        before = running()
        pods_before = {p["metadata"]["uid"] for p in east.federation_pods()}

        seen = len(east.requests)
        leader = cluster.wait_leader(timeout=30)  # leadership may have moved meanwhile
        leader.kill()
        new_leader = wait_for(lambda: next(
            (s for s in [cluster.wait_leader(timeout=30)] if s is not leader), None), 30,
            "a new leader")
        wait_for(lambda: any(path.startswith("/api/v1/nodes") and "watch" not in path
                             for _, path in east.requests[seen:]), 30,
                 "the new leader's connector listing the member")
        time.sleep(5)  # past the TTL (2 s): only heartbeats keep the nodes ready
        nodes = _get(cluster, "/v1/nodes")
        assert all(n["status"] == "ready" for n in nodes), nodes
        assert running() == before
        assert {p["metadata"]["uid"] for p in east.federation_pods()} == pods_before

        scaled = httpx.post(new_leader.url + "/v1/jobs/web/scale", json={"count": 6},
                            timeout=10)
        assert scaled.status_code == 200, scaled.text
        wait_for(lambda: len(running()) == 6 and len(east.federation_pods()) == 6, 60,
                 "two more pods made by the new leader's connector")
    finally:
        cluster.stop()
