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


def test_a_four_task_batch_runs_to_completion_with_output_on_disk(fed: Fed, agents) -> None:
    a1, a2 = agents("a1"), agents("a2")
    ids = fed.place(batch("four", WRITE_OUTPUT, count=4), [a1.node_id, a2.node_id])
    fed.wait_status(ids, "complete")
    for alloc_id in ids:
        alloc = fed.alloc(alloc_id)
        assert alloc["exit_code"] == 0
        agent = a1 if alloc["node_id"] == a1.node_id else a2
        base = agent.data_dir / "allocs" / alloc_id
        assert (base / "local" / "result.txt").read_text() == str(alloc["index"])
        stdout = "".join(p.read_text() for p in sorted((base / "logs").glob("stdout.*.log")))
        assert stdout == f"hi four {alloc['index']} {alloc_id}\n"
    assert fed.http.get("/v1/jobs/four").json()["status"] == "complete"


def test_a_failing_command_is_retried_then_marked_failed_with_its_exit_code(
        fed: Fed, agents, tmp_path: Path) -> None:
    a1 = agents("a1")
    counter = tmp_path / "runs"
    command = ["sh", "-c", f"echo run >> {counter}; echo boom >&2; exit 3"]
    (alloc_id,) = fed.place(batch("flaky", command, attempts=2), [a1.node_id])
    fed.wait_status([alloc_id], "failed")
    alloc = fed.alloc(alloc_id)
    assert alloc["exit_code"] == 3
    assert alloc["restarts"] == 2
    assert counter.read_text().count("run") == 3  # the first run and two restarts
    assert "no restarts left" in alloc["message"]
    logs = fed.http.get(f"/v1/allocations/{alloc_id}/logs", params={"stream": "stderr"})
    assert logs.text == "boom\n" * 3


def test_a_killed_task_reports_its_signal(fed: Fed, agents) -> None:
    a1 = agents("a1")
    (alloc_id,) = fed.place(batch("killed", ["sh", "-c", "kill -9 $$"]), [a1.node_id])
    fed.wait_status([alloc_id], "failed")
    assert fed.alloc(alloc_id)["signal"] == 9
    assert fed.alloc(alloc_id)["exit_code"] is None


def test_a_missing_program_fails_with_a_reason(fed: Fed, agents) -> None:
    a1 = agents("a1")
    (alloc_id,) = fed.place(batch("missing", ["/no/such/program"]), [a1.node_id])
    fed.wait_status([alloc_id], "failed")
    alloc = fed.alloc(alloc_id)
    assert alloc["exit_code"] == 127
    assert "cannot start" in alloc["message"]


def test_docker_tasks_are_refused_with_a_reason_when_no_engine_answers(fed: Fed, agents) -> None:
    a1 = agents("a1")
    spec = batch("boxed", ["echo", "hi"])
    spec["groups"][0]["task"].update({"driver": "docker", "image": "alpine:3"})
    (alloc_id,) = fed.place(spec, [a1.node_id])
    fed.wait_status([alloc_id], "failed")
    assert "Docker engine" in fed.alloc(alloc_id)["message"]


def test_stopping_a_job_leaves_no_process_behind(fed: Fed, agents) -> None:
    a1, a2 = agents("a1"), agents("a2")
    # Each task forks a grandchild in its process group: both must go.
    command = ["sh", "-c", "sleep 300 & sleep 300"]
    ids = fed.place(batch("sleepy", command, count=4), [a1.node_id, a2.node_id])
    fed.wait_status(ids, "running")
    root = a1.data_dir.parent
    wait_for(lambda: len(processes_under(root)) >= 12, 10, "4 executors and 8 sleeps")
    fed.commit({"type": "job.deregister", "job_id": "sleepy"})
    fed.wait_status(ids, "complete", timeout=20)
    wait_for(lambda: not processes_under(root), 10, "every task process to be gone")
    assert all("stopped" in fed.alloc(a)["message"] for a in ids)
