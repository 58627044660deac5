"""Real `federation server` processes on loopback for tests: start, kill, restart, poll."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SECRET = "test-cluster-secret-0123456789"


# Ports for test servers come from below the kernel's ephemeral range (32768 and up here):
# a port found free by binding port 0 is an ephemeral one, which any process's next outgoing
# connection may take before the server binds it. Each port is also claimed by a lock file
# held open for this test process's life (the kernel drops the lock when the process ends),
# so test runs side by side never hand out the same port.
PORT_RANGE = range(20000, 32000)
PORT_LOCKS = Path(os.environ.get("TMPDIR", "/tmp")) / "federation-test-ports"
_claimed: list[Any] = []  # open lock files: the claims last as long as this process


def _claim(port: int) -> bool:
    import fcntl

    PORT_LOCKS.mkdir(exist_ok=True)
    handle = open(PORT_LOCKS / f"{port}.lock", "a")  # noqa: SIM115 - held while we live
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:  # in use by something that takes no lock
            handle.close()
            return False
    _claimed.append(handle)
    return True


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports no other test (of this run or another) has been given."""
    ports: list[int] = []
    start = random.randrange(len(PORT_RANGE))
    for offset in range(len(PORT_RANGE)):
        port = PORT_RANGE[(start + offset) % len(PORT_RANGE)]
        if _claim(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free ports left in {PORT_RANGE}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling a server that may be down
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class ServerProcess:
    id: str
    http_port: int
    raft_port: int
    peers: list[str]
    data_dir: Path
    secret_file: Path
    token_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # The program before ``server ...``: the federation CLI, or a test's own entry point
    # that wires a server with wrapped parts.
    launcher: list[str] = field(
        default_factory=lambda: [sys.executable, "-m", "federation.cli.main"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def raft(self) -> str:
        return f"127.0.0.1:{self.raft_port}"

    def command(self) -> list[str]:
        cmd = [*self.launcher, "server", "--id", self.id,
               "--data-dir", str(self.data_dir), "--http", f"127.0.0.1:{self.http_port}",
               "--raft", self.raft, "--secret-file", str(self.secret_file),
               "--heartbeat-ttl", "2"]
        if self.peers:
            cmd += ["--peers", ",".join(self.peers)]
        if self.token_file is not None:
            cmd += ["--token-file", str(self.token_file)]
        return cmd + self.extra_args

    def start(self) -> ServerProcess:
        self.log_path = self.data_dir.parent / f"{self.id}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=env)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=5, **kwargs)

    def status(self) -> dict[str, Any]:
        response = self.get("/v1/status")
        response.raise_for_status()
        return response.json()


class Cluster:
    """N servers that know each other, started as separate processes."""

    def __init__(self, root: Path, size: int = 3, token: str | None = None,
                 extra_args: list[str] | None = None,
                 launcher: list[str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        secret_file = root / "raft.secret"
        secret_file.write_text(SECRET)
        token_file = None
        if token is not None:
            token_file = root / "api.token"
            token_file.write_text(token)
        ports = free_ports(2 * size)
        rafts = [f"127.0.0.1:{p}" for p in ports[size:]]
        self.servers = [
            ServerProcess(
                id=f"s{i + 1}", http_port=ports[i], raft_port=ports[size + i],
                peers=[r for r in rafts if r != rafts[i]], data_dir=root / f"s{i + 1}",
                secret_file=secret_file, token_file=token_file,
                extra_args=list(extra_args or []),
                **({"launcher": list(launcher)} if launcher else {}),
            )
            for i in range(size)
        ]

    def start(self) -> Cluster:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.alive()]

    def wait_leader(self, timeout: float = 15.0) -> ServerProcess:
        """Wait until every live server names the same leader; return it."""
        def agreed() -> ServerProcess | None:
            leaders = {s.status()["leader"] for s in self.alive()}
            if len(leaders) != 1 or None in leaders:
                return None
            (leader_id,) = leaders
            return next(s for s in self.servers if s.id == leader_id)

        return wait_for(agreed, timeout, "the servers to agree on a leader")

    def followers(self, leader: ServerProcess) -> list[ServerProcess]:
        return [s for s in self.alive() if s is not leader]


def stop_all(procs: list[subprocess.Popen[bytes]], sig: int, grace: float) -> None:
    """Send ``sig`` to every process, then wait up to ``grace`` seconds for each before
    killing it."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    for proc in procs:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
