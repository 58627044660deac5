"""The scheduling decisions the leader's pass makes, as functions the plan preview shares.

The leader's pass (``federation/server/scheduling.py``) and ``POST /v1/jobs/plan`` decide
the same way through these: a job waits for its dependencies, is reconciled against a
snapshot taken at ``now`` (so drains past their deadline count), is held when its queue's
quota would be passed, and is planned with the pass's workload profile. Pure: reads a
state machine, never writes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.scheduler.jobplan import JobPlan, plan_work
from federation.scheduler.order import order_jobs
from federation.scheduler.reconcile import JobWork, dependencies_ready, reconcile_job
from federation.scheduler.snapshot import Snapshot, take
from federation.scheduler.workload import pass_profile


class StatusOf(dict[str, str]):
    """Job statuses, computed on first use (only jobs with dependencies need them)."""

    def __init__(self, machine: Any) -> None:
        super().__init__()
        self._machine = machine

    def __missing__(self, job_id: str) -> str:
        job = self._machine.jobs.get(job_id)
        status = self._machine.job_status(job) if job is not None else "missing"
        self[job_id] = status
        return status

    def get(self, job_id: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[job_id]


def job_work(job: Mapping[str, Any], snapshot: Snapshot,
             status_of: Mapping[str, str]) -> JobWork | str:
    """What a pass plans for ``job``: its reconciled work, or why it waits (a dependency)."""
    waiting = dependencies_ready(job, status_of)
    if waiting is not None:
        return waiting
    return reconcile_job(job, snapshot.by_job.get(job["id"], ()), snapshot.draining,
                         snapshot.drain_expired, snapshot.now)


@dataclass
class Preview:
    """What a pass would do with one job now: a plan, or why it would not plan it."""

    plan: JobPlan | None
    blocked: str | None = None


def preview(machine: Any, job: Mapping[str, Any], now: float) -> Preview:
    """Plan ``job`` as the leader's next pass would, against the current state, without
    committing anything (the other jobs' pending work is not planned first)."""
    snapshot = take(machine, now)
    work = job_work(job, snapshot, StatusOf(machine))
    if isinstance(work, str):
        return Preview(None, work)
    queue_of = {j["id"]: j["spec"].get("queue", "default")
                for j in list(machine.jobs.values())}
    queue_of[job["id"]] = job["spec"].get("queue", "default")
    _, held = order_jobs([(job, work)], list(machine.queues.values()), snapshot, queue_of)
    if job["id"] in held:
        return Preview(None, held[job["id"]])
    profile = pass_profile(snapshot, [(job, work)])
    return Preview(plan_work(snapshot, job, work, profile=profile))
