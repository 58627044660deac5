"""Garbage collection of finished work: a state machine command, applied like any other.

The leader commits ``{"type": "gc", "time": T, "policy": {...}}`` when :func:`plan` finds
something to collect; every server then removes the same records, because what goes is a
pure function of the state, the command's time and its policy (no clock read):

* **periodic children**: a periodic job keeps its ``periodic_keep`` most recent finished
  children (by launch time); older finished children go, with their allocations.
* **finished jobs**: a job finished (complete, failed or stopped) for ``job_age`` seconds
  goes, with its allocations; its end is the latest of its submission, its stop and its
  allocations' reported ``finished_at``. A job that an unfinished job depends on stays, and
  so does a periodic job with children left.
* **history of live jobs**: allocations the cluster no longer wants (stopped or evicted)
  that have ended are history; a job keeps its ``allocs_per_job`` most recent ones.

Unfinished work is never collected. See docs/operations.md for the defaults and settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from federation.state import checks

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine

FINISHED = ("complete", "failed", "dead")
ENDED = ("complete", "failed", "lost", "stopped")


@dataclass(frozen=True)
class Policy:
    periodic_keep: int = 5
    job_age: float = 4 * 3600.0
    allocs_per_job: int = 50

    def command(self, now: float) -> dict[str, Any]:
        return {"type": "gc", "time": now, "policy": asdict(self)}


def _policy(value: Any) -> Policy:
    raw = checks.mapping(value, "policy")
    default = Policy()
    return Policy(
        periodic_keep=checks.integer(raw.get("periodic_keep", default.periodic_keep),
                                     "policy.periodic_keep", high=100_000),
        job_age=checks.number(raw.get("job_age", default.job_age), "policy.job_age"),
        allocs_per_job=checks.integer(raw.get("allocs_per_job", default.allocs_per_job),
                                      "policy.allocs_per_job", high=100_000),
    )


def _allocs(sm: StateMachine, job_id: str) -> list[Mapping[str, Any]]:
    return [sm.allocations[a] for a in sorted(sm.alloc_ids_by_job.get(job_id, ()))
            if a in sm.allocations]


def _ended_at(sm: StateMachine, job: Mapping[str, Any]) -> float:
    times = [float(job["submit_time"]), float(job.get("stopped_at") or 0.0)]
    for alloc in _allocs(sm, job["id"]):
        finished = alloc.get("finished_at")
        if isinstance(finished, int | float) and not isinstance(finished, bool):
            times.append(float(finished))
    return max(times)


def plan(sm: StateMachine, now: float, policy: Policy) -> tuple[list[str], list[str]]:
    """``(job ids, allocation ids)`` to collect, in a deterministic order. Pure."""
    # One copy of the job table: the leader's loop reads a state that Raft keeps changing.
    jobs = dict(sm.jobs)
    status = {job_id: sm.job_status(job) for job_id, job in jobs.items()}
    children: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs.values():
        if job.get("parent"):
            children.setdefault(job["parent"], []).append(job)
    doomed: set[str] = set()
    for parent_id in sorted(children):
        finished = [c for c in children[parent_id] if status[c["id"]] in FINISHED]
        finished.sort(key=lambda c: (c.get("launch_time") or 0.0, c["id"]), reverse=True)
        doomed.update(c["id"] for c in finished[policy.periodic_keep:])
    for job_id in sorted(jobs):
        job = jobs[job_id]
        if job_id in doomed or status[job_id] not in FINISHED:
            continue
        if job.get("suspended"):  # a suspended CronJob is paused, not finished
            continue
        if now - _ended_at(sm, job) >= policy.job_age:
            doomed.add(job_id)
    # Keep what the jobs that stay still refer to: dependencies of unfinished jobs, and a
    # periodic job (template) while any child of it stays.
    for job_id, job in jobs.items():
        if job_id in doomed:
            continue
        if status[job_id] not in FINISHED:
            doomed.difference_update(job["spec"].get("depends_on") or [])
        if job.get("parent"):
            doomed.discard(job["parent"])
    alloc_ids: list[str] = []
    for job_id in sorted(doomed):
        alloc_ids.extend(a["id"] for a in _allocs(sm, job_id))
    for job_id in sorted(list(sm.alloc_ids_by_job)):
        if job_id in doomed:
            continue
        history = [a for a in _allocs(sm, job_id)
                   if a["desired_status"] != "run" and a["client_status"] in ENDED]
        if len(history) > policy.allocs_per_job:
            history.sort(key=lambda a: (a["modify_index"], a["id"]))
            alloc_ids.extend(a["id"] for a in history[: len(history) - policy.allocs_per_job])
    return sorted(doomed), alloc_ids


def collect(sm: StateMachine, command: Command) -> dict[str, Any]:
    """The ``gc`` command: remove what :func:`plan` finds, at the command's time."""
    policy = _policy(command.get("policy", {}))
    now = checks.number(command.get("time"), "time")
    job_ids, alloc_ids = plan(sm, now, policy)
    if not job_ids and not alloc_ids:
        return {"jobs": 0, "allocations": 0}
    sm._bump()
    for alloc_id in alloc_ids:
        sm.remove_allocation(alloc_id)
    for job_id in job_ids:
        del sm.jobs[job_id]
        sm.alloc_writes.pop(job_id, None)
    return {"jobs": len(job_ids), "allocations": len(alloc_ids)}
