"""The scheduling pass: the one service the leader's loop and the plan preview share.

The leader's loop (``federation/server/scheduling.py``) commits what :func:`plan_pass`
decides; ``POST /v1/jobs/plan`` shows what it decides for one job (:func:`preview`). Both
decide the same way through it: a job waits for its dependencies, is reconciled against a
snapshot taken at ``now`` (so drains past their deadline count), is held when its queue's
quota would be passed, and is planned with the pass's workload profile. Pure: reads a
state machine, never writes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.scheduler.feasibility import Usage
from federation.scheduler.jobplan import JobPlan, plan_work
from federation.scheduler.order import order_jobs
from federation.scheduler.reconcile import JobWork, dependencies_ready, reconcile_job, settled
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
class Decision:
    """What a pass decided for one job: a plan, why it waits, or the step that failed."""

    job: Mapping[str, Any]
    plan: JobPlan | None = None
    blocked: str | None = None  # waiting: a dependency, a queue's quota
    failed: tuple[str, Exception] | None = None  # (step, error): set aside this pass


def unordered(candidates: list[tuple[Mapping[str, Any], JobWork]],
              queue_records: list[dict[str, Any]], queue_of: Mapping[str, str],
              reason: str) -> tuple[list[tuple[Mapping[str, Any], JobWork]], dict[str, str]]:
    """Fair-share ordering failed for the whole pass (it sums over every queue): plan by
    priority alone, holding back the jobs of queues with a quota, which could not be
    enforced."""
    quota = {q["name"] for q in queue_records if (q.get("spec") or {}).get("quota")}
    held = {job["id"]: reason for job, _ in candidates
            if queue_of.get(job["id"], "default") in quota}
    return [c for c in candidates if c[0]["id"] not in held], held


def plan_pass(machine: Any, jobs: Sequence[Mapping[str, Any]], snapshot: Snapshot, *,
              seed: int, status_of: Mapping[str, str] | None = None, skip_idle: bool = True,
              on_order_error: Callable[[str, Exception], None] | None = None,
              on_wake: Callable[[str, float], None] | None = None,
              on_settled: Callable[[str], None] | None = None,
              ) -> Iterator[Decision]:
    """One scheduling pass over ``jobs`` (in priority order) against ``snapshot``: the
    leader's loop commits what this yields, ``POST /v1/jobs/plan`` shows it. A job waits
    for its dependencies, is reconciled (drains past their deadline count), is held when
    its queue's quota would be passed, and is planned with the pass's workload profile
    against the snapshot plus what the pass already planned. Decisions are yielded as they
    are made, so the caller can commit each plan while the next is being planned. With
    ``skip_idle`` a job with nothing to do and nothing to report yields nothing.
    ``on_wake(job_id, at)`` hears of a job whose failed copies are replaced only at ``at``
    (their reschedule delay), so the caller can look again then; ``on_settled(job_id)``
    of a job that needs nothing until one of its allocations ends, a node changes or the
    job changes (:func:`federation.scheduler.reconcile.settled`)."""
    status_of = status_of if status_of is not None else StatusOf(machine)
    candidates = []
    for job in jobs:
        if job["spec"].get("schedule"):
            continue  # a periodic template: its children run
        try:
            work = job_work(job, snapshot, status_of)
            quiet = on_settled is not None and not isinstance(work, str) and settled(
                job, work, snapshot.by_job.get(job["id"], ()), snapshot.draining)
        except Exception as exc:  # noqa: BLE001 - one job's failure is its own
            yield Decision(job, failed=("reconciling", exc))
            continue
        if isinstance(work, str):
            yield Decision(job, blocked=work)
            continue
        if work.wake_at is not None and on_wake is not None:
            on_wake(job["id"], work.wake_at)
        if quiet and on_settled is not None:
            on_settled(job["id"])
        if skip_idle and work.empty and not job.get("unplaced") and not any(
                g.exhausted for g in work.groups):
            continue
        candidates.append((job, work))
    queue_of = {j["id"]: j["spec"].get("queue", "default")
                for j in list(machine.jobs.values())}
    queue_of.update({j["id"]: j["spec"].get("queue", "default") for j in jobs})
    queue_records = list(machine.queues.values())
    try:
        ordered, held = order_jobs(candidates, queue_records, snapshot, queue_of)
    except Exception as exc:  # noqa: BLE001 - fair share failed: plan by priority
        reason = f"fair-share ordering failed: {type(exc).__name__}: {str(exc)[:500]}"
        if on_order_error is not None:
            on_order_error(reason, exc)
        ordered, held = unordered(candidates, queue_records, queue_of, reason)
    by_id = {job["id"]: job for job, _ in candidates}
    for job_id, reason in held.items():
        yield Decision(by_id[job_id], blocked=reason)
    overlay = Usage()
    profile = pass_profile(snapshot, ordered)  # the live and pending mix, once a pass
    for job, work in ordered:
        try:
            plan = plan_work(snapshot, dict(job), work, seed=seed, usage=overlay,
                             profile=profile)
        except Exception as exc:  # noqa: BLE001 - one job's failure is its own
            yield Decision(job, failed=("planning", exc))
            continue
        overlay = plan.usage
        yield Decision(job, plan=plan)


@dataclass
class Preview:
    """What a pass would do with one job now: a plan, or why it would not plan it."""

    plan: JobPlan | None
    blocked: str | None = None


def preview(machine: Any, job: Mapping[str, Any], now: float, seed: int = 0) -> Preview:
    """Plan ``job`` as the leader's next pass would (:func:`plan_pass`, ``seed`` its
    number), against the current state, without committing anything (the other jobs'
    pending work is not planned first)."""
    for decision in plan_pass(machine, [job], take(machine, now), seed=seed, skip_idle=False):
        if decision.failed is not None:
            raise decision.failed[1]
        if decision.blocked is not None:
            return Preview(None, decision.blocked)
        return Preview(decision.plan)
    return Preview(None, "a periodic job: its runs are planned when they are launched")
