"""What a job needs now: compare its spec with its allocations, group by group. Pure.

For each group the reconciler finds the instance indexes that have no live allocation and
must be placed, the allocations to stop (beyond ``count``, or of an older job version under a
rolling update), and the failed allocations that are replaced or have used up their
attempts. Services always come back; a batch index that failed more than
``reschedule.attempts`` more times (its agent already restarted it ``restart.attempts`` times
in place) stays failed and fails the job. A failed copy is replaced only once its
reschedule delay passed (``federation.scheduler.backoff``: doubled per failure in a row,
capped); until then its index is ``delayed``, with the time it is due. Services on a
draining node are migrated: a replacement is placed elsewhere first, and the old copy stops
once the replacement runs. Batch work on a draining node may finish, unless the drain's
deadline passed: then it is stopped there and placed again elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.model import LIVE_CLIENT_STATUSES
from federation.scheduler.backoff import replace_at

LIVE = LIVE_CLIENT_STATUSES  # client statuses of a copy that still holds its node


@dataclass
class GroupWork:
    group: str
    place: list[int] = field(default_factory=list)  # instance indexes to place
    previous: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> replaced alloc
    stop: list[str] = field(default_factory=list)  # allocation ids to stop
    exhausted: list[int] = field(default_factory=list)  # batch indexes out of attempts
    delayed: dict[int, float] = field(default_factory=dict)  # index -> when it may be replaced


@dataclass
class JobWork:
    job_id: str
    groups: list[GroupWork] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(g.place or g.stop for g in self.groups)

    @property
    def wake_at(self) -> float | None:
        """The earliest time a delayed replacement falls due (None: nothing delayed)."""
        due = [t for g in self.groups for t in g.delayed.values()]
        return min(due) if due else None


def _max_parallel(spec: Mapping[str, Any]) -> int:
    update = spec.get("update") or {}
    return max(1, int(update.get("max_parallel", 1)))


def reconcile_job(job: Mapping[str, Any], allocations: Iterable[Mapping[str, Any]],
                  draining: frozenset[str] = frozenset(),
                  drain_expired: frozenset[str] = frozenset(),
                  now: float | None = None) -> JobWork:
    """The work ``job`` (a state record: spec, version, stopped) needs given its allocations,
    the ids of draining nodes and of those past their drain deadline, at ``now`` (servers'
    clock; None: every reschedule delay has passed)."""
    spec = job["spec"]
    work = JobWork(job["id"])
    allocs = [a for a in allocations if a["desired_status"] == "run"]
    if job["stopped"]:
        return work
    batch = spec["type"] == "batch"
    for group in spec["groups"]:
        name, count = group["name"], int(group["count"])
        attempts = int((group.get("reschedule") or {}).get("attempts", 1))
        mine = [a for a in allocs if a["group"] == name]
        gw = GroupWork(name)
        by_index: dict[int, list[Mapping[str, Any]]] = {}
        for alloc in mine:
            by_index.setdefault(int(alloc.get("index", 0)), []).append(alloc)
        outdated_live = 0
        for index in sorted(by_index):
            if index >= count:
                gw.stop.extend(a["id"] for a in by_index[index])
        for index in range(count):
            here = by_index.get(index)
            if here is None:  # never placed (most of a new job)
                gw.place.append(index)
                continue
            live = [a for a in here if a["client_status"] in LIVE]
            done = [a for a in here if a["client_status"] == "complete"]
            if live:
                if batch and any(a["node_id"] in drain_expired for a in live):
                    # The drain deadline passed: stop it there, run it again elsewhere
                    # (not counted as a failed attempt).
                    leaving = [a for a in live if a["node_id"] in drain_expired]
                    gw.stop.extend(a["id"] for a in leaving)
                    gw.previous[index] = {**leaving[0], "client_status": "lost"}
                    gw.place.append(index)
                    continue
                if not batch and draining and any(a["node_id"] in draining for a in live):
                    _migrate(gw, index, live, draining,
                             bool((group.get("task") or {}).get("health")))
                    continue
                current = [a for a in live if a.get("job_version") == job["version"]]
                if not current:
                    outdated_live += 1
                continue
            if batch and done:
                continue
            if not batch and done:
                # A service that exited is replaced like a failed one.
                if _delayed(gw, index, group, done[-1], now):
                    continue
                gw.previous[index] = dict(done[-1])
                gw.place.append(index)
                gw.stop.extend(a["id"] for a in done)
                continue
            # ``stopped`` while still meant to run: its agent stopped it (e.g. on shutdown);
            # replaced like a lost copy, without using an attempt.
            failed = [a for a in here if a["client_status"] in ("failed", "lost", "stopped")]
            if failed:
                last = max(failed, key=lambda a: a.get("create_index", 0))
                tries = int(last.get("reschedules", 0))
                if batch and last["client_status"] == "failed" and tries >= attempts:
                    gw.exhausted.append(index)
                    continue
                if _delayed(gw, index, group, last, now):
                    continue
                gw.previous[index] = dict(last)
                gw.stop.extend(a["id"] for a in failed)
            gw.place.append(index)
        # Rolling update: replace live allocations of older versions with at most
        # max_parallel new ones not yet up (running, and healthy when a check is declared).
        if outdated_live and not gw.place:
            checked = bool((group.get("task") or {}).get("health"))
            coming_up = sum(
                1 for a in mine if a.get("job_version") == job["version"]
                and a["client_status"] in LIVE and not _up(a, checked))
            budget = max(0, _max_parallel(spec) - coming_up)
            for index in range(count):
                if budget == 0:
                    break
                live = [a for a in by_index.get(index, []) if a["client_status"] in LIVE]
                if live and all(a.get("job_version") != job["version"] for a in live):
                    gw.stop.extend(a["id"] for a in live)
                    gw.previous[index] = dict(live[0])
                    gw.place.append(index)
                    budget -= 1
        if gw.place or gw.stop or gw.exhausted or gw.delayed:
            work.groups.append(gw)
    return work


def _delayed(gw: GroupWork, index: int, group: Mapping[str, Any], failed: Mapping[str, Any],
             now: float | None) -> bool:
    """True (and the index noted as delayed) when ``failed``'s replacement is not due yet."""
    due = replace_at(group, failed) if now is not None else None
    if due is None or due <= now:  # type: ignore[operator]
        return False
    gw.delayed[index] = due
    return True


def _up(alloc: Mapping[str, Any], checked: bool) -> bool:
    return alloc["client_status"] == "running" and (alloc.get("healthy") is True or not checked)


def _migrate(gw: GroupWork, index: int, live: list[Mapping[str, Any]],
             draining: frozenset[str], checked: bool) -> None:
    """Move a service instance off draining nodes without a moment at zero copies: the old
    copy stops once the replacement runs (and, with a health check, passes it)."""
    leaving = [a for a in live if a["node_id"] in draining]
    staying = [a for a in live if a["node_id"] not in draining]
    if not staying:
        gw.previous[index] = {**leaving[0], "client_status": "lost"}  # no attempt used
        gw.place.append(index)
        # More than one copy leaving is a copy too many: the replacement names one.
        gw.stop.extend(a["id"] for a in leaving[1:])
    elif any(_up(a, checked) for a in staying):
        gw.stop.extend(a["id"] for a in leaving)


def settled(job: Mapping[str, Any], work: JobWork, allocations: Iterable[Mapping[str, Any]],
            draining: frozenset[str]) -> bool:
    """Whether ``job`` can need nothing more until an allocation of it ends, a node changes
    or the job itself changes: its work is empty (nothing delayed, nothing exhausted,
    nothing unplaced) and no copy meant to run is of an older version or on a draining node
    (those wait for their replacements to come up). A copy of a settled job that goes from
    pending to running, or changes its health, changes none of the decisions above."""
    if not work.empty or work.wake_at is not None or job.get("unplaced") \
            or any(g.exhausted for g in work.groups):
        return False
    return all(a.get("job_version") == job["version"] and a["node_id"] not in draining
               for a in allocations
               if a["desired_status"] == "run" and a["client_status"] in LIVE)


def dependencies_ready(job: Mapping[str, Any], status_of: Mapping[str, str]) -> str | None:
    """None when every job this one depends on completed, else why it waits."""
    for parent in job["spec"].get("depends_on") or []:
        status = status_of.get(parent)
        if status != "complete":
            return f"waiting for dependency {parent!r} ({status or 'missing'})"
    return None
