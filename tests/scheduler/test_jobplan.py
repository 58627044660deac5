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


def test_a_large_plan_is_committed_in_bounded_entries_keeping_gangs_whole() -> None:
    from federation.scheduler.jobplan import JobPlan

    plan = JobPlan("j", 1, allocations=[{"group": "web", "i": i} for i in range(5)]
                   + [{"group": "gang", "i": i} for i in range(3)],
                   stops=["s"], unplaced={"web": {"unplaced": 1}})
    entries = plan.commands(frozenset({"gang"}), limit=2)
    sizes = [len(e["allocations"]) for e in entries]
    assert sum(sizes) == 8 and max(sizes[:-1]) <= 2
    gang_entries = [e for e in entries if any(a["group"] == "gang" for a in e["allocations"])]
    assert len(gang_entries) == 1 and len(gang_entries[0]["allocations"]) == 3
    assert entries[0]["stops"] == ["s"] and all(e["stops"] == [] for e in entries[1:])
    assert entries[-1]["unplaced"] == {"web": {"unplaced": 1}}
    assert all(e["unplaced"] == {} for e in entries[:-1])


def test_plan_entries_carry_a_groups_fields_once_and_applying_restores_every_record() -> None:
    from federation.state.machine import StateMachine

    job = batch_job()
    job["spec"]["groups"][0]["count"] = 6
    sm = StateMachine()
    sm.apply({"id": "j", "type": "job.register", "time": 1.0, "spec": job["spec"]})
    for i in (1, 2):
        sm.apply({"id": f"n{i}", "type": "node.register", "time": 1.0, "node": {
            "id": f"n{i}", "name": f"n{i}", "token_hash": "h",
            "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}})
    plan = plan_work(snapshot(), job, reconcile_job(job, []))
    [entry] = plan.commands()
    assert set(entry["group_fields"]["g"]) >= {"task", "restart", "job_version", "priority"}
    assert all("task" not in a for a in entry["allocations"])
    result = sm.apply({"id": "plan", "time": 2.0, **entry})
    assert result["value"]["placed"] == 6
    stored = {a["id"]: a for a in sm.allocations.values()}
    for planned in plan.allocations:
        record = stored[planned["id"]]
        assert {k: record[k] for k in planned} == planned
