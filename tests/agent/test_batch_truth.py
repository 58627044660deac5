"""Batch truth on a real 3-server cluster with real agents: a copy the system stopped never
counts as success, and a job that depends on a batch job waits for the copies it still wants.

The scenario of the regression: an agent goes silent for longer than the heartbeat TTL (it is
paused with SIGSTOP, so its task keeps running, as behind a network partition). The servers
mark its node down and place a replacement elsewhere. When the agent comes back it stops the
old copy (SIGTERM); that copy must be reported ``stopped``, the job must not say ``complete``
while the replacement runs, and the dependent job must not start until the replacement
succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Cluster, wait_for


class Agent:
    def __init__(self, root: Path, name: str, servers: list[str]) -> None:
        self.name = name
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.servers = servers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        with open(self.log_path, "ab") as log:
            env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "federation.cli.main", "agent",
                 "--server", ",".join(self.servers), "--data-dir", str(self.data_dir),
                 "--name", self.name, "--cpu", "2000", "--memory", "2048"],
                stdout=log, stderr=log, env=env)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def truth_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, httpx.Client, list[Agent]]]:
    servers = Cluster(tmp_path / "servers", size=3).start()  # loopback: no API token
    agents: list[Agent] = []
    try:
        leader = servers.wait_leader(30)
        http = httpx.Client(base_url=leader.url, timeout=10)
        root = tmp_path / "agents"
        root.mkdir()
        agents.extend(Agent(root, n, servers.urls).start() for n in ("a1", "a2"))
        yield servers, http, agents
        http.close()
    finally:
        for agent in agents:
            agent.kill()
        servers.stop()
        # Whatever task an agent started (they run in sessions of their own) goes too.
        for pid in _pids_with_env(b"FEDERATION_ALLOC_ID="):
            if str(tmp_path).encode() in _environ(pid):
                _kill(pid)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _pids_with_env(item: bytes) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and any(v.startswith(item) for v in _environ(int(entry)).split(b"\0")):
            stat = Path(f"/proc/{entry}/stat").read_text(errors="replace") if os.path.exists(
                f"/proc/{entry}/stat") else ""
            if stat and stat.rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(entry))
    return pids


def task_pids(alloc_id: str) -> list[int]:
    return _pids_with_env(f"FEDERATION_ALLOC_ID={alloc_id}".encode())


def allocs(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    answer = http.get("/v1/allocations", params={"job": job_id})
    answer.raise_for_status()
    return sorted(answer.json(), key=lambda a: a.get("create_index", 0))


def job_status(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"/v1/jobs/{job_id}").json()["status"])


def test_a_partitioned_agents_stopped_copy_is_not_success_and_dependents_wait(
        truth_cluster, tmp_path: Path) -> None:
    servers, http, agents = truth_cluster
    release = tmp_path / "release"
    # Runs until the test creates the release file, then succeeds.
    wait_then_succeed = ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.1; done"]
    first = {"id": "first", "type": "batch", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "restart": {"attempts": 0},
        "task": {"driver": "exec", "command": wait_then_succeed}}]}
    second = {"id": "second", "type": "batch", "depends_on": ["first"], "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"driver": "exec", "command": ["true"]}}]}
    assert http.post("/v1/jobs", json=first).status_code == 201
    assert http.post("/v1/jobs", json=second).status_code == 201

    (old,) = wait_for(lambda: [a for a in allocs(http, "first")
                               if a["client_status"] == "running"], 30, "the first copy running")
    wait_for(lambda: task_pids(old["id"]), 10, "the first copy's process")
    nodes = {n["id"]: n["name"] for n in http.get("/v1/nodes").json()}
    silent = next(a for a in agents if a.name == nodes[old["node_id"]])

    # Partition: the agent is paused well past the TTL (2 s); its task keeps running.
    silent.signal(signal.SIGSTOP)
    try:
        new = wait_for(lambda: next((a for a in allocs(http, "first")
                                     if a["id"] != old["id"] and a["client_status"] == "running"),
                                    None), 30, "a replacement running on the other node")
        assert new["node_id"] != old["node_id"]
        assert task_pids(old["id"]), "the old copy runs on behind the partition"
    finally:
        silent.signal(signal.SIGCONT)

    # Back: the agent stops its old copy, which is reported stopped, never complete.
    wait_for(lambda: not task_pids(old["id"]), 30, "the old copy's process to be stopped")
    def old_copy_if_stopped() -> dict[str, Any] | None:
        (found,) = [a for a in allocs(http, "first") if a["id"] == old["id"]]
        return found if found["client_status"] == "stopped" else None

    stopped = wait_for(old_copy_if_stopped, 30, "the old copy reported stopped")
    assert "stopped" in stopped["message"]
    assert stopped["desired_status"] == "stop"
    # While the replacement runs, the job is not complete and its dependent does not start:
    # watched over several scheduler passes, on every server.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert job_status(http, "first") != "complete"
        assert allocs(http, "second") == []
        time.sleep(0.2)
    assert task_pids(new["id"])
    for server in servers.servers:
        answer = httpx.get(f"{server.url}/v1/jobs/first", timeout=5).json()
        assert answer["status"] != "complete"

    # The replacement succeeds: now the job is complete and the dependent runs.
    release.touch()
    wait_for(lambda: job_status(http, "first") == "complete", 30, "the first job complete")
    wait_for(lambda: job_status(http, "second") == "complete", 30, "the dependent job to run")
    assert [a["client_status"] for a in allocs(http, "first")] == ["stopped", "complete"]
