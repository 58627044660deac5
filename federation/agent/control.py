"""Acting on a running task for the servers: restart it in place, send it a signal, run a
command in its environment.

These are reached through the agent's signed endpoint (``federation.agent.logs``); users call
them through a server (``POST /v1/allocations/{id}/restart|signal|exec``), which checks their
ACL capabilities. Every parameter travels in the signed query string, never in an unsigned
body. ``exec`` is not interactive: the command gets no stdin and no terminal; its stdout and
stderr are streamed back as JSON lines, then its exit code.
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from federation.agent import drivers

if TYPE_CHECKING:
    from federation.agent.runner import TaskRunner

# The signals a user may send (what Nomad's `alloc signal` is used for); named, never numbers.
SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGKILL",
           "SIGALRM", "SIGWINCH", "SIGCONT", "SIGSTOP", "SIGTSTP")
MAX_COMMAND_BYTES = 8192
MAX_COMMAND_ARGS = 256
DEFAULT_EXEC_TIMEOUT = 60.0
MAX_EXEC_TIMEOUT = 3600.0
READ_CHUNK = 65536


class ControlError(Exception):
    """A request the agent refuses: ``status`` is the HTTP status, ``field`` what is wrong."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def signal_name(value: Any) -> str:
    """``SIGHUP`` from ``"SIGHUP"``, ``"hup"`` or ``"HUP"``; a ControlError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ControlError(400, "name a signal (e.g. SIGHUP)", "signal")
    name = value.strip().upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in SIGNALS:
        raise ControlError(400, f"unsupported signal {value[:32]!r} (one of "
                           f"{', '.join(SIGNALS)})", "signal")
    return name


def exec_command(raw: Any) -> list[str]:
    """The command to run, from its JSON text: a non-empty list of non-empty strings."""
    if not isinstance(raw, str) or len(raw.encode()) > MAX_COMMAND_BYTES:
        raise ControlError(400, f"the command is a JSON list of at most {MAX_COMMAND_BYTES} "
                           "bytes", "command")
    try:
        command = json.loads(raw)
    except ValueError:
        raise ControlError(400, "the command must be a JSON list of strings",
                           "command") from None
    if (not isinstance(command, list) or not command or len(command) > MAX_COMMAND_ARGS
            or not all(isinstance(a, str) and a and "\0" not in a for a in command)):
        raise ControlError(400, "the command must be a non-empty list of non-empty strings",
                           "command")
    return command


def exec_timeout(raw: Any) -> float:
    if raw is None:
        return DEFAULT_EXEC_TIMEOUT
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise ControlError(400, "timeout must be a number of seconds", "timeout") from None
    if not 0 < seconds <= MAX_EXEC_TIMEOUT:
        raise ControlError(400, f"timeout must be above 0 and at most {MAX_EXEC_TIMEOUT:g}",
                           "timeout")
    return seconds


def _running(runner: TaskRunner | None) -> TaskRunner:
    if runner is None:
        raise ControlError(404, "no such allocation runs on this node")
    if runner.phase != "running":
        raise ControlError(409, f"the task is not running (it is {runner.phase})")
    return runner


def restart(runner: TaskRunner | None) -> None:
    """Stop the task and start it again at once, on this node (no restart attempt used)."""
    _running(runner).request_restart()


def send_signal(runner: TaskRunner | None, name: str) -> None:
    """Deliver ``name`` to the task: its process group (exec) or its container (docker)."""
    task = _running(runner)
    if task.driver() == "docker":
        done = drivers.docker_cli(task.agent.docker_host, "kill", "--signal", name,
                                  drivers.container_name(task.id))
        if done.returncode != 0:
            raise ControlError(409, f"docker kill --signal {name}: {done.stderr.strip()[:300]}")
        return
    info = drivers.read_executor(task.run_dir) or {}
    pid, start = info.get("task_pid"), info.get("task_start")
    if not isinstance(pid, int) or not drivers.pid_alive(
            pid, start if isinstance(start, int) else None):
        raise ControlError(409, "the task's process is not running")
    try:
        os.killpg(pid, getattr(signal, name))
    except ProcessLookupError:
        raise ControlError(409, "the task's process is not running") from None


def _frame(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def run_in_task(runner: TaskRunner | None, command: list[str], timeout: float
                ) -> Generator[bytes, None, None]:
    """Run ``command`` where the task runs, yielding JSON lines: ``{"stdout": text}``,
    ``{"stderr": text}`` (``*_b64`` instead when the bytes are not UTF-8), then
    ``{"exit_code": n}`` (or ``{"error": why}``). exec driver: the task's working
    directory, environment and user; docker driver: ``docker exec`` in its container."""
    task = _running(runner)
    argv, cwd, env, identity = task.exec_environment(command)

    # The task's user, set by Popen itself after the fork (no Python code runs there: the
    # agent has threads); a process group of its own, so a timeout kills all of it.
    uid, gid = identity.get("uid"), identity.get("gid")
    as_user: dict[str, Any] = {}
    if uid is not None:
        as_user = {"user": int(uid), "group": int(gid if gid is not None else uid),
                   "extra_groups": []}
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                process_group=0, close_fds=True, **as_user)
    except OSError as exc:
        yield _frame(error=f"cannot start {command[0]!r}: {exc}", exit_code=127)
        return
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    open_streams, timed_out = 2, False
    decoders = {name: codecs.getincrementaldecoder("utf-8")() for name in ("stdout", "stderr")}
    try:
        while open_streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(min(remaining, 1.0)):
                data = os.read(key.fd, READ_CHUNK)
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                yield _chunk(str(key.data), data, decoders[str(key.data)])
        if timed_out:
            _kill_group(proc.pid)
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()) if not timed_out
                         else 10)
        if timed_out:
            yield _frame(error=f"timed out after {timeout:g}s: killed", exit_code=code)
        else:
            yield _frame(exit_code=code)
    finally:
        # The client went away (a broken pipe ends the generator) or it ended: no leftovers.
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait(10)
        selector.close()
        proc.stdout.close()
        proc.stderr.close()


def _chunk(stream: str, data: bytes, decoder: codecs.IncrementalDecoder) -> bytes:
    """Text when the bytes are UTF-8 (a character split across reads is completed by the
    next one), else the bytes in base64."""
    try:
        return _frame(**{stream: decoder.decode(data)})
    except UnicodeDecodeError:
        decoder.reset()
        return _frame(**{f"{stream}_b64": base64.b64encode(data).decode()})


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
