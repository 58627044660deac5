"""Services on real agents: ports, health checks, restarts, agent restarts, logs, security."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import API_TOKEN, Fed, processes_under
from tests.harness import wait_for

# A web server on its assigned port that answers /health with 200, or 500 once the file
# named by SICK exists in its working directory; /checks says how many health checks this
# process has answered (a restart starts again from 0); any other path, its allocation id.
WEB = """
import http.server, os
CHECKS = []
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        sick = os.path.exists(os.environ.get('SICK', 'never'))
        if self.path == '/health':
            CHECKS.append(1)
        self.send_response(500 if sick and self.path == '/health' else 200)
        self.end_headers()
        body = str(len(CHECKS)) if self.path == '/checks' else os.environ['FEDERATION_ALLOC_ID']
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
print('listening on', os.environ['FEDERATION_PORT_HTTP'], flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['FEDERATION_PORT_HTTP'])), H
                                ).serve_forever()
"""


def web(job_id: str, count: int = 1, sick_file: str = "never", attempts: int = 3) -> dict:
    return {"id": job_id, "type": "service", "groups": [{
        "name": "web", "count": count, "resources": {"cpu": 100, "memory": 256},
        "ports": ["http"], "restart": {"attempts": attempts, "delay": "200ms"},
        "task": {"command": [sys.executable, "-c", WEB], "env": {"SICK": sick_file},
                 "kill_timeout": "2s",
                 "health": {"type": "http", "port": "http", "path": "/health",
                            "interval": "300ms", "timeout": "1s", "grace": "300ms",
                            "failures": 2}}}]}


def test_a_service_gets_its_port_and_stays_healthy(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(web("site"))
    (alloc,) = fed.wait_allocs("site", 1, "running")
    wait_for(lambda: fed.alloc(alloc["id"]).get("healthy") is True, 15, "a healthy service")
    port = fed.alloc(alloc["id"])["ports"]["http"]
    assert httpx.get(f"http://127.0.0.1:{port}/").text == alloc["id"]
    # Healthy it stays: the agent goes on checking (three more checks answered by the same
    # process, whose count a restart would reset) and the service is still healthy, never
    # restarted.
    def checks() -> int:
        return int(httpx.get(f"http://127.0.0.1:{port}/checks").text)

    before = checks()
    seen = [before]

    def three_more() -> bool:
        seen.append(checks())
        return seen[-1] >= before + 3

    wait_for(three_more, 15, "three more health checks", interval=0.1)
    assert seen == sorted(seen), f"the check count went back (a restart): {seen}"
    now = fed.alloc(alloc["id"])
    assert (now["healthy"], now["restarts"], now["client_status"]) == (True, 0, "running")


def test_a_service_failing_its_health_check_is_restarted(fed: Fed, agents,
                                                         tmp_path: Path) -> None:
    agents("a1")
    sick = tmp_path / "sick"
    fed.run(web("ailing", sick_file=str(sick)))
    (alloc,) = fed.wait_allocs("ailing", 1, "running")
    wait_for(lambda: fed.alloc(alloc["id"]).get("healthy") is True, 15, "healthy first")
    sick.write_text("yes")
    wait_for(lambda: fed.alloc(alloc["id"])["restarts"] >= 1, 15, "a restart")
    assert "unhealthy" in fed.alloc(alloc["id"])["message"]
    sick.unlink()
    wait_for(lambda: fed.alloc(alloc["id"]).get("healthy") is True, 15, "healthy again")
    assert fed.alloc(alloc["id"])["client_status"] == "running"


def _task_pids(root: Path, alloc_ids: list[str]) -> dict[str, list[int]]:
    """Running task processes (not executors) per allocation, found by their environment."""
    found: dict[str, list[int]] = {a: [] for a in alloc_ids}
    for pid in processes_under(root):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"executor.py" in cmdline:
            continue
        for item in environ:
            if item.startswith(b"FEDERATION_ALLOC_ID="):
                alloc_id = item.split(b"=", 1)[1].decode()
                if alloc_id in found:
                    found[alloc_id].append(pid)
    return found


# The restart must fit in the TTL, or the node is rightly marked down and its work replaced
# (another test covers that): an agent starting on a busy machine can take more than 2 s.
@pytest.mark.heartbeat_ttl(10.0)
def test_restarting_an_agent_keeps_exactly_one_copy_of_each_task(fed: Fed, agents) -> None:
    a1 = agents("a1")
    fed.run(web("steady", count=3))
    allocs = fed.wait_allocs("steady", 3, "running")
    ids = [a["id"] for a in allocs]
    root = a1.data_dir.parent
    before = wait_for(lambda: (p := _task_pids(root, ids)) and all(len(v) == 1 for v in p.values())
                      and p, 10, "one process per allocation")
    a1.stop(signal.SIGKILL)
    a1.start()
    wait_for(lambda: "adopted executor" in a1.log(), 15, "the agent to adopt its tasks")
    # Over a few heartbeats, nothing starts twice.
    for _ in range(3):
        seen = fed.master.liveness.last_seen(a1.node_id) or 0.0
        wait_for(lambda s=seen: (fed.master.liveness.last_seen(a1.node_id) or 0.0) > s,
                 10, "a heartbeat of the restarted agent")
        assert _task_pids(root, ids) == before
    assert [fed.alloc(i)["client_status"] for i in ids] == ["running"] * 3
    assert all(fed.alloc(i)["restarts"] == 0 for i in ids)
    assert len(fed.allocs("steady")) == 3  # the scheduler placed no replacement


def test_logs_come_back_through_the_cli(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(web("chatty"))
    (alloc,) = fed.wait_allocs("chatty", 1, "running")
    env = {**os.environ, "FEDERATION_ADDR": f"http://127.0.0.1:1,{fed.url}",
           "FEDERATION_TOKEN": API_TOKEN}
    cli = [sys.executable, "-m", "federation.cli.main", "alloc", "logs", alloc["id"]]

    def stdout() -> str:
        done = subprocess.run(cli, capture_output=True, text=True, timeout=30, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    port = wait_for(lambda: fed.alloc(alloc["id"]).get("ports"), 10, "ports")["http"]
    assert wait_for(lambda: stdout(), 10, "output") == f"listening on {port}\n"
    missing = subprocess.run([*cli[:-1], "no-such-alloc"], capture_output=True, text=True,
                             timeout=30, env=env)
    assert missing.returncode != 0 and "no allocation" in missing.stderr
    # Follow: prints until the task ends (the job is stopped meanwhile).
    follower = subprocess.Popen([*cli, "-f"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert fed.http.delete("/v1/jobs/chatty").status_code == 200
        out, _ = follower.communicate(timeout=20)
    finally:
        follower.kill()
    assert out == f"listening on {port}\n"


def test_a_node_cannot_read_or_report_another_nodes_allocations(fed: Fed, agents) -> None:
    a1 = agents("a1")
    fed.run(web("private"))
    (alloc,) = fed.wait_allocs("private", 1, "running")
    assert alloc["node_id"] == a1.node_id
    other = fed.http.post("/v1/nodes", json={
        "name": "intruder", "capacity": {"cpu_milli": 1000, "memory_mib": 512}}).json()
    as_other = {"X-Node-Token": other["token"]}
    mine = fed.http.get(f"/v1/nodes/{other['id']}/allocations", headers=as_other)
    assert mine.status_code == 200 and mine.json() == []
    peek = fed.http.get(f"/v1/nodes/{a1.node_id}/allocations", headers=as_other)
    assert peek.status_code == 403
    report = fed.http.post(f"/v1/nodes/{other['id']}/allocations", headers=as_other,
                           json={"updates": [{"id": alloc["id"], "client_status": "failed"}]})
    assert report.status_code == 403
    assert report.json()["error"]["field"] == "updates[0].id"
    as_a1 = fed.http.post(f"/v1/nodes/{a1.node_id}/allocations", headers=as_other,
                          json={"updates": [{"id": alloc["id"], "client_status": "failed"}]})
    assert as_a1.status_code == 403
    logs = fed.http.get(f"/v1/allocations/{alloc['id']}/logs", headers=as_other)
    assert logs.status_code == 403
    assert fed.alloc(alloc["id"])["client_status"] == "running"
    # The agent's own endpoint answers only requests signed by a server.
    address = fed.master.machine.nodes[a1.node_id]["http_address"]
    direct = httpx.get(f"{address}/v1/allocations/{alloc['id']}/logs")
    assert direct.status_code == 403


def test_a_killed_agents_services_come_back_elsewhere_and_the_old_copies_stop(
        fed: Fed, agents) -> None:
    a1, a2 = agents("a1"), agents("a2")
    fed.run(web("moving", count=2))
    allocs = fed.wait_allocs("moving", 2, "running")
    on_a1 = [a["id"] for a in allocs if a["node_id"] == a1.node_id]
    if not on_a1:  # both landed on a2: kill that one instead
        a1, a2 = a2, a1
        on_a1 = [a["id"] for a in allocs]
    root = a1.data_dir.parent
    a1.stop(signal.SIGKILL)
    # The node goes silent: after the TTL (2 s here) it is down, its allocations are lost
    # and the scheduler places replacements on the surviving node.
    wait_for(lambda: fed.master.machine.nodes[a1.node_id]["status"] == "down", 10, "node down")
    replaced = fed.wait_allocs("moving", 2, "running", timeout=20)
    assert all(a["node_id"] == a2.node_id for a in replaced)
    wait_for(lambda: all(fed.alloc(a["id"]).get("healthy") for a in replaced), 15,
             "the replacements healthy")
    # The old copies still run on the silent machine; when its agent returns it stops them.
    assert all(_task_pids(root, on_a1)[i] for i in on_a1)
    a1.start()
    wait_for(lambda: not any(_task_pids(root, on_a1).values()), 20, "the old copies stopped")
    assert all(fed.alloc(i)["desired_status"] == "stop" for i in on_a1)
