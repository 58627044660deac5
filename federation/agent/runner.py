"""One allocation on this node, from start to its final status: the task runner.

A runner owns one allocation: it starts the task through its driver, watches the executor
(a pidfd, so waiting costs nothing), runs the health checks, restarts the task on this node
per the restart policy, stops it when the servers say so, and reports every change. Its
progress is written to ``state.json`` before it acts, so a restarted agent picks up where it
left off: it adopts a live executor instead of starting a second copy, and reports an
allocation whose executor vanished without a record as ``lost``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.agent import drivers
from federation.agent.health import HealthSpec, check
from federation.agent.marks import ALLOC_MARKER
from federation.specs.duration import parse_duration

if TYPE_CHECKING:
    from federation.agent.agent import Agent

log = logging.getLogger("federation.agent")
# ``stopped``: stopped on request (job stop, replacement, drain, lost node); never a success.
TERMINAL_PHASES = ("complete", "failed", "lost", "stopped")
STOP_GRACE_SECONDS = 5.0
EXECUTOR_READY_SECONDS = 10.0  # how long a stop waits for a starting executor


def _duration(value: Any, default: float) -> float:
    try:
        return parse_duration(value) if value is not None else default
    except (ValueError, TypeError):
        return default


def port_names(alloc: dict[str, Any]) -> list[str]:
    """The allocation's port names (after a report, ``ports`` holds ``{name: port}``)."""
    ports = alloc.get("ports") or []
    return sorted(ports) if isinstance(ports, dict) else [str(p) for p in ports]


def client_update(alloc_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """The allocation's client fields as recorded in a runner's state (what is reported)."""
    phase = state.get("phase")
    client_status = phase if phase in ("running", *TERMINAL_PHASES) else "pending"
    update: dict[str, Any] = {
        "id": alloc_id, "client_status": client_status, "restarts": state.get("restarts", 0),
        "ports": dict(state.get("ports") or {}), "message": state.get("message", ""),
    }
    for key in ("exit_code", "signal", "started_at", "finished_at", "healthy"):
        if key in state:
            update[key] = state[key]
    return update


class TaskRunner:
    def __init__(self, agent: Agent, alloc: dict[str, Any],
                 state: dict[str, Any] | None = None) -> None:
        self.agent = agent
        self.alloc = alloc
        self.id: str = alloc["id"]
        self.base: Path = agent.store.alloc_dir(self.id)
        self.run_dir = self.base / "run"
        self.log_dir = self.base / "logs"
        self.local_dir = self.base / "local"
        self.state: dict[str, Any] = state or {
            "phase": "pending", "restarts": 0, "ports": {}, "runs": 0}
        self._lock = threading.Lock()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._unhealthy: str | None = None
        self._restart_requested = False
        self.thread = threading.Thread(target=self._loop, name=f"alloc-{self.id[:12]}",
                                       daemon=True)

    # -- called by the agent -------------------------------------------------------------
    @property
    def phase(self) -> str:
        return str(self.state.get("phase"))

    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def start(self) -> None:
        self.thread.start()

    def update(self, alloc: dict[str, Any]) -> None:
        """A newer version of the allocation from the servers."""
        with self._lock:
            self.alloc = alloc
        if alloc.get("desired_status", "run") != "run":
            self.request_stop(f"desired status {alloc['desired_status']}")

    def request_stop(self, reason: str) -> None:
        with self._lock:
            if self.state.get("stop_requested"):
                return
            self.state["stop_requested"] = reason
        self._save()
        self._poke()

    def status_update(self) -> dict[str, Any]:
        return client_update(self.id, self.state)

    def request_restart(self) -> None:
        """Stop the running task and start it again at once (a user's restart: it uses no
        attempt of the restart policy)."""
        with self._lock:
            self._restart_requested = True
        self._poke()

    def driver(self) -> str:
        return self._driver()

    def exec_environment(self, command: list[str]
                         ) -> tuple[list[str], str, dict[str, str], dict[str, Any]]:
        """``(argv, cwd, env, identity)`` to run ``command`` where the task runs: in its
        container (docker), or with its working directory, environment and user (exec)."""
        ports = dict(self.state.get("ports") or {})
        if self._driver() == "docker":
            env = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
            return (["docker", "--host", self.agent.docker_host, "exec",
                     drivers.container_name(self.id), *command], str(self.local_dir), env, {})
        env = self.agent.task_env(self.alloc, ports, self.base)
        identity = self.agent.task_identity(self.alloc.get("task") or {}, self.local_dir)
        return command, str(self.local_dir), env, identity

    # -- internals -----------------------------------------------------------------------
    def _poke(self) -> None:
        try:
            os.eventfd_write(self._wake, 1)
        except OSError:
            pass

    def _save(self) -> None:
        with self._lock:
            snapshot = dict(self.state)
        self.agent.store.save_state(self.id, snapshot)

    def _set(self, report: bool = True, **changes: Any) -> None:
        with self._lock:
            self.state.update(changes)
        self._save()
        if report:
            self.agent.report(self.status_update())

    def _loop(self) -> None:
        try:
            self._main()
        except Exception as exc:  # noqa: BLE001 - a runner must end with a reported status
            log.exception("allocation %s: runner failed", self.id)
            self._set(phase="failed", message=f"agent error: {exc!r}", finished_at=time.time())
        finally:
            self.agent.limits.release(self.id)
            os.close(self._wake)
            self.agent.runner_done(self)

    def _main(self) -> None:
        run = self._recover()
        while True:
            if self.finished():
                self.agent.report(self.status_update())
                return
            if run is None:
                if self.state.get("stop_requested"):
                    self._finish_stopped(None)
                    return
                if self.phase == "restarting":
                    remaining = float(self.state.get("restart_at", 0)) - time.time()
                    if remaining > 0:
                        self._wait(remaining)
                        continue
                try:
                    run = self._start_run()
                except drivers.DriverRefused as exc:
                    self._set(phase="failed", message=str(exc), finished_at=time.time())
                    return
            outcome = self._watch(run)
            run = None
            self._decide(outcome)

    def _wait(self, seconds: float, extra: list[int] | None = None) -> list[int]:
        ready, _, _ = select.select([self._wake, *(extra or [])], [], [], max(0.0, seconds))
        if self._wake in ready:
            try:
                os.eventfd_read(self._wake)
            except BlockingIOError:
                pass
        return ready

    def _recover(self) -> drivers.Run | None:
        """After an agent restart: adopt the live executor, if there is one."""
        if self.phase not in ("starting", "running"):
            return None
        info = drivers.read_executor(self.run_dir) or {}
        pid = self.state.get("executor_pid") or info.get("executor_pid")
        start = self.state.get("executor_start") or info.get("executor_start")
        if isinstance(pid, int):
            if drivers.pid_alive(pid, start):
                log.info("allocation %s: adopted executor %d", self.id, pid)
                return drivers.Run(pid, start if isinstance(start, int) else None)
            if drivers.read_exit(self.run_dir) is not None:
                return drivers.Run(0, None)  # it ended while the agent was away
            # The executor is gone and left no outcome: whatever ran is not ours to trust.
            drivers.kill_task_group(self.run_dir)
            self._finish_run(None)  # its container (docker) or cgroup goes too
            self._set(phase="lost", finished_at=time.time(),
                      message="the task's executor vanished while the agent was away")
            return None
        # Never started (the agent stopped between deciding and starting): start it now.
        return None

    def _start_run(self) -> drivers.Run:
        alloc = self.alloc
        task = alloc.get("task") or {}
        ports = dict(self.state.get("ports") or {})
        for name in port_names(alloc):
            if name not in ports:
                ports[name] = self.agent.pick_port()
        env = self.agent.task_env(alloc, ports, self.base)
        resources = alloc.get("resources") or {}
        command = drivers.command_for(task, self.id, env, ports, resources,
                                      self.agent.marks, self.agent.docker_host)
        limits: dict[str, Any] = {}
        if self._driver() == "exec":
            # A container's limits are its own (on the docker command line): the Docker CLI
            # itself must not run under the task's memory limit.
            limits = self.agent.limits.prepare(
                self.id, int(resources.get("cpu_milli") or 0),
                int(resources.get("memory_mib") or 0))
        spec = {
            "command": command, "cwd": str(self.local_dir), "env": env,
            "log_dir": str(self.log_dir), "log_max_bytes": self.agent.config.log_max_bytes,
            "log_max_files": self.agent.config.log_max_files,
            "kill_timeout": _duration(task.get("kill_timeout"), 5.0), **limits,
        }
        for sub in (self.run_dir, self.log_dir, self.local_dir):
            sub.mkdir(parents=True, exist_ok=True)
        spec.update(self.agent.task_identity(task, self.local_dir))
        self._set(report=False, phase="starting", ports=ports,
                  runs=int(self.state.get("runs", 0)) + 1, executor_pid=None)
        if self._driver() == "docker":
            drivers.docker_finish(self.agent.docker_host, self.id)  # a container left before
        run = drivers.start(self.run_dir, spec, {**self.agent.marks.env(), ALLOC_MARKER: self.id})
        self._unhealthy = None
        self._set(phase="running", executor_pid=run.executor_pid,
                  executor_start=run.executor_start, started_at=time.time(),
                  message="", healthy=None)
        return run

    def _driver(self) -> str:
        return str((self.alloc.get("task") or {}).get("driver", "exec"))

    def _health_spec(self) -> HealthSpec | None:
        if self.alloc.get("job_type", "service") != "service":
            return None
        data = self.agent.health_for(self.alloc)
        if not data:
            return None
        spec = HealthSpec.from_dict(data)
        if spec.type == "command" and self._driver() == "docker":
            # The check runs where the task runs: inside its container.
            spec = dataclasses.replace(spec, command=[
                "docker", "--host", self.agent.docker_host, "exec",
                drivers.container_name(self.id), *spec.command])
        return spec

    def _finish_run(self, outcome: dict[str, Any] | None) -> dict[str, Any] | None:
        """After a run: remove its container, and say so when memory ran out."""
        if self._driver() == "docker":
            reason = drivers.docker_finish(self.agent.docker_host, self.id)
        else:
            reason = None
            if self.agent.limits.oom_killed(self.id):
                reason = "out of memory (killed by the kernel at the task's memory limit)"
            self.agent.limits.release(self.id)  # a restart gets a fresh group (and count)
        if reason and outcome is not None and not outcome.get("stopped"):
            outcome = {**outcome, "message": f"{reason}; {outcome.get('message', '')}"}
        return outcome

    def _watch(self, run: drivers.Run) -> dict[str, Any]:
        """Wait for the run to end: stop it on request, restart it when unhealthy."""
        pidfd: int | None = None
        if run.executor_pid > 0:
            try:
                pidfd = os.pidfd_open(run.executor_pid)
            except ProcessLookupError:
                pidfd = None
        kill_timeout = _duration((self.alloc.get("task") or {}).get("kill_timeout"), 5.0)
        health = self._health_spec()
        started = float(self.state.get("started_at") or time.time())
        next_check = started + (health.grace_s if health else 0.0)
        failures = 0
        stop_sent_at: float | None = None
        watching_since = time.monotonic()
        try:
            while pidfd is not None:
                wants_stop = (bool(self.state.get("stop_requested"))
                              or self._unhealthy is not None or self._restart_requested)
                # A SIGTERM that reaches the executor before it handles SIGTERM kills it
                # without a record (the task reported lost): wait until it says it runs.
                if wants_stop and stop_sent_at is None and (
                        drivers.read_executor(self.run_dir) is not None
                        or time.monotonic() - watching_since > EXECUTOR_READY_SECONDS):
                    drivers.request_stop(run)
                    stop_sent_at = time.monotonic()
                if stop_sent_at is not None and (
                        time.monotonic() - stop_sent_at > kill_timeout + STOP_GRACE_SECONDS):
                    drivers.force_kill(run, self.run_dir)
                timeout = 3600.0
                if stop_sent_at is not None:
                    timeout = 0.5
                elif wants_stop:
                    timeout = 0.05  # the executor is starting: look again shortly
                elif health is not None:
                    timeout = max(0.0, next_check - time.time())
                if pidfd in self._wait(timeout, [pidfd]):
                    break
                if health is not None and stop_sent_at is None and time.time() >= next_check:
                    ok, detail = check(health, "127.0.0.1", self.state.get("ports") or {},
                                       str(self.local_dir), self.agent.task_env(
                                           self.alloc, self.state.get("ports") or {}, self.base))
                    next_check = time.time() + health.interval_s
                    failures = 0 if ok else failures + 1
                    if ok and self.state.get("healthy") is not True:
                        self._set(healthy=True, message=detail)
                    elif failures >= health.failures:
                        self._unhealthy = detail
                        self._set(healthy=False, message=f"unhealthy: {detail}")
        finally:
            if pidfd is not None:
                os.close(pidfd)
        run.reap()
        outcome = self._finish_run(drivers.read_exit(self.run_dir))
        if outcome is None:
            drivers.kill_task_group(self.run_dir)
            return {"lost": True, "message": "the task's executor died without a record"}
        return outcome

    def _finish_stopped(self, outcome: dict[str, Any] | None) -> None:
        reason = self.state.get("stop_requested")
        extra: dict[str, Any] = {}
        if outcome is not None:
            extra = {"exit_code": outcome.get("exit_code"), "signal": outcome.get("signal")}
        self._set(phase="stopped", finished_at=time.time(), message=f"stopped ({reason})",
                  **extra)

    def _decide(self, outcome: dict[str, Any]) -> None:
        if outcome.get("lost"):
            self._set(phase="lost", finished_at=time.time(), message=outcome["message"])
            return
        exit_code, signum = outcome.get("exit_code"), outcome.get("signal")
        message = str(outcome.get("message") or "")
        batch = self.alloc.get("job_type") == "batch"
        if self.state.get("stop_requested"):
            if batch and exit_code == 0 and not outcome.get("stopped"):
                # It finished on its own before the stop reached it: a real success (the
                # servers still count only the copies they want, see batch_succeeded).
                self._set(phase="complete", exit_code=0, signal=None,
                          finished_at=time.time(), message=message)
                return
            self._finish_stopped(outcome)
            return
        if self._restart_requested:
            with self._lock:
                self._restart_requested = False
            self._set(phase="restarting", exit_code=exit_code, signal=signum,
                      restart_at=time.time(), healthy=None,
                      message="restarting on request")
            return
        if batch and exit_code == 0:
            self._set(phase="complete", exit_code=0, signal=None, finished_at=time.time(),
                      message=message)
            return
        if self._unhealthy is not None:
            message = f"unhealthy ({self._unhealthy}); {message}"
        elif not batch:
            message = f"a service should keep running: {message}"
        policy = self.alloc.get("restart") or {}
        attempts = int(policy.get("attempts", 2))
        delay = _duration(policy.get("delay"), 2.0)
        restarts = int(self.state.get("restarts", 0))
        if restarts < attempts:
            self._set(phase="restarting", restarts=restarts + 1, exit_code=exit_code,
                      signal=signum, restart_at=time.time() + delay, healthy=None,
                      message=f"restarting in {delay:g}s: {message}")
            return
        self._set(phase="failed", exit_code=exit_code, signal=signum, finished_at=time.time(),
                  message=f"{message} (no restarts left of {attempts})")
