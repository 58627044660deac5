"""Which pending job is planned first: DRF across queues, quotas hold work back."""

from __future__ import annotations

from federation.scheduler.order import order_jobs
from federation.scheduler.reconcile import GroupWork, JobWork
from federation.scheduler.snapshot import Snapshot
from federation.scheduler.types import AllocationView, NodeView, Resources


def node() -> NodeView:
    return NodeView(id="n", capacity=Resources(10_000, 10_000))


def pending(job_id: str, queue: str, cpu: int, count: int = 1, priority: int = 50):
    job = {"id": job_id, "create_index": 1, "spec": {
        "queue": queue, "priority": priority,
        "groups": [{"name": "g", "resources": {"cpu": cpu, "memory": 1}}]}}
    return job, JobWork(job_id, [GroupWork("g", place=list(range(count)))])


def snapshot(used_by: dict[str, int]) -> Snapshot:
    allocs = tuple(AllocationView(f"a-{job}", job, "g", "n", Resources(cpu, 1))
                   for job, cpu in used_by.items())
    return Snapshot((node(),), allocs, {}, {})


def test_the_queue_with_the_smaller_share_goes_first() -> None:
    busy = pending("busy-next", "busy", 100)
    idle = pending("idle-first", "idle", 100)
    ordered, held = order_jobs([busy, idle], [], snapshot({"running": 5000}),
                               {"running": "busy", "busy-next": "busy", "idle-first": "idle"})
    assert [job["id"] for job, _ in ordered] == ["idle-first", "busy-next"]
    assert held == {}


def test_weights_scale_a_queues_share() -> None:
    heavy = pending("heavy", "heavy", 100)
    light = pending("light", "light", 100)
    records = [{"spec": {"name": "heavy", "weight": 4.0, "quota": None}}]
    used = snapshot({"h-run": 2000, "l-run": 1000})
    queue_of = {"h-run": "heavy", "l-run": "light", "heavy": "heavy", "light": "light"}
    ordered, _ = order_jobs([light, heavy], records, used, queue_of)
    assert ordered[0][0]["id"] == "heavy"  # 0.2 / 4 = 0.05 < 0.1


def test_work_past_a_quota_is_held_with_a_reason() -> None:
    records = [{"spec": {"name": "q", "weight": 1.0,
                         "quota": {"cpu": 1000, "memory": 100, "gpu": 0}}}]
    ordered, held = order_jobs([pending("big", "q", 600, count=2)], records, snapshot({}),
                               {"big": "q"})
    assert ordered == []
    assert "quota" in held["big"]


def test_jobs_with_nothing_to_place_are_not_ordered_away() -> None:
    job = {"id": "stops-only", "spec": {"queue": "q", "groups": [
        {"name": "g", "resources": {"cpu": 1, "memory": 1}}]}}
    work = JobWork("stops-only", [GroupWork("g", stop=["x"])])
    ordered, held = order_jobs([(job, work)], [], snapshot({}), {})
    assert [j["id"] for j, _ in ordered] == ["stops-only"] and held == {}
