"""Resource limits for ``exec`` tasks: a cgroup per allocation, ``RLIMIT_AS`` as a last resort.

Memory is limited where it is resident: a cgroup memory limit counts the pages a task really
uses, so Go and JVM programs (which reserve large address ranges up front) run normally. An
address-space rlimit is used only on hosts without a usable cgroup; it makes such programs
abort at start (``docker --version`` under ``ulimit -v 65536``), so it is the last resort.

In order of preference:

``cgroup-v2``
    the agent's cgroup v2 group is delegated to it with the ``cpu`` and ``memory``
    controllers: the agent moves into ``<its group>/agent`` and each task runs in
    ``<its group>/allocs/<alloc id>`` with ``memory.max`` and ``cpu.weight``.
``cgroup-v1``
    the v1 ``memory`` controller is mounted and writable (and ``cpu`` when mounted): each task
    runs in ``<agent's group>/federation/<node name>/<alloc id>`` of each hierarchy with
    ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` when swap is accounted)
    and ``cpu.shares``.
``rlimit``
    ``RLIMIT_AS`` = the allocation's memory; CPU is not capped.

Per-allocation groups are named by allocation id under a directory of this node's own, so an
agent that lost its data directory still finds the groups (and processes) of the tasks it
started before (see ``federation/agent/orphans.py``).

CPU is a weight proportional to the reservation (1000 millicores = 1024 shares, the
kernel's default weight), not a hard cap: an ``exec`` task may use idle CPU, and under
contention each task gets CPU in proportion to what it reserved. (A hard cap at the
reservation makes a 100-millicore task start a Python interpreter in seconds.)

Docker tasks never go through these limits: the container gets ``--memory``/``--cpus``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("federation.agent")

def cpu_shares(cpu_milli: int) -> int:
    """cgroup v1 ``cpu.shares`` for a reservation: 1024 per CPU, at least 2."""
    return max(2, cpu_milli * 1024 // 1000)


def cpu_weight(cpu_milli: int) -> int:
    """cgroup v2 ``cpu.weight`` (1 … 10000) for the same shares, as runc converts them."""
    return 1 + ((cpu_shares(cpu_milli) - 2) * 9999) // 262142


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "node"


@dataclass
class Limits:
    mode: str  # "cgroup-v2", "cgroup-v1" or "rlimit"
    memory_base: Path | None = None  # where per-allocation groups with a memory limit go
    cpu_base: Path | None = None  # where per-allocation groups with a CPU quota go
    bases: list[Path] = field(default_factory=list)  # every hierarchy a task joins

    def prepare(self, alloc_id: str, cpu_milli: int, memory_mib: int) -> dict[str, Any]:
        """Executor settings that confine one task; creates its cgroups when cgroups are used."""
        if self.mode == "rlimit":
            return {"rlimit_as_bytes": memory_mib << 20} if memory_mib else {}
        procs = []
        for base in self.bases:
            group = base / alloc_id
            group.mkdir(exist_ok=True)
            procs.append(str(group / "cgroup.procs"))
        if self.mode == "cgroup-v2":
            group = self.bases[0] / alloc_id
            (group / "memory.max").write_text(str(memory_mib << 20) if memory_mib else "max")
            if cpu_milli:
                (group / "cpu.weight").write_text(str(cpu_weight(cpu_milli)))
        else:
            if self.memory_base is not None:
                group = self.memory_base / alloc_id
                limit = str(memory_mib << 20) if memory_mib else "-1"
                (group / "memory.limit_in_bytes").write_text(limit)
                swap = group / "memory.memsw.limit_in_bytes"
                if swap.exists():  # swap is accounted: no swapping past the limit either
                    try:
                        swap.write_text(limit)
                    except OSError as exc:
                        log.info("cannot limit swap of %s: %s", alloc_id, exc)
            if self.cpu_base is not None and cpu_milli:
                (self.cpu_base / alloc_id / "cpu.shares").write_text(str(cpu_shares(cpu_milli)))
        return {"cgroup_procs": procs}

    def oom_killed(self, alloc_id: str) -> bool:
        """True when the kernel killed a process of this task for exceeding its memory."""
        if self.memory_base is None:
            return False
        group = self.memory_base / alloc_id
        name = "memory.events" if self.mode == "cgroup-v2" else "memory.oom_control"
        try:
            text = (group / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def groups(self) -> list[str]:
        """Allocation ids that have a group here (including those of earlier agent runs)."""
        found: set[str] = set()
        for base in self.bases:
            try:
                found.update(p.name for p in base.iterdir() if p.is_dir())
            except OSError:
                continue
        return sorted(found)

    def pids(self, alloc_id: str) -> list[int]:
        """Processes in the allocation's groups."""
        found: set[int] = set()
        for base in self.bases:
            try:
                text = (base / alloc_id / "cgroup.procs").read_text()
            except OSError:
                continue
            found.update(int(p) for p in text.split() if p.isdigit())
        return sorted(found)

    def release(self, alloc_id: str) -> None:
        for base in self.bases:
            try:
                (base / alloc_id).rmdir()
            except OSError:
                pass


def _mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, mount root, super options) of every cgroup mount."""
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) > 4 and len(tail) > 2 and tail[0] in ("cgroup", "cgroup2"):
                    found.append((tail[0], Path(fields[4]), fields[3], set(tail[2].split(","))))
    except OSError:
        pass
    return found


def _own_groups() -> dict[str, str]:
    """Controller (or "" for cgroup v2) -> this process's group path."""
    groups: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            for line in handle:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3:
                    for controller in parts[1].split(",") if parts[1] else [""]:
                        groups[controller] = parts[2]
    except OSError:
        pass
    return groups


def _under(mount: Path, root: str, own: str) -> Path:
    relative = own[len(root):] if root != "/" and own.startswith(root) else own
    return mount / relative.lstrip("/")


def _enable(group: Path, controllers: tuple[str, ...]) -> None:
    (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


def _cgroup_v2(mounts: list[Any], own: dict[str, str]) -> Limits | None:
    mount = next(((m, r) for kind, m, r, _ in mounts if kind == "cgroup2"), None)
    if mount is None or "" not in own:
        return None
    base = _under(mount[0], mount[1], own[""])
    wanted = ("cpu", "memory")
    try:
        if not set(wanted) <= set((base / "cgroup.controllers").read_text().split()):
            return None
        # cgroup v2 allows controllers only in groups without processes of their own: move
        # the agent into a leaf first, then enable the controllers for the task groups.
        leaf = base / "agent"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        _enable(base, wanted)
        allocs = base / "allocs"
        allocs.mkdir(exist_ok=True)
        _enable(allocs, wanted)
    except OSError as exc:
        log.info("cgroup v2 not usable here (%s)", exc.strerror or exc)
        return None
    return Limits("cgroup-v2", allocs, allocs, [allocs])


def _cgroup_v1(mounts: list[Any], own: dict[str, str], node_name: str) -> Limits | None:
    bases: dict[str, Path] = {}
    for controller in ("memory", "cpu"):
        mount = next(((m, r) for kind, m, r, opts in mounts
                      if kind == "cgroup" and controller in opts), None)
        if mount is None or controller not in own:
            continue
        base = _under(mount[0], mount[1], own[controller]) / "federation" / _safe(node_name)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.info("cgroup v1 %s not usable here (%s)", controller, exc.strerror or exc)
            continue
        bases[controller] = base
    if "memory" not in bases:
        return None
    return Limits("cgroup-v1", bases["memory"], bases.get("cpu"), list(bases.values()))


def detect_limits(node_name: str) -> Limits:
    """The best limits this host allows the agent (see the module docstring)."""
    mounts, own = _mounts(), _own_groups()
    found = _cgroup_v2(mounts, own) or _cgroup_v1(mounts, own, node_name)
    if found is None:
        log.warning("no writable cgroup memory controller: task memory is limited by "
                    "RLIMIT_AS (programs that reserve large address ranges, such as Go and "
                    "JVM programs, may fail to start) and CPU is not capped")
        return Limits("rlimit")
    return found
