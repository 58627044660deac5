"""Real agents across the loss of the leader, on three real servers (``--heartbeat-ttl 3``).

An agent keeps beating through a leader kill: its heartbeats are answered within one TTL
of each other, and the new leader marks nobody down. A beat no server took is tried again
within a third of an interval, not a whole interval later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import Cluster, ServerProcess, stop_all, wait_for

TTL = 3.0


@pytest.fixture
def slow_cluster(tmp_path: Path):
    """Three servers with a 3 s TTL (an agent beats every second)."""
    c = Cluster(tmp_path / "cluster", extra_args=["--heartbeat-ttl", str(TTL)]).start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.kill_all()


def start_agents(cluster: Cluster, root: Path, count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    env.pop("FEDERATION_TOKEN", None)
    agents = []
    for i in range(count):
        with open(root / f"agent-{i}.log", "ab") as log:
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "federation.cli.main", "agent", "--server",
                 ",".join(cluster.urls[i % 3:] + cluster.urls[:i % 3]),
                 "--data-dir", str(root / f"agent-{i}"), "--name", f"a{i}",
                 "--cpu", "1000", "--memory", "512"], stdout=log, stderr=log, env=env))
    return agents


def beats_seen(servers: list[ServerProcess]) -> dict[str, tuple[str, float | None]]:
    """Each node's status and latest heartbeat any live server saw (a follower sees those
    sent to it, the leader those too, relayed)."""
    out: dict[str, tuple[str, float | None]] = {}
    for server in servers:
        if not server.alive():
            continue
        try:
            nodes = server.get("/v1/nodes").json()
        except (httpx.HTTPError, ValueError):
            continue
        for node in nodes:
            status, last = out.get(node["name"], ("ready", None))
            beat = node.get("last_heartbeat")
            if beat is not None and (last is None or beat > last):
                last = beat
            out[node["name"]] = ("down" if node["status"] == "down" else status, last)
    return out


def watch_statuses(cluster: Cluster, seconds: float) -> None:
    """For ``seconds``: fail at once if any server shows a node marked down."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, (status, _) in beats_seen(cluster.servers).items():
            assert status == "ready", f"{name} marked down"
        time.sleep(0.1)


def log_times(log: Path, needle: str) -> list[float]:
    """When the agent logged a line containing ``needle``."""
    import datetime

    out = []
    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            out.append(stamp.timestamp())
    return out


def test_agents_keep_beating_within_the_ttl_across_a_leader_kill(
        slow_cluster: Cluster, tmp_path: Path) -> None:
    cluster = slow_cluster
    leader = cluster.wait_leader()
    names = [f"a{i}" for i in range(3)]
    agents = start_agents(cluster, tmp_path, len(names))
    try:
        wait_for(lambda: all(beats_seen([leader]).get(n, ("", None))[1] for n in names), 30,
                 "every agent registered and beating")
        watch_statuses(cluster, TTL)  # steady
        killed_at = time.time()
        leader.kill()
        # Through the election, the grace TTL and well beyond: nobody is marked down.
        watch_statuses(cluster, 4 * TTL)
        new = cluster.wait_leader()
        assert new is not leader
        assert "marked down" not in new.log()
    finally:
        stop_all(agents, signal.SIGTERM, 20)
    # Every agent had its heartbeats answered within one TTL of each other throughout.
    for i in range(len(names)):
        answered = [t for t in log_times(tmp_path / f"agent-{i}.log", "/heartbeat \"HTTP/1.1 200")
                    if killed_at - TTL <= t <= killed_at + 4 * TTL]
        assert answered and answered[0] < killed_at, f"agent {i} was not beating"
        gaps = [b - a for a, b in zip(answered, answered[1:], strict=False)]
        assert max(gaps) < TTL, (i, gaps)


def test_a_beat_no_server_took_is_tried_again_within_about_a_second(
        slow_cluster: Cluster, tmp_path: Path) -> None:
    cluster = slow_cluster
    leader = cluster.wait_leader()
    agents = start_agents(cluster, tmp_path, 1)
    try:
        wait_for(lambda: beats_seen([leader]).get("a0", ("", None))[1], 30, "the agent beating")
        # The leader and one follower die: the last server has no leader to relay to and
        # soon answers every beat 503, so each heartbeat call gives up at its deadline
        # (one interval, TTL/3).
        survivor = cluster.followers(leader)[0]
        for server in cluster.servers:
            if server is not survivor:
                server.kill()
        time.sleep(3 * TTL)
        failed = log_times(tmp_path / "agent-0.log", "heartbeat failed")
        assert len(failed) >= 4, failed
        spacing = sorted(b - a for a, b in zip(failed, failed[1:], strict=False))
        # Tried again within a third of an interval of giving up: a call lasts at most its
        # deadline (1 s) and the servers' quick 503s end it in 0.5-1 s, so the failures come
        # 0.7-1.35 s apart; waiting out a whole interval after each would put them
        # 1.5-2 s apart.
        assert spacing[len(spacing) // 2] < 1.45, spacing
    finally:
        stop_all(agents, signal.SIGTERM, 20)
