"""Turning reconciled work into placements."""

from __future__ import annotations

from federation.scheduler.jobplan import plan_work
from federation.scheduler.reconcile import reconcile_job
from federation.scheduler.snapshot import Snapshot
from federation.scheduler.types import NodeView, Resources


def snapshot() -> Snapshot:
    nodes = tuple(NodeView(id=f"n{i}", capacity=Resources(4000, 4096)) for i in (1, 2))
    return Snapshot(nodes, (), {}, {})


def batch_job() -> dict:
    return {"id": "j", "version": 1, "stopped": False, "spec": {
        "id": "j", "type": "batch", "priority": 50, "groups": [{
            "name": "g", "count": 1, "resources": {"cpu": 100, "memory": 64},
            "reschedule": {"attempts": 3}, "task": {"command": ["false"]}}]}}


def test_a_failed_batch_task_moves_to_another_node() -> None:
    for failed_on, expected in (("n1", "n2"), ("n2", "n1")):
        failed = {"id": "old", "group": "g", "index": 0, "node_id": failed_on,
                  "desired_status": "run", "client_status": "failed", "job_version": 1,
                  "create_index": 1}
        work = reconcile_job(batch_job(), [failed])
        plan = plan_work(snapshot(), batch_job(), work)
        assert [a["node_id"] for a in plan.allocations] == [expected]
        assert plan.allocations[0]["previous_alloc"] == "old"
        assert plan.allocations[0]["reschedules"] == 1


def test_new_work_is_planned_together_and_numbered_by_index() -> None:
    job = batch_job()
    job["spec"]["groups"][0]["count"] = 3
    plan = plan_work(snapshot(), job, reconcile_job(job, []))
    assert sorted(a["index"] for a in plan.allocations) == [0, 1, 2]
