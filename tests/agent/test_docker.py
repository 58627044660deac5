"""The docker driver against a real dockerd (the ``docker_engine`` fixture) and real agents.

The image is built offline from the static busybox binary. A container gets the allocation's
memory and CPU as its own limits (the Docker CLI runs unconfined), streams its output into
the allocation's logs, is stopped and removed with its job, and is health-checked inside.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

from tests.agent.conftest import API_TOKEN, Fed
from tests.docker_env import DockerEngine
from tests.harness import wait_for


def docker_job(job_id: str, engine: DockerEngine, command: list[str], job_type: str = "batch",
               memory: int = 64, cpu: int = 500, **task: object) -> dict:
    return {"id": job_id, "type": job_type, "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": cpu, "memory": memory},
        "restart": {"attempts": 0},
        "task": {"driver": "docker", "image": engine.image, "command": command, **task}}]}


def containers(engine: DockerEngine, alloc_id: str) -> list[str]:
    listed = engine.cli("ps", "--all", "--quiet", "--filter", f"label=federation.alloc={alloc_id}")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def cli_logs(fed: Fed, alloc_id: str, *extra: str) -> str:
    env = {**os.environ, "FEDERATION_ADDR": fed.url, "FEDERATION_TOKEN": API_TOKEN}
    done = subprocess.run([sys.executable, "-m", "federation.cli.main", "alloc", "logs",
                           alloc_id, *extra], capture_output=True, text=True, timeout=30,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_batch_container_runs_and_its_output_is_in_alloc_logs(
        fed: Fed, agents, docker_engine: DockerEngine) -> None:
    agents("a1", "--docker-host", docker_engine.host)
    fed.run(docker_job("boxed", docker_engine, [
        "sh", "-c", "echo hello from $FEDERATION_JOB_ID $FEDERATION_ALLOC_INDEX; echo oops >&2"]))
    (alloc,) = fed.wait_allocs("boxed", 1, "complete", timeout=60)
    assert alloc["exit_code"] == 0
    assert cli_logs(fed, alloc["id"]) == "hello from boxed 0\n"
    assert cli_logs(fed, alloc["id"], "--stderr") == "oops\n"
    # The agent removed the finished container.
    wait_for(lambda: not containers(docker_engine, alloc["id"]), 10, "the container removed")


def test_a_container_gets_the_allocations_memory_and_cpu_and_is_oom_killed_past_them(
        fed: Fed, agents, docker_engine: DockerEngine) -> None:
    agents("a1", "--docker-host", docker_engine.host)
    fed.run(docker_job("limited", docker_engine, ["sleep", "300"], memory=48, cpu=250))
    (alloc,) = fed.wait_allocs("limited", 1, "running", timeout=60)
    (container,) = wait_for(lambda: containers(docker_engine, alloc["id"]), 20, "the container")
    seen = docker_engine.cli("inspect", "--format", "{{json .HostConfig}}", container)
    host_config = json.loads(seen.stdout)
    assert host_config["Memory"] == 48 << 20
    assert host_config["MemorySwap"] == 48 << 20
    assert host_config["NanoCpus"] == 250_000_000
    assert host_config["CpuShares"] == 256
    assert host_config["NetworkMode"] == "host"
    assert fed.http.delete("/v1/jobs/limited").status_code == 200

    # Holding 100 MB in a 32 MiB container: the kernel kills it, the allocation says why.
    fed.run(docker_job("greedy", docker_engine,
                       ["sh", "-c", "a=$(yes | head -c 100000000); echo survived ${#a}"],
                       memory=32))
    (failed,) = fed.wait_allocs("greedy", 1, "failed", timeout=60)
    assert failed["exit_code"] == 137
    assert "out of memory" in failed["message"]
    assert "survived" not in cli_logs(fed, failed["id"])


def test_stopping_a_service_stops_and_removes_its_container(
        fed: Fed, agents, docker_engine: DockerEngine) -> None:
    agents("a1", "--docker-host", docker_engine.host)
    fed.run(docker_job("svc", docker_engine,
                       ["sh", "-c", "touch /tmp/ready; echo up; exec sleep 300"],
                       job_type="service",
                       health={"type": "command", "command": ["test", "-e", "/tmp/ready"],
                               "interval": "200ms", "grace": "0s"}))
    (alloc,) = fed.wait_allocs("svc", 1, "running", timeout=60)
    # The command check runs inside the container (/tmp/ready exists only there).
    wait_for(lambda: fed.alloc(alloc["id"]).get("healthy") is True, 20, "healthy")
    assert containers(docker_engine, alloc["id"])
    assert fed.http.delete("/v1/jobs/svc").status_code == 200
    fed.wait_status([alloc["id"]], "stopped", timeout=30)
    wait_for(lambda: not containers(docker_engine, alloc["id"]), 10, "the container removed")
    assert cli_logs(fed, alloc["id"]) == "up\n"


def test_a_wiped_agent_removes_the_containers_it_started_before(
        fed: Fed, agents, docker_engine: DockerEngine) -> None:
    a1 = agents("a1", "--docker-host", docker_engine.host)
    fed.run(docker_job("boxed-svc", docker_engine, ["sleep", "300"], job_type="service"))
    (old,) = fed.wait_allocs("boxed-svc", 1, "running", timeout=60)
    wait_for(lambda: containers(docker_engine, old["id"]), 20, "the container")
    a1.stop(signal.SIGKILL)
    shutil.rmtree(a1.data_dir)
    a1.start()
    wait_for(lambda: not containers(docker_engine, old["id"]), 30, "the old container removed")
    new = wait_for(lambda: [a for a in fed.allocs("boxed-svc")
                            if a["client_status"] == "running" and a["id"] != old["id"]],
                   60, "a replacement running")
    wait_for(lambda: containers(docker_engine, new[0]["id"]), 20, "the new container")
    assert fed.http.delete("/v1/jobs/boxed-svc").status_code == 200
    wait_for(lambda: not containers(docker_engine, new[0]["id"]), 30, "every container removed")


def test_exec_and_signal_reach_the_container(fed: Fed, agents,
                                             docker_engine: DockerEngine) -> None:
    agents("a1", "--docker-host", docker_engine.host)
    fed.run(docker_job("poked", docker_engine, [
        "sh", "-c", "trap 'echo got HUP' HUP; echo ready; while true; do sleep 0.2; done"],
        job_type="service"))
    (alloc,) = fed.wait_allocs("poked", 1, "running", timeout=60)
    wait_for(lambda: "ready" in cli_logs(fed, alloc["id"]), 30, "the container's first line")
    env = {**os.environ, "FEDERATION_ADDR": fed.url, "FEDERATION_TOKEN": API_TOKEN}
    done = subprocess.run([sys.executable, "-m", "federation.cli.main", "alloc", "exec",
                           alloc["id"], "--", "sh", "-c", "echo $FEDERATION_ALLOC_ID; exit 4"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 4, done.stderr
    assert done.stdout.strip() == alloc["id"]  # docker exec: the container's environment
    signalled = fed.http.post(f"/v1/allocations/{alloc['id']}/signal", json={"signal": "HUP"})
    assert signalled.status_code == 200, signalled.text
    wait_for(lambda: "got HUP" in cli_logs(fed, alloc["id"]), 20, "the trap to run")
    # Stopped, the container goes (the engine is shared by the whole test session).
    assert fed.http.delete("/v1/jobs/poked").status_code == 200
    wait_for(lambda: not containers(docker_engine, alloc["id"]), 30, "the container removed")
