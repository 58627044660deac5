"""The Raft port under hostile input, on a real 3-server cluster: a huge length prefix with
megabytes of noise, and a crowd of idle connections, from a peer that has no secret. The
leader keeps its leadership (same term), writes keep committing, the intruder's connections
are closed, and the port listens on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import struct
import time

from tests.harness import Cluster, wait_for


def job(job_id: str) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "work", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["true"]}}]}


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def listening_on(port: int) -> set[str]:
    """Addresses with a listening TCP socket on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                host, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(host)
                    if len(raw) == 4:
                        found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                    else:
                        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                        found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_the_raft_port_binds_exactly_the_given_address(cluster: Cluster) -> None:
    for server in cluster.servers:
        assert listening_on(server.raft_port) == {"127.0.0.1"}


def test_a_huge_frame_and_idle_connections_without_the_secret_do_not_unseat_the_leader(
        cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    term = leader.status()["term"]
    assert leader.post("/v1/jobs", json=job("before")).status_code == 201

    # A length prefix of 0x7fffffff, then 32 MB of noise: dropped at the prefix.
    flood = socket.create_connection(("127.0.0.1", leader.raft_port), timeout=5)
    sent = 0
    started = time.monotonic()
    try:
        flood.sendall(struct.pack("i", 0x7FFFFFFF))
        noise = os.urandom(1 << 20)
        while sent < 32 << 20:
            flood.sendall(noise)
            sent += len(noise)
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed by the server part-way through: what we want
    finally:
        flood.close()
    assert sent < 32 << 20 or time.monotonic() - started < 30

    # Many idle connections that never say anything.
    idle = []
    for _ in range(100):
        try:
            idle.append(socket.create_connection(("127.0.0.1", leader.raft_port), timeout=2))
        except OSError:
            break  # the backlog is full: refusing more is fine too
    try:
        for i in range(5):
            response = leader.post("/v1/jobs", json=job(f"during-{i}"))
            assert response.status_code == 201, response.text
        # Every idle connection is closed by the authentication deadline (3 s) or the cap.
        deadline = time.monotonic() + 15
        for sock in idle:
            assert closed_by_peer(sock, max(0.1, deadline - time.monotonic())), \
                "an unauthenticated connection was left open"
    finally:
        for sock in idle:
            sock.close()

    status = leader.status()
    assert status["leader"] == leader.id and status["term"] == term
    assert leader.post("/v1/jobs", json=job("after")).status_code == 201
    for server in cluster.servers:
        wait_for(lambda s=server: s.get("/v1/jobs/after").status_code == 200, 5,
                 f"the write on {server.id}")
    assert "did not authenticate" in leader.log()
