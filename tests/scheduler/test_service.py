"""The plan preview decides as the leader's pass does: dependencies, queue quotas and the
workload profile, against the current state, committing nothing."""

from __future__ import annotations

from typing import Any

from federation.scheduler.service import preview
from federation.specs.job import validate_job
from federation.state.machine import StateMachine


def machine() -> StateMachine:
    sm = StateMachine()
    sm.apply({"id": "n", "type": "node.register", "time": 1.0, "node": {
        "id": "n1", "name": "n1", "token_hash": "h",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    return sm


def job(job_id: str, **spec: Any) -> dict[str, Any]:
    body = validate_job({"id": job_id, "type": "batch", **spec, "groups": [{
        "name": "g", "count": 2, "resources": {"cpu": 500, "memory": 256},
        "task": {"command": ["true"]}}]})
    return {"id": job_id, "spec": body, "version": 1, "stopped": False, "create_index": 99}


def test_a_job_that_fits_is_planned_and_nothing_is_committed() -> None:
    sm = machine()
    index = sm.index
    outcome = preview(sm, job("fits"), now=10.0)
    assert outcome.blocked is None and outcome.plan is not None
    assert [a["node_id"] for a in outcome.plan.allocations] == ["n1", "n1"]
    assert sm.index == index and not sm.allocations


def test_a_job_waiting_for_a_dependency_is_not_planned() -> None:
    sm = machine()
    sm.apply({"id": "p", "type": "job.register", "time": 1.0, "spec": job("extract")["spec"]})
    outcome = preview(sm, job("load", depends_on=["extract"]), now=10.0)
    assert outcome.plan is None
    assert "waiting for dependency 'extract'" in str(outcome.blocked)


def test_a_job_past_its_queues_quota_is_held() -> None:
    sm = machine()
    sm.apply({"id": "q", "type": "queue.apply", "time": 1.0, "spec": {
        "name": "small", "weight": 1.0, "quota": {"cpu": 600, "memory": 4096}}})
    outcome = preview(sm, job("big", queue="small"), now=10.0)
    assert outcome.plan is None
    assert "more than queue small's whole quota" in str(outcome.blocked)
