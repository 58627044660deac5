"""The ``local`` provider: instances are ``federation agent`` processes on this machine.

This is what ``federation dev`` autoscales. Each instance is a process in its own session,
recorded in a small JSON file under the pool's state directory so a restarted server finds
(and can stop) what an earlier one started. The agent command line is a parameter, so the
launch/terminate/list logic does not depend on what the process is.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.errors import CapacityError, ProviderError
from federation.providers.base import (
    PENDING,
    RUNNING,
    Bootstrap,
    Instance,
    InstanceType,
    LaunchResult,
    Provider,
    select_types,
)

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

CATALOG: tuple[InstanceType, ...] = (
    InstanceType("local-small", 1000, 1024, 0, 0.0, None, ("local",)),
    InstanceType("local-medium", 2000, 4096, 0, 0.0, None, ("local",)),
    InstanceType("local-large", 4000, 8192, 0, 0.0, None, ("local",)),
)


@dataclass(frozen=True)
class Spawned:
    pid: int
    start_ticks: int  # process start time, to tell our process from a reused pid


def _start_ticks(pid: int) -> int | None:
    """The process start time from /proc, or None when no such live process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[19])


class ProcessSpawner:
    """Starts, checks and stops detached processes; keeps handles so exits are reaped."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> Spawned:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProviderError(f"cannot start {argv[0]!r}: {exc}") from exc
        self._children[proc.pid] = proc
        ticks = _start_ticks(proc.pid)
        return Spawned(proc.pid, ticks if ticks is not None else -1)

    def alive(self, spawned: Spawned) -> bool:
        child = self._children.get(spawned.pid)
        if child is not None and child.poll() is not None:
            return False
        ticks = _start_ticks(spawned.pid)
        return ticks is not None and (spawned.start_ticks in (-1, ticks))

    def stop(self, spawned: Spawned, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``timeout``; gone already is fine."""
        if not self.alive(spawned):
            self._reap(spawned.pid)
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(spawned.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.alive(spawned):
                time.sleep(0.05)
            if not self.alive(spawned):
                break
        self._reap(spawned.pid)

    def _reap(self, pid: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass


def default_agent_command(
    pool: PoolSpec, itype: InstanceType, name: str, data_dir: Path, bootstrap: Bootstrap
) -> list[str]:
    """The real agent: ``federation agent`` with this instance's shape and pool."""
    labels = {**pool.labels, **bootstrap.labels}
    argv = [
        sys.executable, "-m", "federation.cli.main", "agent",
        "--server", ",".join(bootstrap.servers),
        "--data-dir", str(data_dir),
        "--name", name,
        "--pool", pool.name,
        "--cpu", str(itype.cpu_milli),
        "--memory", str(itype.memory_mib),
        "--provider", "local",
        "--instance-type", itype.name,
        "--instance-id", name,
        "--stop-tasks-on-exit",
    ]  # fmt: skip
    if labels:
        argv += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
    return argv


CommandBuilder = Callable[[Any, InstanceType, str, Path, Bootstrap], list[str]]


class LocalProvider(Provider):
    """Agents as local processes. Pool settings: ``state_dir`` (where instances are recorded,
    default ``~/.federation/local``), ``command`` (argv replacing the agent, for tests and
    custom setups), ``catalog`` (list of {name, cpu_milli, memory_mib, gpu})."""

    name = "local"

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        spawner: ProcessSpawner | None = None,
        command: CommandBuilder | None = None,
    ) -> None:
        super().__init__(config)
        self.spawner = spawner or ProcessSpawner()
        self.command = command or default_agent_command

    def _dir(self, pool: PoolSpec) -> Path:
        root = self.setting(pool, "state_dir") or Path.home() / ".federation" / "local"
        return Path(root) / pool.name

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        custom = self.setting(pool, "catalog")
        if custom:
            types = [
                InstanceType(
                    str(t["name"]), int(t["cpu_milli"]), int(t["memory_mib"]),
                    int(t.get("gpu", 0)), 0.0, None, ("local",),
                )
                for t in custom
            ]  # fmt: skip
        else:
            types = list(CATALOG)
        return select_types(pool, types)

    def _records(self, pool: PoolSpec) -> list[dict[str, Any]]:
        folder = self._dir(pool) / "instances"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a half-written record of a launch that never started
        return out

    def _instance(self, pool: PoolSpec, rec: Mapping[str, Any]) -> Instance:
        return Instance(
            id=rec["id"],
            pool=pool.name,
            instance_type=rec["instance_type"],
            state=RUNNING
            if self.spawner.alive(Spawned(rec["pid"], rec["start_ticks"]))
            else "terminated",
            zone="local",
            request_token=rec["token"],
            address="127.0.0.1",
            launched_at=rec["launched_at"],
            labels={"federation:pool": pool.name, "federation:request": rec["token"]},
        )

    def launch(
        self, pool: PoolSpec, instance_type: str, count: int, token: str, bootstrap: Bootstrap
    ) -> LaunchResult:
        shapes = {t.name: t for t in self.catalog(pool)}
        itype = shapes.get(instance_type)
        if itype is None:
            raise CapacityError(f"pool {pool.name} has no instance type {instance_type!r}")
        live = [self._instance(pool, r) for r in self._records(pool) if r["token"] == token]
        have = [i for i in live if i.alive]
        folder = self._dir(pool) / "instances"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(token.encode()).hexdigest()[:8]
        used = {i.id for i in live}
        index = 0
        while len(have) < count and index <= len(used) + count:
            iid = f"local-{pool.name}-{digest}-{index}"
            index += 1
            if iid in used:
                continue  # an exited instance of this token keeps its id; never reuse it
            data_dir = self._dir(pool) / "data" / iid
            argv = self.setting(pool, "command")
            argv = list(argv) if argv else self.command(pool, itype, iid, data_dir, bootstrap)
            env = {
                "FEDERATION_TOKEN": bootstrap.join_token,
                "FEDERATION_INSTANCE_ID": iid,
                "FEDERATION_POOL": pool.name,
            }
            spawned = self.spawner.spawn(argv, env, self._dir(pool) / "logs" / f"{iid}.log")
            launched_at = time.time()
            rec = {
                "id": iid, "pid": spawned.pid, "start_ticks": spawned.start_ticks,
                "token": token, "instance_type": itype.name, "launched_at": launched_at,
            }  # fmt: skip
            tmp = folder / f".{iid}.tmp"
            tmp.write_text(json.dumps(rec))
            tmp.replace(folder / f"{iid}.json")
            have.append(
                Instance(iid, pool.name, itype.name, PENDING, "local", False, token,
                         "127.0.0.1", launched_at,
                         {"federation:pool": pool.name, "federation:request": token})
            )  # fmt: skip
        return LaunchResult(token, count, tuple(have))

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        wanted = set(instance_ids)
        folder = self._dir(pool) / "instances"
        for rec in self._records(pool):
            if rec["id"] not in wanted:
                continue
            self.spawner.stop(Spawned(rec["pid"], rec["start_ticks"]))
            (folder / f"{rec['id']}.json").unlink(missing_ok=True)

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        found = [self._instance(pool, r) for r in self._records(pool)]
        return [i for i in found if i.alive]
