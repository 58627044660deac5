"""Task drivers: how an allocation's task becomes a process on this node.

``exec`` runs the command directly; ``docker`` runs it in a container through the Docker CLI,
and only when a Docker engine answers on this node (otherwise the allocation is refused with
the reason, never run some other way). Both go through the executor
(``federation/agent/executor.py``), which owns the process, its logs and its exit status.

Resource limits: when this process sits in a cgroup v2 hierarchy it may write to, with the
``memory`` and ``cpu`` controllers available, each task gets a cgroup with ``memory.max``
(the allocation's memory) and ``cpu.max`` (its millicores); otherwise the task gets
``RLIMIT_AS`` (address space = the allocation's memory) and CPU is not capped. ``Limits.mode``
says which applies; the agent logs it and registers it as the label ``federation/limits``.
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


class DriverRefused(Exception):
    """The task cannot run on this node; the message says why (reported on the allocation)."""


@dataclass
class Limits:
    mode: str  # "cgroup-v2" or "rlimit"
    allocs_cgroup: Path | None = None

    def prepare(self, alloc_id: str, cpu_milli: int, memory_mib: int) -> dict[str, Any]:
        """Executor settings that confine one task; creates its cgroup when cgroups are used."""
        if self.mode == "cgroup-v2" and self.allocs_cgroup is not None:
            group = self.allocs_cgroup / alloc_id
            group.mkdir(exist_ok=True)
            if memory_mib:
                (group / "memory.max").write_text(str(memory_mib << 20))
            if cpu_milli:
                (group / "cpu.max").write_text(f"{max(1000, cpu_milli * 100)} 100000")
            return {"cgroup_procs": str(group / "cgroup.procs")}
        return {"rlimit_as_bytes": memory_mib << 20} if memory_mib else {}

    def release(self, alloc_id: str) -> None:
        if self.mode == "cgroup-v2" and self.allocs_cgroup is not None:
            try:
                (self.allocs_cgroup / alloc_id).rmdir()
            except OSError:
                pass


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == ["cgroup2"]:
                    return Path(left.split()[4])
    except OSError:
        return None
    return None


def _enable(group: Path, controllers: tuple[str, ...]) -> None:
    (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


def detect_limits() -> Limits:
    """cgroup v2 when this process's cgroup is delegated to us, rlimits otherwise."""
    mount = _cgroup2_mount()
    if mount is None:
        return Limits("rlimit")
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            own = next((ln.split("::", 1)[1].strip() for ln in handle if ln.startswith("0::")),
                       None)
        if own is None:
            return Limits("rlimit")
        base = mount / own.lstrip("/")
        wanted = ("cpu", "memory")
        if not set(wanted) <= set((base / "cgroup.controllers").read_text().split()):
            return Limits("rlimit")
        # cgroup v2 allows controllers only in groups without processes of their own: move
        # the agent into a leaf first, then enable the controllers for the task groups.
        leaf = base / "agent"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        _enable(base, wanted)
        allocs = base / "allocs"
        allocs.mkdir(exist_ok=True)
        _enable(allocs, wanted)
        return Limits("cgroup-v2", allocs)
    except OSError as exc:
        log.info("cgroup v2 not usable here (%s): limits by rlimits", exc.strerror or exc)
        return Limits("rlimit")


def docker_answers(socket_path: str = DOCKER_SOCKET) -> str | None:
    """None when a Docker engine answers ``/_ping`` on ``socket_path``, else the reason."""
    if not os.path.exists(socket_path):
        return f"no Docker engine on this node ({socket_path} does not exist)"
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket_path), timeout=3.0) as c:
            answer = c.get("http://docker/_ping")
    except httpx.HTTPError as exc:
        return f"the Docker engine at {socket_path} does not answer: {exc!r}"
    if answer.status_code != 200:
        return f"the Docker engine at {socket_path} answered HTTP {answer.status_code}"
    return None


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
                ports: dict[str, int]) -> list[str]:
    """The command line to run; raises DriverRefused when the driver cannot run here."""
    driver = task.get("driver", "exec")
    command = [str(part) for part in task.get("command") or []]
    if not command:
        raise DriverRefused("the task has no command")
    if driver == "exec":
        return command
    if driver == "docker":
        reason = docker_answers()
        if reason is not None:
            raise DriverRefused(f"driver docker: {reason}")
        image = task.get("image")
        if not image:
            raise DriverRefused("driver docker: the task has no image")
        # Host networking: the ports the agent picked are the ports the container listens on.
        cmd = ["docker", "run", "--rm", "--init", "--network", "host",
               "--name", f"federation-{alloc_id}"]
        for key, value in sorted(env.items()):
            if key.startswith("FEDERATION_") or key in (task.get("env") or {}):
                cmd += ["-e", f"{key}={value}"]
        return cmd + [str(image), *command]
    raise DriverRefused(f"unknown driver {driver!r}")


def start(run_dir: Path, spec: dict[str, Any]) -> Run:
    """Write the task spec and start its executor in a session of its own."""
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
