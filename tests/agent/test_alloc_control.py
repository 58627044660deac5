"""`federation alloc restart|signal|exec` on a real agent, through a real master and the
real CLI: the server checks the request and calls the agent's signed endpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from federation.cli.main import app
from tests.agent.conftest import API_TOKEN, Fed
from tests.harness import wait_for

# Prints its pid once started, and a line for each SIGUSR1 / SIGHUP it gets.
TASK = """
import os, signal, sys, time
def said(signum, frame):
    print('got', signal.Signals(signum).name, flush=True)
signal.signal(signal.SIGUSR1, said)
signal.signal(signal.SIGHUP, said)
print('started', os.getpid(), flush=True)
while True:
    time.sleep(0.1)
"""


def service(job_id: str) -> dict:
    return {"id": job_id, "type": "service", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 128},
        "task": {"command": [sys.executable, "-u", "-c", TASK], "kill_timeout": "2s",
                 "env": {"GREETING": "hello from the task"}}}]}


def cli(fed: Fed, *args: str):
    return CliRunner().invoke(app, list(args), env={
        "FEDERATION_ADDR": fed.url, "FEDERATION_TOKEN": API_TOKEN, "FEDERATION_TIMEOUT": "20"})


def logs(fed: Fed, alloc_id: str) -> str:
    answer = fed.http.get(f"/v1/allocations/{alloc_id}/logs")
    return answer.text if answer.status_code == 200 else ""


def started(fed: Fed, job_id: str) -> str:
    (alloc,) = fed.wait_allocs(job_id, 1, "running")
    wait_for(lambda: "started" in logs(fed, alloc["id"]), 20, "the task's first line")
    return alloc["id"]


def test_restart_runs_the_task_again_in_place(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("restartable"))
    alloc_id = started(fed, "restartable")
    result = cli(fed, "alloc", "restart", alloc_id[-8:])
    assert result.exit_code == 0, result.output
    assert "restarting on a1" in result.stdout
    wait_for(lambda: logs(fed, alloc_id).count("started") == 2, 20, "a second start")
    pids = [line.split()[1] for line in logs(fed, alloc_id).splitlines()
            if line.startswith("started")]
    assert pids[0] != pids[1]  # a new process, in the same allocation
    wait_for(lambda: fed.alloc(alloc_id)["client_status"] == "running", 20, "running again")
    assert fed.alloc(alloc_id)["restarts"] == 0  # no attempt of the policy used
    assert [a["id"] for a in fed.allocs("restartable")] == [alloc_id]  # not replaced


def test_signal_reaches_the_task_and_unknown_signals_are_refused(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("signalled"))
    alloc_id = started(fed, "signalled")
    result = cli(fed, "alloc", "signal", alloc_id, "SIGUSR1")
    assert result.exit_code == 0, result.output
    assert "Sent SIGUSR1" in result.stdout
    wait_for(lambda: "got SIGUSR1" in logs(fed, alloc_id), 10, "the task to see SIGUSR1")
    assert cli(fed, "alloc", "signal", alloc_id, "hup").exit_code == 0
    wait_for(lambda: "got SIGHUP" in logs(fed, alloc_id), 10, "the task to see SIGHUP")

    bad = fed.http.post(f"/v1/allocations/{alloc_id}/signal", json={"signal": "SIGFOO"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "signal"
    assert "SIGUSR1" in bad.json()["error"]["message"]  # it says which are supported
    number = fed.http.post(f"/v1/allocations/{alloc_id}/signal", json={"signal": 9})
    assert number.status_code == 400 and number.json()["error"]["field"] == "signal"
    assert fed.alloc(alloc_id)["client_status"] == "running"


def test_exec_runs_a_command_in_the_tasks_environment_and_streams_it(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("inspected"))
    alloc_id = started(fed, "inspected")
    result = cli(fed, "alloc", "exec", alloc_id, "--", "sh", "-c",
                 'pwd; echo "$GREETING $FEDERATION_ALLOC_ID"; id -u; echo oops >&2; exit 3')
    assert result.exit_code == 3, result.output
    cwd, greeting, uid = result.stdout.splitlines()[:3]
    assert cwd.endswith(f"/allocs/{alloc_id}/local") or cwd.endswith("/local"), cwd
    task_pid = int(logs(fed, alloc_id).split()[1])
    assert Path(f"/proc/{task_pid}/cwd").resolve() == Path(cwd).resolve()  # the task's cwd
    assert greeting == f"hello from the task {alloc_id}"
    assert int(uid) == os.stat(f"/proc/{task_pid}").st_uid  # the task's user
    assert "oops" in result.stderr

    slow = cli(fed, "alloc", "exec", "--exec-timeout", "1", alloc_id, "--", "sleep", "30")
    assert slow.exit_code != 0 and "timed out after 1s" in slow.stderr

    for body, field in (({"command": []}, "command"), ({"command": "ls"}, "command"),
                        ({"command": ["ls"], "timeout": 0}, "timeout"), ({}, "command")):
        refused = fed.http.post(f"/v1/allocations/{alloc_id}/exec", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field


def test_a_task_that_is_not_running_cannot_be_acted_on(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("gone"))
    alloc_id = started(fed, "gone")
    assert fed.http.post(f"/v1/allocations/{alloc_id}/stop").status_code == 200
    fed.wait_status([alloc_id], "stopped")
    for action, body in (("restart", {}), ("signal", {"signal": "SIGHUP"}),
                         ("exec", {"command": ["true"]})):
        answer = fed.http.post(f"/v1/allocations/{alloc_id}/{action}", json=body)
        assert answer.status_code == 409, (action, answer.text)
    assert fed.http.post("/v1/allocations/nope/restart").status_code == 404


def test_the_allocation_page_restarts_a_task_in_place(fed: Fed, agents) -> None:
    from tests.ui.conftest import csrf_of, sign_in

    agents("a1")
    fed.run(service("from-the-ui"))
    alloc_id = started(fed, "from-the-ui")
    with httpx.Client(base_url=fed.url, timeout=10) as browser:
        assert sign_in(browser, API_TOKEN).status_code == 303
        page = browser.get(f"/ui/allocations/{alloc_id}").text
        assert 'id="restart-alloc"' in page
        answer = browser.post(f"/ui/allocations/{alloc_id}/restart",
                              headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page)})
        assert "restarting on a1" in answer.text, answer.text
        refused = browser.post(f"/ui/allocations/{alloc_id}/restart")  # no CSRF token
        assert refused.status_code == 403
    wait_for(lambda: logs(fed, alloc_id).count("started") == 2, 20, "a second start")
