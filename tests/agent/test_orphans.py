"""An agent restarted with an empty data directory stops the tasks it started before.

Without its data directory the agent cannot adopt its old tasks, and the servers place
replacements; the old processes (marked with the node's name in their environment, in a
process group and cgroup of their own) must not keep running next to them.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.agent.conftest import Fed
from tests.harness import wait_for


def task_pids(alloc_id: str) -> list[int]:
    """Live processes whose environment names the allocation (executors and tasks)."""
    found = []
    needle = f"FEDERATION_ALLOC_ID={alloc_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry))
    return found


def service(job_id: str) -> dict:
    # The task forks a child that clears its environment: only its process group (and
    # cgroup) tie it to the task.
    return {"id": job_id, "type": "service", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"driver": "exec",
                 "command": ["sh", "-c", "env -i sleep 300 & exec sleep 300"]}}]}


def test_a_wiped_agent_stops_its_old_tasks_and_only_the_replacement_runs(
        fed: Fed, agents) -> None:
    a1 = agents("a1")
    fed.run(service("kept-alive"))
    (old,) = fed.wait_allocs("kept-alive", 1, "running")
    wait_for(lambda: len(task_pids(old["id"])) >= 2, 10, "the executor and the task")
    sleepers = wait_for(lambda: [p for p in _group_members(task_pids(old["id"]))
                                 if p not in task_pids(old["id"])], 10,
                        "the child that cleared its environment")

    a1.stop(signal.SIGKILL)
    shutil.rmtree(a1.data_dir)
    a1.start()

    wait_for(lambda: not task_pids(old["id"]), 20, "the old task stopped")
    assert not [p for p in sleepers if _alive(p)], "the child without a marker went too"
    wait_for(lambda: "without a record" in a1.log(), 10, "the agent to say what it stopped")
    # The servers no longer count the old copy; the replacement runs, and only it.
    new = wait_for(lambda: [a for a in fed.allocs("kept-alive")
                            if a["client_status"] == "running" and a["id"] != old["id"]],
                   30, "a replacement running")
    assert fed.alloc(old["id"])["client_status"] in ("lost", "stopped")
    wait_for(lambda: task_pids(new[0]["id"]), 10, "the replacement's processes")
    assert not task_pids(old["id"])

    # Stopping the job leaves nothing behind.
    assert fed.http.delete("/v1/jobs/kept-alive").status_code == 200
    wait_for(lambda: not task_pids(new[0]["id"]), 20, "the replacement stopped")
    assert not [p for p in _all_marked("a1")]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group_members(pids: list[int]) -> list[int]:
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) in groups and _alive(int(entry)):
                    members.append(int(entry))
            except ProcessLookupError:
                pass
    return members


def _all_marked(node_name: str) -> list[int]:
    needle = f"FEDERATION_AGENT_NODE={node_name}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") and (
                        _alive(int(entry))):
                    found.append(int(entry))
            except OSError:
                pass
    return found
