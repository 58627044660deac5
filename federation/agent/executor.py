"""The per-allocation executor: a small process that owns one task process.

The agent starts one executor per task run, in a session of its own, so the task outlives an
agent restart. The executor starts the command in its own process group, copies its stdout
and stderr into size-capped, rotated files, turns SIGTERM into "stop the task" (SIGTERM to the
task's group, SIGKILL after ``kill_timeout``), and records the outcome in ``exit.json``
before it exits. It imports the standard library only and is run by path
(``python -I -S executor.py TASK_JSON``), so it starts quickly and holds little memory.

Files it writes next to the task spec (all written atomically):

* ``executor.json``: ``{"executor_pid", "executor_start", "task_pid", "task_start", "started_at"}``
* ``exit.json``: ``{"exit_code", "signal", "finished_at", "message"}``

Log segments are ``<log_dir>/<stream>.<offset>.log``: ``offset`` is the position of the
segment's first byte in the whole stream, so readers keep stable offsets across rotation.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

READ_CHUNK = 65536
DRAIN_SECONDS = 2.0


def write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


class RotatingLog:
    """Append-only stream split into segments of at most ``max_bytes``; keeps ``max_files``."""

    def __init__(self, directory: str, stream: str, max_bytes: int, max_files: int) -> None:
        self.directory = directory
        self.stream = stream
        self.max_bytes = max(1024, max_bytes)
        self.max_files = max(1, max_files)
        # A restarted task appends to the stream of its earlier runs, in the last segment.
        segments = self._segments()
        start = segments[-1] if segments else 0
        self.written = 0
        self.segment_start = start
        self.handle = self._open(start)
        self.offset = start + self.written

    def _segments(self) -> list[int]:
        prefix = self.stream + "."
        starts = []
        for name in os.listdir(self.directory):
            if name.startswith(prefix) and name.endswith(".log"):
                middle = name[len(prefix):-len(".log")]
                if middle.isdigit():
                    starts.append(int(middle))
        return sorted(starts)

    def _path(self, start: int) -> str:
        return os.path.join(self.directory, f"{self.stream}.{start:020d}.log")

    def _open(self, start: int) -> Any:
        handle = open(self._path(start), "ab")  # noqa: SIM115 - closed on rotation/close
        self.written = handle.tell()
        self.segment_start = start
        return handle

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self.written
            if room <= 0:
                self._rotate()
                continue
            piece, data = data[:room], data[room:]
            self.handle.write(piece)
            self.handle.flush()
            self.written += len(piece)
            self.offset += len(piece)

    def _rotate(self) -> None:
        self.handle.close()
        self.handle = self._open(self.offset)
        segments = self._segments()
        for start in segments[: max(0, len(segments) - self.max_files)]:
            try:
                os.unlink(self._path(start))
            except FileNotFoundError:
                pass

    def close(self) -> None:
        self.handle.close()


def _limits(spec: dict[str, Any]) -> Any:
    memory_bytes = spec.get("rlimit_as_bytes")
    cgroup_procs = spec.get("cgroup_procs") or []
    if isinstance(cgroup_procs, str):
        cgroup_procs = [cgroup_procs]

    def apply() -> None:
        # Runs in the child between fork and exec (the executor is single-threaded): the
        # task joins its cgroups (one per hierarchy) before its first instruction.
        for procs in cgroup_procs:
            with open(procs, "w", encoding="ascii") as handle:
                handle.write(str(os.getpid()))
        if memory_bytes:  # the last resort, when no cgroup memory controller is usable
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    base = os.path.dirname(spec_path)
    log_dir = spec["log_dir"]
    os.makedirs(log_dir, exist_ok=True)
    logs = {
        name: RotatingLog(log_dir, name, spec["log_max_bytes"], spec["log_max_files"])
        for name in ("stdout", "stderr")
    }
    stop_requested: dict[str, float | None] = {"at": None}

    def on_term(signum: int, frame: Any) -> None:
        if stop_requested["at"] is None:
            stop_requested["at"] = time.monotonic()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)

    started_at = time.time()
    try:
        proc = subprocess.Popen(
            spec["command"], cwd=spec["cwd"], env=spec["env"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0,
            preexec_fn=_limits(spec), close_fds=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logs["stderr"].write(f"federation: cannot start {spec['command'][0]!r}: {exc}\n".encode())
        write_json(os.path.join(base, "exit.json"), {
            "exit_code": 127, "signal": None, "finished_at": time.time(),
            "message": f"cannot start the command: {exc}"})
        return 0
    write_json(os.path.join(base, "executor.json"), {
        "executor_pid": os.getpid(), "executor_start": process_start_ticks(os.getpid()),
        "task_pid": proc.pid, "task_start": process_start_ticks(proc.pid),
        "started_at": started_at,
    })
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    pidfd = os.pidfd_open(proc.pid)
    selector.register(pidfd, selectors.EVENT_READ, "exit")
    kill_timeout = float(spec.get("kill_timeout", 5.0))
    term_sent = kill_sent = False
    status: int | None = None
    exited_at = 0.0
    open_streams = 2
    while open_streams or status is None:
        now = time.monotonic()
        asked = stop_requested["at"]
        if asked is not None and status is None:
            if not term_sent:
                _signal_group(proc.pid, signal.SIGTERM)
                term_sent = True
            elif not kill_sent and now - asked >= kill_timeout:
                _signal_group(proc.pid, signal.SIGKILL)
                kill_sent = True
        if status is not None and open_streams and now - exited_at > DRAIN_SECONDS:
            break  # something outside the group holds the pipes: stop waiting for them
        timeout = 0.5 if (stop_requested["at"] is not None or status is not None) else None
        for key, _ in selector.select(timeout):
            tag = key.data
            if tag == "wake":
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            elif tag == "exit":
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(proc.pid, 0)
                exited_at = time.monotonic()
                # Whatever the task left behind in its group goes with it.
                _signal_group(proc.pid, signal.SIGKILL)
            else:
                data = os.read(key.fd, READ_CHUNK)
                if data:
                    logs[tag].write(data)
                else:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
    for log in logs.values():
        log.close()
    assert status is not None
    outcome: dict[str, Any] = {"exit_code": None, "signal": None, "finished_at": time.time(),
                               "message": ""}
    if os.WIFSIGNALED(status):
        outcome["signal"] = os.WTERMSIG(status)
        outcome["message"] = f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        outcome["exit_code"] = os.WEXITSTATUS(status)
        outcome["message"] = f"exited with code {outcome['exit_code']}"
    if term_sent:
        outcome["stopped"] = True
        outcome["message"] += " after a stop request"
    write_json(os.path.join(base, "exit.json"), outcome)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
