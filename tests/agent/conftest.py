"""Fixtures for agent tests: one in-process master on loopback, real agents as subprocesses.

Jobs are submitted through the API and placed by the master's own scheduler, committed
through its Raft node.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation.server.config import ServerConfig
from federation.server.master import Master
from tests.harness import SECRET, free_ports, wait_for

API_TOKEN = "agent-tests-api-token"
_IDS = itertools.count()


class Fed:
    """The master plus helpers that speak to it as a user (API token) would."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.url = master.config.http_url
        self.http = httpx.Client(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})

    def commit(self, command: dict[str, Any]) -> dict[str, Any]:
        result = self.master.commit_sync({"id": f"test-{next(_IDS)}-{time.time_ns()}",
                                          **command})
        assert result["ok"], result
        return result

    def node_id(self, name: str) -> str:
        return wait_for(lambda: self.master.machine.node_ids_by_name.get(name), 20,
                        f"node {name} to register")

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit a job through the API, as a user would; the leader's scheduler places it."""
        answer = self.http.post("/v1/jobs", json=spec)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def allocs(self, job_id: str) -> list[dict[str, Any]]:
        machine = self.master.machine
        ids = list(machine.alloc_ids_by_job.get(job_id, ()))
        found = [dict(machine.allocations[i]) for i in ids if i in machine.allocations]
        return sorted(found, key=lambda a: (a["group"], a["index"], a.get("create_index", 0)))

    def wait_allocs(self, job_id: str, count: int, status: str, timeout: float = 30
                    ) -> list[dict[str, Any]]:
        """Wait until ``count`` allocations of the job are in ``status``; return those."""
        def ready() -> list[dict[str, Any]] | None:
            matching = [a for a in self.allocs(job_id) if a["client_status"] == status]
            return matching if len(matching) >= count else None

        return wait_for(ready, timeout, f"{count} allocations of {job_id} {status} (now "
                        f"{[(a['index'], a['client_status']) for a in self.allocs(job_id)]})")

    def alloc(self, alloc_id: str) -> dict[str, Any]:
        return dict(self.master.machine.allocations[alloc_id])

    def wait_status(self, alloc_ids: list[str], status: str, timeout: float = 30) -> None:
        wait_for(lambda: all(self.alloc(a)["client_status"] == status for a in alloc_ids),
                 timeout, f"{alloc_ids} to be {status} "
                 f"(now {[self.alloc(a).get('client_status') for a in alloc_ids]})")


@pytest.fixture
def fed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fed]:
    """One server (TTL 2 s, or what ``@pytest.mark.heartbeat_ttl(seconds)`` says)."""
    marker = request.node.get_closest_marker("heartbeat_ttl")
    ttl = float(marker.args[0]) if marker else 2.0
    http, raft = free_ports(2)
    master = Master(ServerConfig(
        id="t1", data_dir=str(tmp_path / "server"), http=f"127.0.0.1:{http}",
        raft=f"127.0.0.1:{raft}", secret=SECRET, token=API_TOKEN, heartbeat_ttl=ttl))
    master.start()
    try:
        wait_for(lambda: master.raft is not None and master.raft.leader_addr(), 15, "a leader")
        fed = Fed(master)
        wait_for(lambda: fed.http.get("/v1/status").json()["leader"], 15, "the server table")
        yield fed
        fed.http.close()
    finally:
        master.stop()


class AgentProcess:
    def __init__(self, fed: Fed, root: Path, name: str, extra: list[str]) -> None:
        self.fed = fed
        self.name = name
        self.data_dir = root / name
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"{name}.log"

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, "FEDERATION_TOKEN": API_TOKEN, "OTEL_TRACES_EXPORTER": "none"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "federation.cli.main", "agent", "--server", self.fed.url,
             "--data-dir", str(self.data_dir), "--name", self.name, "--cpu", "4000",
             "--memory", "4096", *self.extra], stdout=log, stderr=log, env=env)
        log.close()
        return self

    @property
    def node_id(self) -> str:
        return self.fed.node_id(self.name)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def processes_under(root: Path, agents: bool = False) -> list[int]:
    """Pids whose command line or working directory lies under ``root``: tasks and executors
    (agents too with ``agents=True``)."""
    found, mark = [], str(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry}/cwd")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if not agents and " agent --server " in cmdline:
            continue
        if state != "Z" and (mark in cmdline or cwd.startswith(mark)):
            found.append(int(entry))
    return found


@pytest.fixture
def agents(fed: Fed, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []
    root = tmp_path / "agents"
    root.mkdir()

    def start(name: str, *extra: str) -> AgentProcess:
        agent = AgentProcess(fed, root, name, list(extra)).start()
        started.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.stop(signal.SIGKILL)
        for pid in processes_under(root, agents=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
