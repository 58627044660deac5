"""Batch work on real agents: completion with output on disk, retries, failure, stop."""

from __future__ import annotations

from pathlib import Path

from tests.agent.conftest import Fed, processes_under
from tests.harness import wait_for


def batch(job_id: str, command: list[str], count: int = 1, attempts: int = 0,
          **group: object) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "main", "count": count, "resources": {"cpu": 100, "memory": 256},
        "restart": {"attempts": attempts, "delay": "200ms"},
        "task": {"driver": "exec", "command": command, "env": {"GREETING": "hi"}}, **group}]}


WRITE_OUTPUT = [
    "python3", "-c",
    "import os; print(os.environ['GREETING'], os.environ['FEDERATION_JOB_ID'], "
    "os.environ['FEDERATION_ALLOC_INDEX'], os.environ['FEDERATION_ALLOC_ID']); "
    "open('result.txt', 'w').write(os.environ['FEDERATION_ALLOC_INDEX'])",
]


def _agent_of(agents_by_node: dict, alloc: dict):
    return agents_by_node[alloc["node_id"]]


def test_a_four_task_batch_runs_to_completion_with_output_on_disk(fed: Fed, agents) -> None:
    a1, a2 = agents("a1"), agents("a2")
    by_node = {a1.node_id: a1, a2.node_id: a2}
    fed.run(batch("four", WRITE_OUTPUT, count=4))
    done = fed.wait_allocs("four", 4, "complete")
    assert sorted(a["index"] for a in done) == [0, 1, 2, 3]
    for alloc in done:
        assert alloc["exit_code"] == 0
        base = _agent_of(by_node, alloc).data_dir / "allocs" / alloc["id"]
        assert (base / "local" / "result.txt").read_text() == str(alloc["index"])
        stdout = "".join(p.read_text() for p in sorted((base / "logs").glob("stdout.*.log")))
        assert stdout == f"hi four {alloc['index']} {alloc['id']}\n"
    assert fed.http.get("/v1/jobs/four").json()["status"] == "complete"


def test_a_failing_command_is_retried_then_marked_failed_with_its_exit_code(
        fed: Fed, agents, tmp_path: Path) -> None:
    agents("a1")
    counter = tmp_path / "runs"
    command = ["sh", "-c", f"echo run >> {counter}; echo boom >&2; exit 3"]
    fed.run(batch("flaky", command, attempts=1))
    wait_for(lambda: fed.http.get("/v1/jobs/flaky").json()["status"] == "failed", 30,
             "the job to fail")
    allocs = fed.allocs("flaky")
    assert allocs and all(a["client_status"] == "failed" for a in allocs)
    for alloc in allocs:
        assert alloc["exit_code"] == 3
        assert alloc["restarts"] == 1  # restarted once on its node, then reported failed
        assert "no restarts left" in alloc["message"]
    # Each allocation ran twice on its node; the scheduler decides how many allocations.
    assert counter.read_text().count("run") == 2 * len(allocs)
    logs = fed.http.get(f"/v1/allocations/{allocs[0]['id']}/logs", params={"stream": "stderr"})
    assert logs.text == "boom\n" * 2


def _one_failed(fed: Fed, job_id: str) -> dict:
    (alloc,) = fed.wait_allocs(job_id, 1, "failed")
    return alloc


def test_a_killed_task_reports_its_signal(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(batch("killed", ["sh", "-c", "kill -9 $$"]))
    alloc = _one_failed(fed, "killed")
    assert alloc["signal"] == 9
    assert alloc["exit_code"] is None


def test_a_missing_program_fails_with_a_reason(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(batch("missing", ["/no/such/program"]))
    alloc = _one_failed(fed, "missing")
    assert alloc["exit_code"] == 127
    assert "cannot start" in alloc["message"]


def test_docker_tasks_are_refused_with_a_reason_when_no_engine_answers(fed: Fed, agents) -> None:
    agents("a1")
    spec = batch("boxed", ["echo", "hi"])
    spec["groups"][0]["task"].update({"driver": "docker", "image": "alpine:3"})
    fed.run(spec)
    assert "Docker engine" in _one_failed(fed, "boxed")["message"]


def test_stopping_a_job_leaves_no_process_behind(fed: Fed, agents) -> None:
    a1, _ = agents("a1"), agents("a2")
    # Each task forks a grandchild in its process group: both must go.
    fed.run(batch("sleepy", ["sh", "-c", "sleep 300 & sleep 300"], count=4))
    running = fed.wait_allocs("sleepy", 4, "running")
    root = a1.data_dir.parent
    wait_for(lambda: len(processes_under(root)) >= 12, 10, "4 executors and 8 sleeps")
    assert fed.http.delete("/v1/jobs/sleepy").status_code == 200
    # Stopped on request: never reported as a success.
    fed.wait_allocs("sleepy", 4, "stopped", timeout=20)
    wait_for(lambda: not processes_under(root), 10, "every task process to be gone")
    assert all("stopped" in fed.alloc(a["id"])["message"] for a in running)
