"""The local provider end to end, in a dev cluster that starts without agents: a job that fits
nowhere makes agents appear, runs on them, and the agents go away once idle; a node under the
pool's utilisation threshold gives its service to another node and goes away too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[httpx.Client]:
    """A `federation dev` cluster without agents; an API client for it."""
    http_port, raft_port = free_ports(2)
    data = tmp_path / "dev"
    log = open(tmp_path / "dev.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "dev", "--agents", "0", "--data-dir",
         str(data), "--http", f"127.0.0.1:{http_port}", "--raft", f"127.0.0.1:{raft_port}",
         "--log-level", "warning"],
        stdout=log, stderr=log,
        env={**os.environ, "HOME": str(tmp_path), "FEDERATION_AUTOSCALER_INTERVAL": "0.5"})
    try:
        token = wait_for(lambda: (data / "api.token").read_text().strip(), 20, "the token")
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            wait_for(lambda: http.get("/v1/status").json()["leader"], 20, "a leader")
            yield http
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        for pid in _agents_under(tmp_path):
            os.kill(pid, signal.SIGKILL)


def activities(http: httpx.Client) -> list[dict[str, Any]]:
    return http.get("/v1/autoscaler/activities").json()


def pool_nodes(http: httpx.Client, pool: str = "laptop") -> list[dict[str, Any]]:
    return [n for n in http.get("/v1/nodes").json() if n["pool"] == pool]


def running(http: httpx.Client, job: str) -> list[dict[str, Any]]:
    return [a for a in http.get(f"/v1/allocations?job={job}").json()
            if a["client_status"] == "running" and a["desired_status"] == "run"]


def service(job_id: str, cpu: int, memory: int) -> dict[str, Any]:
    return {"id": job_id, "type": "service", "groups": [{
        "name": "g", "count": 1, "resources": {"cpu": cpu, "memory": memory},
        "task": {"command": [sys.executable, "-c", "import time; time.sleep(600)"]}}]}


def test_a_job_that_fits_nowhere_buys_local_agents_that_leave_when_idle(
        dev: httpx.Client, tmp_path: Path) -> None:
    http = dev
    pool = {"name": "laptop", "provider": "local", "min_nodes": 0, "max_nodes": 2,
            "scale_down_idle": "3s", "settings": {"state_dir": str(tmp_path / "local-provider")}}
    assert http.put("/v1/pools/laptop", json=pool).status_code == 200
    job = {"id": "needs-room", "type": "batch", "groups": [{
        "name": "g", "count": 2, "resources": {"cpu": 500, "memory": 256},
        "task": {"command": [sys.executable, "-c", "print('ran on a bought agent')"]}}]}
    assert http.post("/v1/jobs", json=job).status_code == 201

    nodes = wait_for(lambda: pool_nodes(http), 30, "an agent to join")
    assert nodes[0]["provider"] == "local"
    wait_for(lambda: http.get("/v1/jobs/needs-room").json()["status"] == "complete", 30,
             "the job to complete on the new agent")
    assert any(a.get("action") == "launch" for a in activities(http))
    wait_for(lambda: any(a.get("action") == "terminate" and a.get("status") == "done"
                         for a in activities(http)), 40, "the idle agent released")
    wait_for(lambda: not _agents_under(tmp_path), 20, "no agent process left")


def test_a_node_under_the_utilisation_threshold_hands_its_service_over_and_leaves(
        dev: httpx.Client, tmp_path: Path) -> None:
    http = dev
    # local-small: 1000m CPU, 1024 MiB.
    pool = {"name": "laptop", "provider": "local", "min_nodes": 0, "max_nodes": 2,
            "instance_types": ["local-small"], "scale_down_idle": "3s",
            "scale_down_utilization": 0.5,
            "settings": {"state_dir": str(tmp_path / "local-provider")}}
    assert http.put("/v1/pools/laptop", json=pool).status_code == 200
    for job in (service("big", 600, 256), service("filler", 300, 64)):
        assert http.post("/v1/jobs", json=job).status_code == 201
    wait_for(lambda: running(http, "big") and running(http, "filler"), 40,
             "big and filler running")
    (first,) = pool_nodes(http)
    assert {running(http, "big")[0]["node_id"], running(http, "filler")[0]["node_id"]} == {
        first["id"]}

    # web does not fit beside them (1100m): a second node is bought for it.
    assert http.post("/v1/jobs", json=service("web", 200, 64)).status_code == 201
    (web,) = wait_for(lambda: running(http, "web"), 40, "web running")
    second = web["node_id"]
    assert second != first["id"]
    # Under 50% for the idle time, but web has no room to go to: the node stays, with why.
    keep = wait_for(lambda: [a for a in activities(http) if a["action"] == "keep"], 20,
                    "the reason the second node stays")
    assert f"node {second} stays" in keep[0]["reason"]
    assert "fits on no other node" in keep[0]["reason"]
    assert {n["id"] for n in pool_nodes(http)} == {first["id"], second}

    # filler leaves: web (200m) now fits beside big (600m), so the second node goes.
    assert http.delete("/v1/jobs/filler").status_code == 200
    wait_for(lambda: [n["id"] for n in pool_nodes(http)] == [first["id"]], 45,
             "the second node drained and released")
    assert [a["node_id"] for a in running(http, "web")] == [first["id"]]
    (drain,) = [a for a in activities(http) if a["action"] == "drain"]
    assert "utilisation 20%" in drain["reason"] and f"fit on {first['id']}" in drain["reason"]
    (term,) = [a for a in activities(http) if a["kind"] == "terminate"]
    assert term["node_ids"] == [second] and "drained to be released" in term["reason"]
    wait_for(lambda: len(_agents_under(tmp_path)) == 1, 20, "one agent process left")
