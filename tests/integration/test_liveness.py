"""Node liveness kept out of the Raft log, on three real servers (``--heartbeat-ttl 2``).

Heartbeats live in the leader's memory: a node that beats commits nothing, a follower hands a
heartbeat to the leader, a silent node is marked down after the TTL, and a new leader gives
every node a grace TTL before it judges anyone.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.harness import Cluster, ServerProcess, wait_for

TTL = 2.0


def register(server: ServerProcess, name: str) -> tuple[str, str]:
    answer = server.post("/v1/nodes", json={
        "name": name, "capacity": {"cpu_milli": 1000, "memory_mib": 512}})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["id"], body["token"]


def beat(server: ServerProcess, node: tuple[str, str]) -> httpx.Response:
    return server.post(f"/v1/nodes/{node[0]}/heartbeat", json={},
                       headers={"X-Node-Token": node[1]})


def settled_commit_index(server: ServerProcess, nodes: list[tuple[str, str]]) -> int:
    """The leader's commit index once nothing has been committed for a second (the nodes
    beating meanwhile, so none goes down)."""
    last = server.status()["commit_index"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for _ in range(4):
            for node in nodes:
                beat(server, node)
            time.sleep(0.25)
        now = server.status()["commit_index"]
        if now == last:
            return now
        last = now
    raise AssertionError("the cluster kept committing")


def test_heart_beating_nodes_commit_nothing_to_the_raft_log(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]
    nodes = [register(leader, f"quiet-{i}") for i in range(3)]
    before = settled_commit_index(leader, nodes)
    for _ in range(10):
        for node in nodes:
            for server in (leader, follower):
                answer = beat(server, node)
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "ready"
    assert leader.status()["commit_index"] == before  # 60 heartbeats, no entry
    # Small answers: the node's standing, not its work or the cluster's.
    assert set(answer.json()) == {"id", "name", "status", "draining", "last_heartbeat",
                                  "heartbeat_ttl"}


def test_a_node_beating_only_through_a_follower_stays_ready(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]
    node = register(follower, "via-follower")
    stop_at = time.monotonic() + 3 * TTL
    while time.monotonic() < stop_at:
        assert beat(follower, node).status_code == 200
        time.sleep(TTL / 4)
    view = leader.get(f"/v1/nodes/{node[0]}").json()
    assert view["status"] == "ready"
    # The leader saw the beats the follower handed it.
    assert time.time() - view["last_heartbeat"] < TTL


def test_a_relayed_batch_not_signed_by_a_server_is_refused(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    node = register(leader, "forged")
    before = leader.get(f"/v1/nodes/{node[0]}").json()["last_heartbeat"]
    time.sleep(0.1)
    body = json.dumps({"from": "s9", "sent_at": time.time(), "beats": {node[0]: 0}})
    for signature in (None, "0" * 64):
        headers = {"Content-Type": "application/json"}
        if signature:
            headers["X-Federation-Relay-Signature"] = signature
        answer = leader.post("/v1/internal/heartbeats", content=body, headers=headers)
        assert answer.status_code == 403, answer.text
    # Nothing was recorded: the node's last sign of life is still its registration.
    assert leader.get(f"/v1/nodes/{node[0]}").json()["last_heartbeat"] == before


def test_a_silent_node_is_marked_down_after_the_ttl_not_before(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    node = register(leader, "goes-quiet")
    assert beat(leader, node).status_code == 200
    last = time.monotonic()
    time.sleep(TTL * 0.6)
    assert leader.get(f"/v1/nodes/{node[0]}").json()["status"] == "ready"
    wait_for(lambda: leader.get(f"/v1/nodes/{node[0]}").json()["status"] == "down", 3 * TTL,
             "the silent node marked down")
    assert time.monotonic() - last > TTL
    # Its next heartbeat is a transition, committed: ready again on every server.
    assert beat(leader, node).json()["status"] == "ready"
    for server in cluster.servers:
        wait_for(lambda s=server: s.get(f"/v1/nodes/{node[0]}").json()["status"] == "ready",
                 5, "ready again everywhere")


def test_a_new_leader_marks_no_heart_beating_node_down(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    nodes = [register(leader, f"steady-{i}") for i in range(4)]
    gaps: dict[str, float] = {}
    stop = threading.Event()

    def agent(node: tuple[str, str], start: int) -> None:
        """Beats every TTL/3, moving to the next server when one fails, as agents do."""
        turn, last_ok = start, time.monotonic()
        while not stop.is_set():
            server = cluster.servers[turn % len(cluster.servers)]
            try:
                ok = server.alive() and beat(server, node).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                now = time.monotonic()
                gaps[node[0]] = max(gaps.get(node[0], 0.0), now - last_ok)
                last_ok = now
                stop.wait(TTL / 3)
            else:
                turn += 1
                stop.wait(0.05)

    threads = [threading.Thread(target=agent, args=(n, i), daemon=True)
               for i, n in enumerate(nodes)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(TTL)
        leader.kill()

        def another_leader() -> ServerProcess | None:
            try:
                chosen = cluster.wait_leader(timeout=1.0)
            except AssertionError:
                return None
            return chosen if chosen is not leader else None

        new = wait_for(another_leader, 15, "a new leader")
        # Through the grace TTL and well beyond it, nobody is marked down.
        deadline = time.monotonic() + 3 * TTL
        while time.monotonic() < deadline:
            statuses = {n["name"]: n["status"] for n in new.get("/v1/nodes").json()}
            assert all(statuses[f"steady-{i}"] == "ready" for i in range(4)), statuses
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    # Every node kept beating within one TTL across the failover.
    assert set(gaps) == {n[0] for n in nodes}
    assert max(gaps.values()) < TTL, gaps


def test_a_large_cluster_is_told_a_longer_ttl_and_judged_by_it(tmp_path) -> None:
    """``--max-heartbeats-per-second``: 5 nodes at 3 beats per TTL within 3 beats/s are told
    a 5 s TTL, not the configured 1 s, and a silent one is marked down after 5 s, not 1 s."""
    c = Cluster(tmp_path / "c", size=1, extra_args=[
        "--heartbeat-ttl", "1", "--max-heartbeats-per-second", "3"]).start()
    try:
        server = c.wait_leader()
        nodes = [register(server, f"n{i}") for i in range(5)]
        beats = [beat(server, node) for node in nodes]
        last = time.monotonic()
        assert {b.json()["heartbeat_ttl"] for b in beats} == {5.0}
        assert server.get("/v1/agent/settings").json() == {"heartbeat_ttl": 5.0}
        time.sleep(3.0)  # three configured TTLs
        assert {server.get(f"/v1/nodes/{n[0]}").json()["status"] for n in nodes} == {"ready"}
        wait_for(lambda: all(server.get(f"/v1/nodes/{n[0]}").json()["status"] == "down"
                             for n in nodes), 15, "the silent nodes marked down")
        assert time.monotonic() - last > 5.0
    finally:
        c.stop()
