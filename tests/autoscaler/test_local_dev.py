"""The local provider end to end: in a dev cluster without agents, a job that fits nowhere
makes agents appear, runs on them, and the agents go away once idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import free_ports, wait_for


def _agents_under(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if " agent " in cmdline and str(root) in cmdline:
            found.append(int(entry))
    return found


def test_a_job_that_fits_nowhere_buys_local_agents_that_leave_when_idle(tmp_path: Path) -> None:
    http_port, raft_port = free_ports(2)
    data = tmp_path / "dev"
    log = open(tmp_path / "dev.log", "ab")  # noqa: SIM115 - closed below
    dev = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "dev", "--agents", "0", "--data-dir",
         str(data), "--http", f"127.0.0.1:{http_port}", "--raft", f"127.0.0.1:{raft_port}",
         "--log-level", "warning"],
        stdout=log, stderr=log, env={**os.environ, "HOME": str(tmp_path)})
    url = f"http://127.0.0.1:{http_port}"
    try:
        token = wait_for(lambda: (data / "api.token").read_text().strip(), 20, "the token")
        http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"})
        wait_for(lambda: http.get("/v1/status").json()["leader"], 20, "a leader")
        pool = {"name": "laptop", "provider": "local", "min_nodes": 0, "max_nodes": 2,
                "scale_down_idle": "3s",
                "settings": {"state_dir": str(tmp_path / "local-provider")}}
        assert http.put("/v1/pools/laptop", json=pool).status_code == 200
        job = {"id": "needs-room", "type": "batch", "groups": [{
            "name": "g", "count": 2, "resources": {"cpu": 500, "memory": 256},
            "task": {"command": [sys.executable, "-c", "print('ran on a bought agent')"]}}]}
        assert http.post("/v1/jobs", json=job).status_code == 201

        nodes = wait_for(lambda: [n for n in http.get("/v1/nodes").json()
                                  if n["pool"] == "laptop"], 30, "an agent to join")
        assert nodes[0]["provider"] == "local"
        wait_for(lambda: http.get("/v1/jobs/needs-room").json()["status"] == "complete", 30,
                 "the job to complete on the new agent")
        activities = http.get("/v1/autoscaler/activities").json()
        assert any(a.get("action") == "launch" for a in activities), activities
        wait_for(lambda: any(a.get("action") == "terminate" and a.get("status") == "done"
                             for a in http.get("/v1/autoscaler/activities").json()), 40,
                 "the idle agent released")
        wait_for(lambda: not _agents_under(tmp_path), 20, "no agent process left")
        http.close()
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(60)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait(10)
        log.close()
        for pid in _agents_under(tmp_path):
            os.kill(pid, signal.SIGKILL)
