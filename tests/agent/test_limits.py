"""Resource limits of exec tasks on real agents: memory limited where it is resident.

The test machines mount the cgroup v1 memory and cpu controllers, so the agent runs each
task in a cgroup of its allocation; on a host where no cgroup is usable these tests skip,
saying so (the agent then falls back to RLIMIT_AS, documented as the last resort).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import Fed
from tests.harness import wait_for


def job(job_id: str, command: list[str], memory: int, cpu: int = 200,
        job_type: str = "batch") -> dict:
    return {"id": job_id, "type": job_type, "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": cpu, "memory": memory},
        "restart": {"attempts": 0}, "task": {"driver": "exec", "command": command}}]}


def limits_mode(fed: Fed, node_id: str) -> str:
    return fed.master.machine.nodes[node_id]["labels"]["federation/limits"]


def needs_cgroups(fed: Fed, node_id: str) -> None:
    mode = limits_mode(fed, node_id)
    if not mode.startswith("cgroup"):
        pytest.skip(f"no usable cgroup memory controller here (limits by {mode})")


def logs(fed: Fed, alloc_id: str) -> str:
    return fed.http.get(f"/v1/allocations/{alloc_id}/logs").text


def test_a_go_program_runs_under_a_small_memory_limit(fed: Fed, agents) -> None:
    # The Docker CLI is a Go program: under an address-space limit of 64 MiB it aborts
    # ("failed to reserve page summary memory"); a resident-memory limit lets it run.
    a1 = agents("a1")
    needs_cgroups(fed, a1.node_id)
    fed.run(job("go", ["docker", "--version"], memory=64))
    (alloc,) = fed.wait_allocs("go", 1, "complete", timeout=60)
    assert logs(fed, alloc["id"]).startswith("Docker version")


def test_a_task_runs_in_its_allocations_cgroup_with_its_memory(fed: Fed, agents) -> None:
    a1 = agents("a1")
    needs_cgroups(fed, a1.node_id)
    fed.run(job("held", ["sh", "-c", "cat /proc/self/cgroup; exec sleep 300"], memory=96,
                job_type="service"))
    (alloc,) = fed.wait_allocs("held", 1, "running", timeout=60)
    lines = wait_for(lambda: logs(fed, alloc["id"]).splitlines(), 15, "the task's cgroups")
    groups = {part[1]: part[2] for part in (ln.split(":", 2) for ln in lines) if len(part) == 3}
    if limits_mode(fed, a1.node_id) == "cgroup-v1":
        memory_path = groups["memory"]
        assert memory_path.endswith(f"/federation/a1/{alloc['id']}")
        mount = next(Path(line.split()[4]) for line in Path("/proc/self/mountinfo").read_text()
                     .splitlines() if " - cgroup " in line and "memory" in line.split()[-1])
        limit = (mount / memory_path.lstrip("/") / "memory.limit_in_bytes")
        if not limit.exists():  # the mount's root is not "/": find the group below it
            limit = next(mount.rglob(f"{alloc['id']}/memory.limit_in_bytes"))
        assert int(limit.read_text()) == 96 << 20
    else:
        assert groups[""].endswith(f"/allocs/{alloc['id']}")
    assert fed.http.delete("/v1/jobs/held").status_code == 200
    fed.wait_status([alloc["id"]], "stopped", timeout=30)


def test_a_task_past_its_memory_is_killed_and_reported_failed_with_the_reason(
        fed: Fed, agents) -> None:
    a1 = agents("a1")
    needs_cgroups(fed, a1.node_id)
    fed.run(job("greedy", ["python3", "-c", "b = bytearray(200 << 20); print('survived')"],
                memory=48))
    (alloc,) = fed.wait_allocs("greedy", 1, "failed", timeout=60)
    assert alloc["signal"] == 9
    assert "out of memory" in alloc["message"]
    assert "survived" not in logs(fed, alloc["id"])
