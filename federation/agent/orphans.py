"""Finding and stopping task processes an earlier run of this agent left without a record.

An agent restarted with an empty (or lost) data directory has no ``state.json`` for the tasks
it started before: it cannot adopt them, and the servers place replacements. The old
processes must not keep running next to those replacements. Three marks, none of them in the
data directory, tell this node's tasks apart:

* every executor and task process has ``FEDERATION_AGENT_NODE=<node name>`` and
  ``FEDERATION_ALLOC_ID=<alloc id>`` in its initial environment (``/proc/<pid>/environ``);
  each task runs in a process group of its own, so a task's children that cleared their
  environment still go with the group;
* with cgroup limits, each task runs in a cgroup named after its allocation under this node's
  own directory (``limits.py``): every process in it is found, whatever its environment;
* each container has the labels ``federation.node=<node name>`` and ``federation.alloc``.

At start, before it adopts or starts anything, the agent stops every marked process and
container whose allocation it will not adopt: SIGTERM to each process group, SIGKILL to
what is left after a grace period, ``docker rm --force`` for containers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable

from federation.agent import drivers
from federation.agent.limits import Limits

log = logging.getLogger("federation.agent")
GRACE_SECONDS = 5.0


def _environ(pid: int) -> dict[bytes, bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def marked_processes(node_name: str) -> dict[int, str]:
    """pid -> allocation id of every live process marked as started by this node's agent."""
    marker, own = node_name.encode(), os.getpid()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        env = _environ(int(entry))
        if env.get(drivers.NODE_MARKER.encode()) == marker:
            found[int(entry)] = env.get(b"FEDERATION_ALLOC_ID", b"").decode(errors="replace")
    return found


def _groups_of(pids: Iterable[int]) -> set[int]:
    own = os.getpgrp()
    groups = set()
    for pid in pids:
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if group != own and group > 1:
            groups.add(group)
    return groups


def _signal(groups: Iterable[int], pids: Iterable[int], signum: int) -> None:
    for group in groups:
        try:
            os.killpg(group, signum)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[:1] not in (["Z"], ["X"])


def stop_orphans(node_name: str, keep: set[str], limits: Limits,
                 docker_host: str | None = None, grace: float = GRACE_SECONDS) -> list[str]:
    """Stop what this node started for allocations not in ``keep``; returns their ids."""
    def find() -> tuple[set[int], set[str]]:
        pids: set[int] = set()
        allocs: set[str] = set()
        for pid, alloc_id in marked_processes(node_name).items():
            if alloc_id not in keep:
                pids.add(pid)
                allocs.add(alloc_id)
        for alloc_id in limits.groups():
            if alloc_id not in keep:
                found = limits.pids(alloc_id)
                pids.update(found)
                if found:
                    allocs.add(alloc_id)
        pids.discard(os.getpid())
        return {p for p in pids if _running(p)}, allocs

    pids, allocs = find()
    if docker_host is not None and drivers.docker_answers(docker_host) is None:
        for container, alloc_id in drivers.docker_containers(docker_host, node_name).items():
            if alloc_id not in keep:
                log.warning("removing container %s of allocation %s: this agent has no "
                            "record of it", container[:12], alloc_id)
                drivers.docker_cli(docker_host, "rm", "--force", "--volumes", container)
                allocs.add(alloc_id)
    if pids:
        log.warning("stopping %d process(es) of %d allocation(s) this agent has no record of: "
                    "%s", len(pids), len(allocs), ", ".join(sorted(allocs)))
        _signal(_groups_of(pids), pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.1)
        # Anything still there, or started meanwhile by a dying executor, is killed.
        left, _ = find()
        left |= {p for p in pids if _running(p)}
        _signal(_groups_of(left), left, signal.SIGKILL)
    for alloc_id in limits.groups():
        if alloc_id not in keep:
            limits.release(alloc_id)
    return sorted(allocs)
