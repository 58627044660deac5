"""A member node going NotReady, or a whole member cluster becoming unreachable, marks its
nodes down after the node TTL and the work is placed elsewhere; when the cluster comes back,
the pods of the replaced allocations are deleted, so no two copies remain. Capacity follows
the pods federation does not own."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx

from tests.harness import Cluster, wait_for
from tests.kubernetes.conftest import member
from tests.kubernetes.test_member_placement import _allocs, _nodes, add

TTL = 2.0  # the harness's --heartbeat-ttl


def _service(url: str, count: int, cpu: int = 100, spread: str | None = "cluster") -> None:
    group = {"name": "web", "count": count, "resources": {"cpu": cpu, "memory": 64},
             "task": {"driver": "exec", "command": ["sleep", "300"]}}
    if spread:
        group["spread"] = spread
    job = {"id": "web", "type": "service", "groups": [group]}
    assert httpx.post(url + "/v1/jobs", json=job, timeout=10).status_code == 201


def _running(url: str) -> list[dict]:
    return [a for a in _allocs(url, "web")
            if a["desired_status"] == "run" and a["client_status"] == "running"]


def _cluster_of(url: str) -> dict[str, str]:
    return {n["id"]: n.get("cluster") or "agents" for n in _nodes(url)}


def test_replicas_of_a_lost_member_come_back_elsewhere_and_no_duplicate_remains(
        server: Cluster, fakes, tmp_path: Path):
    url = server.servers[0].url
    east = member(fakes, tmp_path, "east", 3)
    west = member(fakes, tmp_path, "west", 3)
    add(url, east, tmp_path)
    add(url, west, tmp_path)
    wait_for(lambda: sum(n["status"] == "ready" for n in _nodes(url)) == 6, 60,
             "six member nodes ready")
    _service(url, 6)
    wait_for(lambda: len(_running(url)) == 6, 60, "six running replicas")
    where = Counter(_cluster_of(url)[a["node_id"]] for a in _running(url))
    assert where == {"east": 3, "west": 3}

    # One member node goes NotReady: after the TTL it is down and its replica moves.
    victim = next(a for a in _running(url) if _cluster_of(url)[a["node_id"]] == "west")
    victim_node = next(n for n in _nodes(url) if n["id"] == victim["node_id"])
    west.set_node_ready(victim_node["name"].split(".", 1)[1], False)
    wait_for(lambda: next(n for n in _nodes(url) if n["id"] == victim["node_id"])["status"]
             == "down", TTL + 10, "the NotReady node to be marked down")
    wait_for(lambda: len(_running(url)) == 6 and victim["id"] not in
             {a["id"] for a in _running(url)}, 30, "the replica placed again")

    # The whole east cluster becomes unreachable: its replicas come back elsewhere within
    # the TTL plus one pass.
    east.go_offline()
    lost_at = time.monotonic()
    east_allocs = {a["id"] for a in _running(url) if _cluster_of(url)[a["node_id"]] == "east"}
    assert east_allocs

    def replaced() -> bool:
        running = _running(url)
        return len(running) == 6 and not east_allocs & {a["id"] for a in running}
    wait_for(replaced, TTL + 20, "east's replicas running elsewhere")
    took = time.monotonic() - lost_at
    clusters = _cluster_of(url)
    assert {clusters[a["node_id"]] for a in _running(url)} == {"west"}
    assert all(n["status"] == "down" for n in _nodes(url) if n.get("cluster") == "east")
    assert took < TTL + 15, took
    assert len(east.federation_pods()) == len(east_allocs)  # it never heard of it

    # East comes back: its nodes are ready again, and the pods of the replaced allocations
    # are deleted there, so every replica runs exactly once.
    east.go_online()
    wait_for(lambda: all(n["status"] == "ready" for n in _nodes(url)
                         if n.get("cluster") == "east" or n["id"] != victim["node_id"]),
             30, "east's nodes ready again")
    wait_for(lambda: not east.federation_pods(), 30, "east's stale pods deleted")
    running = {a["id"] for a in _running(url)}
    pods = [p["metadata"]["labels"]["federation.io/allocation"]
            for fake in (east, west) for p in fake.federation_pods()]
    assert len(running) == 6
    assert sorted(p for p in pods if p in running) == sorted(running)
    assert len(pods) == len(set(pods))


def test_pods_not_owned_by_federation_reduce_capacity_and_a_full_node_gets_nothing(
        server: Cluster, fakes, tmp_path: Path):
    url = server.servers[0].url
    east = member(fakes, tmp_path, "east", 2, cpu="2", memory="4Gi")
    east.add_pod("daemon-1", "east-1", cpu="500m", memory="1Gi")
    east.add_pod("batch-done", "east-1", cpu="1", memory="1Gi", phase="Succeeded")
    add(url, east, tmp_path)

    def capacity(name: str) -> dict | None:
        node = next((n for n in _nodes(url) if n["name"] == name), None)
        return node["capacity"] if node and node["status"] == "ready" else None
    wait_for(lambda: capacity("east.east-1") == {"cpu_milli": 1500, "memory_mib": 3072,
                                                 "gpu": 0}, 60, "east-1 at 1500m")
    wait_for(lambda: capacity("east.east-2") == {"cpu_milli": 2000, "memory_mib": 4096,
                                                 "gpu": 0}, 30, "east-2 at 2000m")

    # Another team fills east-2: federation sees it and places nothing more there.
    east.add_pod("hog", "east-2", cpu="2", memory="1Gi", namespace="other")
    wait_for(lambda: (capacity("east.east-2") or {}).get("cpu_milli") == 1, 30,
             "east-2 full")
    _service(url, 4, cpu=500, spread=None)
    wait_for(lambda: len(_running(url)) == 3, 60, "three replicas running")
    # The scheduler has judged the fourth: it reports it unplaced (a pass that found no room).
    wait_for(lambda: httpx.get(url + "/v1/jobs/web", timeout=5).json()["unplaced"].get("web"),
             30, "the fourth replica reported unplaced")
    allocs = [a for a in _allocs(url, "web") if a["desired_status"] == "run"]
    assert len(allocs) == 3
    names = {n["id"]: n["name"] for n in _nodes(url)}
    assert {names[a["node_id"]] for a in allocs} == {"east.east-1"}
    assert not [p for p in east.federation_pods() if p["spec"]["nodeName"] == "east-2"]
    job = httpx.get(url + "/v1/jobs/web", timeout=5).json()
    assert job["unplaced"].get("web"), job  # one instance waits for room
