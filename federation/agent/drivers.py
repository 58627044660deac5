"""Task drivers: how an allocation's task becomes a process on this node.

``exec`` runs the command directly; ``docker`` runs it in a container through the Docker CLI,
and only when a Docker engine answers on this node (otherwise the allocation is refused with
the reason, never run some other way). Both go through the executor
(``federation/agent/executor.py``), which owns the process, its logs and its exit status.

Resource limits: ``exec`` tasks are confined by ``federation/agent/limits.py`` (a cgroup per
allocation, ``RLIMIT_AS`` only as a last resort). A ``docker`` task's limits are the
container's own (``--memory``, ``--memory-swap``, ``--cpus``): the Docker CLI itself runs
unconfined, since a Go program aborts under a small address-space limit.

Every task process and every container is marked with the node's name (the environment
variable ``FEDERATION_AGENT_NODE`` and the container label ``federation.node``), so an agent
that lost its data directory still finds what it started before (``orphans.py``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from federation.agent import executor as executor_module
from federation.agent.store import pid_alive

log = logging.getLogger("federation.agent")
EXECUTOR_PATH = os.path.abspath(executor_module.__file__)
DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_DOCKER_HOST = f"unix://{DOCKER_SOCKET}"
NODE_MARKER = "FEDERATION_AGENT_NODE"  # environment marker of every task this agent starts
NODE_LABEL = "federation.node"  # container labels: the node's name and the allocation id
ALLOC_LABEL = "federation.alloc"
DOCKER_CLI_TIMEOUT = 30.0


class DriverRefused(Exception):
    """The task cannot run on this node; the message says why (reported on the allocation)."""


def docker_answers(host: str = DEFAULT_DOCKER_HOST) -> str | None:
    """None when a Docker engine answers ``/_ping`` at ``host`` (``unix://PATH`` or
    ``tcp://HOST:PORT``), else the reason."""
    if host.startswith("unix://"):
        socket_path = host[len("unix://"):]
        if not os.path.exists(socket_path):
            return f"no Docker engine on this node ({socket_path} does not exist)"
        transport, base = httpx.HTTPTransport(uds=socket_path), "http://docker"
    elif host.startswith("tcp://"):
        transport, base = httpx.HTTPTransport(), "http://" + host[len("tcp://"):]
    else:
        return f"unsupported Docker host {host!r} (unix:// or tcp://)"
    try:
        with httpx.Client(transport=transport, timeout=3.0) as c:
            answer = c.get(f"{base}/_ping")
    except httpx.HTTPError as exc:
        return f"the Docker engine at {host} does not answer: {exc!r}"
    if answer.status_code != 200:
        return f"the Docker engine at {host} answered HTTP {answer.status_code}"
    return None


def container_name(alloc_id: str) -> str:
    return f"federation-{alloc_id}"


def docker_cli(host: str, *args: str, timeout: float = DOCKER_CLI_TIMEOUT
               ) -> subprocess.CompletedProcess[str]:
    """Run the Docker CLI against ``host``; never raises for a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
    env["DOCKER_HOST"] = host
    try:
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["docker", *args], 125, "", str(exc))


def docker_finish(host: str, alloc_id: str) -> str | None:
    """Remove the allocation's container (stopping it if it still runs); returns a reason
    when the kernel killed it for exceeding its memory limit."""
    name = container_name(alloc_id)
    seen = docker_cli(host, "inspect", "--format", "{{.State.OOMKilled}}", name)
    oom = seen.returncode == 0 and seen.stdout.strip() == "true"
    gone = docker_cli(host, "rm", "--force", "--volumes", name)
    if gone.returncode != 0 and "No such container" not in gone.stderr:
        log.warning("allocation %s: cannot remove container %s: %s", alloc_id, name,
                    gone.stderr.strip())
    return "the container ran out of memory (killed by the kernel at its limit)" if oom else None


def docker_containers(host: str, node_name: str) -> dict[str, str]:
    """Container id -> allocation id of every container this node started (any state)."""
    listed = docker_cli(host, "ps", "--all", "--no-trunc", "--filter",
                        f"label={NODE_LABEL}={node_name}",
                        "--format", f'{{{{.ID}}}} {{{{.Label "{ALLOC_LABEL}"}}}}')
    if listed.returncode != 0:
        return {}
    found = {}
    for line in listed.stdout.splitlines():
        container, _, alloc_id = line.partition(" ")
        if container:
            found[container] = alloc_id.strip()
    return found


@dataclass
class Run:
    """One started executor: enough to watch, stop and adopt it."""

    executor_pid: int
    executor_start: int | None
    proc: subprocess.Popen[bytes] | None = None  # set when this agent process started it

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.executor_pid, self.executor_start)

    def reap(self) -> None:
        if self.proc is not None:
            self.proc.poll()


def command_for(task: dict[str, Any], alloc_id: str, env: dict[str, str],
                ports: dict[str, int], resources: dict[str, Any] | None = None,
                node_name: str = "", docker_host: str = DEFAULT_DOCKER_HOST) -> list[str]:
    """The command line to run; raises DriverRefused when the driver cannot run here."""
    driver = task.get("driver", "exec")
    command = [str(part) for part in task.get("command") or []]
    if driver == "exec":
        if not command:
            raise DriverRefused("the task has no command")
        return command
    if driver == "docker":
        reason = docker_answers(docker_host)
        if reason is not None:
            raise DriverRefused(f"driver docker: {reason}")
        image = task.get("image")
        if not image:
            raise DriverRefused("driver docker: the task has no image")
        resources = resources or {}
        # Host networking: the ports the agent picked are the ports the container listens on.
        # No --rm: the agent reads the outcome (OOM kill) and removes the container itself.
        cmd = ["docker", "--host", docker_host, "run", "--init", "--network", "host",
               "--name", container_name(alloc_id), "--label", f"{NODE_LABEL}={node_name}",
               "--label", f"{ALLOC_LABEL}={alloc_id}"]
        memory_mib = int(resources.get("memory_mib") or 0)
        if memory_mib:
            # --memory-swap equal to --memory: no swapping past the limit.
            cmd += ["--memory", f"{memory_mib}m", "--memory-swap", f"{memory_mib}m"]
        cpu_milli = int(resources.get("cpu_milli") or 0)
        if cpu_milli:
            # A hard cap at the reservation, and the same weight an exec task gets.
            cmd += ["--cpus", f"{cpu_milli / 1000:g}",
                    "--cpu-shares", str(max(2, cpu_milli * 1024 // 1000))]
        for key, value in sorted(env.items()):
            if key.startswith("FEDERATION_") or key in (task.get("env") or {}):
                cmd += ["-e", f"{key}={value}"]
        return cmd + [str(image), *command]
    raise DriverRefused(f"unknown driver {driver!r}")


def start(run_dir: Path, spec: dict[str, Any], marks: dict[str, str] | None = None) -> Run:
    """Write the task spec and start its executor in a session of its own.

    The executor's environment holds only ``PATH`` and ``marks`` (the node and allocation
    markers): none of the agent's own settings or credentials."""
    for name in ("executor.json", "exit.json"):
        try:
            os.unlink(run_dir / name)
        except FileNotFoundError:
            pass
    spec_path = run_dir / "task.json"
    executor_module.write_json(str(spec_path), spec)
    with open(run_dir / "executor.log", "ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", EXECUTOR_PATH, str(spec_path)],
            stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, start_new_session=True,
            close_fds=True, cwd=str(run_dir),
            env={"PATH": os.environ.get("PATH", os.defpath), **(marks or {})},
        )
    return Run(proc.pid, executor_module.process_start_ticks(proc.pid), proc)


def read_exit(run_dir: Path) -> dict[str, Any] | None:
    try:
        with open(run_dir / "exit.json", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_executor(run_dir: Path) -> dict[str, Any] | None:
    try:
        with open(run_dir / "executor.json", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def request_stop(run: Run) -> None:
    """Ask the executor to stop its task (SIGTERM, then SIGKILL after the kill timeout)."""
    try:
        os.kill(run.executor_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def kill_task_group(run_dir: Path) -> bool:
    """SIGKILL the task's process group if it is still the one the executor started."""
    info = read_executor(run_dir)
    if not info:
        return False
    pid, start_ticks = info.get("task_pid"), info.get("task_start")
    if not isinstance(pid, int):
        return False
    alive = pid_alive(pid, start_ticks if isinstance(start_ticks, int) else None)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise
    return alive


def force_kill(run: Run, run_dir: Path) -> None:
    kill_task_group(run_dir)
    try:
        os.kill(run.executor_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    run.reap()
