"""Raft traffic is authenticated, the API takes tokens, and unsafe settings are refused."""

from __future__ import annotations

import pickle
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import httpx

from tests.harness import Cluster, ServerProcess, free_ports, wait_for


class _Payload:
    """Unpickling this creates a file: proof of code execution if a server ever does it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _frame(obj: object) -> bytes:
    data = zlib.compress(pickle.dumps(obj))
    return struct.pack("i", len(data)) + data


def test_a_server_with_the_wrong_secret_cannot_join_and_is_logged(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    cluster.wait_leader()
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-cluster-secret-at-all")
    # pysyncobj connections are dialled by the peer whose address sorts higher: give the
    # intruder such an address, so that it really knocks on every server's Raft port.
    highest = max(s.raft for s in cluster.servers)
    http_port = free_ports(1)[0]
    raft_port = next(p for p in (free_ports(1)[0] for _ in range(200))
                     if f"127.0.0.1:{p}" > highest and p != http_port)
    intruder = ServerProcess(
        id="intruder", http_port=http_port, raft_port=raft_port,
        peers=[s.raft for s in cluster.servers], data_dir=tmp_path / "intruder",
        secret_file=wrong,
    ).start()
    try:
        wait_for(lambda: all("did not authenticate" in s.log() for s in cluster.servers), 10,
                 "every server to log the rejected connection")
        # The intruder learns nothing: no leader, not one log entry of the cluster.
        status = intruder.status()
        assert status["leader"] is None
        assert status["index"] == 0
        assert intruder.get("/v1/jobs").json() == []
        leader = cluster.wait_leader()
        assert leader.id in {"s1", "s2", "s3"}
        assert leader.post("/v1/jobs", json={"id": "still-fine", "type": "service", "groups": [{
            "name": "g", "resources": {"cpu": 1, "memory": 1},
            "task": {"command": ["true"]}}]}).status_code == 201
    finally:
        intruder.kill()


def test_an_unauthenticated_pickle_sent_to_the_raft_port_is_never_unpickled(
        cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    target = cluster.servers[0]
    for message in (_Payload(marker), ["status"], target.raft):
        with socket.create_connection(("127.0.0.1", target.raft_port), timeout=2) as sock:
            sock.sendall(_frame(message))
            sock.settimeout(2)
            try:
                assert sock.recv(1024) == b""  # the server hangs up
            except (ConnectionResetError, TimeoutError):
                pass
    wait_for(lambda: "did not authenticate" in target.log(), 5, "the rejection to be logged")
    assert not marker.exists()
    metrics = target.get("/metrics").text
    assert "federation_raft_rejected_connections" in metrics
    assert cluster.wait_leader() is not None


def _refused_start(tmp_path: Path, *args: str, http_host: str = "127.0.0.1",
                   env: dict[str, str] | None = None) -> str:
    """Run `federation server` with ``args``; it must exit non-zero without a traceback.
    Returns what it printed on stderr."""
    http_port, raft_port = free_ports(2)
    result = subprocess.run(
        [sys.executable, "-m", "federation.cli.main", "server", "--id", "a", "--data-dir",
         str(tmp_path / "d"), "--http", f"{http_host}:{http_port}", "--raft",
         f"127.0.0.1:{raft_port}", *args],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_server_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    bare_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    assert "Raft secret is required" in _refused_start(tmp_path, env=bare_env)


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tooshort")
    assert "at least 16 characters" in _refused_start(tmp_path, "--secret-file", str(short))


def test_a_public_api_without_a_token_needs_insecure(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-long-enough-cluster-secret")
    stderr = _refused_start(tmp_path, "--secret-file", str(secret), http_host="0.0.0.0")
    assert "--insecure" in stderr


def test_with_a_token_file_every_endpoint_but_health_needs_the_token(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", size=1, token="s3cret-api-token").start()
    try:
        server = c.servers[0]
        wait_for(lambda: httpx.get(server.url + "/v1/health").status_code == 200, 15, "health")
        assert httpx.get(server.url + "/v1/status").status_code == 401
        assert httpx.get(server.url + "/v1/jobs").json()["error"]["code"] == "unauthorized"
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(server.url + "/v1/jobs", headers=wrong).status_code == 403
        assert httpx.get(server.url + "/metrics", headers=wrong).status_code == 403
        good = {"Authorization": "Bearer s3cret-api-token"}
        assert httpx.get(server.url + "/v1/jobs", headers=good).status_code == 200
        assert httpx.get(server.url + "/metrics", headers=good).status_code == 200
        assert httpx.get(server.url + "/openapi.json").status_code == 401
        assert "paths" in httpx.get(server.url + "/openapi.json", headers=good).json()
        assert httpx.get(server.url + "/docs").status_code == 404
    finally:
        c.kill_all()


def test_the_token_never_appears_in_the_server_log(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", size=1, token="very-private-token-value").start()
    try:
        server = c.servers[0]
        wait_for(lambda: httpx.get(server.url + "/v1/health").status_code == 200, 15, "health")
        httpx.get(server.url + "/v1/jobs", headers={"Authorization": "Bearer wrong-one"})
    finally:
        c.stop()
    log = c.servers[0].log()
    assert "very-private-token-value" not in log
    assert "test-cluster-secret" not in log


def test_node_heartbeats_need_the_node_token(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    reg = leader.post("/v1/nodes", json={"name": "n1",
                                         "capacity": {"cpu_milli": 1000, "memory_mib": 512}})
    node = reg.json()
    url = f"/v1/nodes/{node['id']}/heartbeat"
    assert leader.post(url, json={}).status_code == 401
    assert leader.post(url, json={}, headers={"X-Node-Token": "forged"}).status_code == 403
    ok = leader.post(url, json={}, headers={"X-Node-Token": node["token"]})
    assert ok.status_code == 200
    assert ok.json()["status"] == "ready"
    assert "token_hash" not in ok.json()
