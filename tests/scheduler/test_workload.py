"""The production scheduler ranks GPU placements against the live and pending task mix."""

from __future__ import annotations

from federation.model import AllocationView
from federation.scheduler.jobplan import plan_work
from federation.scheduler.reconcile import reconcile_job
from federation.scheduler.snapshot import Snapshot
from federation.scheduler.types import NodeView, Resources
from federation.scheduler.workload import pass_profile, profile_of

HALF = Resources(1000, 1024, gpu_share_milli=500)


def share_job(job_id: str, milli: int, count: int = 1) -> dict:
    return {"id": job_id, "version": 1, "stopped": False, "spec": {
        "id": job_id, "type": "batch", "priority": 50, "groups": [{
            "name": "g", "count": count,
            "resources": {"cpu": 1000, "memory": 1024, "gpu": milli / 1000},
            "task": {"command": ["true"]}}]}}


def cluster(running: tuple[AllocationView, ...] = ()) -> Snapshot:
    # "tight" has 0.6 of its GPU free, "roomy" a whole free GPU.
    nodes = (NodeView("roomy", Resources(32000, 65536, gpu=1)),
             NodeView("tight", Resources(32000, 65536, gpu=1), gpu_used_milli=(400,)))
    return Snapshot(nodes, running, {}, {})


def test_a_share_avoids_stranding_gpu_the_workload_could_use() -> None:
    # A 0.3 share on "tight" leaves 0.3 there, which no 0.5 task can use; on "roomy" it
    # leaves 0.7, which one can. Tightest fit picks "tight"; against a mix of 0.5 tasks the
    # scheduler picks "roomy".
    job = share_job("small", 300)
    work = reconcile_job(job, [])
    assert plan_work(cluster(), job, work).allocations[0]["node_id"] == "tight"
    profile = profile_of({HALF: 20, Resources(1000, 1024, gpu_share_milli=300): 1})
    chosen = plan_work(cluster(), job, work, profile=profile).allocations[0]["node_id"]
    assert chosen == "roomy"


def test_the_pass_profile_is_the_live_and_pending_mix() -> None:
    running = tuple(AllocationView(f"a{i}", "other", "g", "roomy", HALF) for i in range(3))
    job = share_job("small", 300, count=2)
    profile = pass_profile(cluster(running), [(job, reconcile_job(job, []))])
    assert profile is not None
    # Two shapes, weighted by instances: three 0.5 shares live, two 0.3 shares pending.
    assert sorted(profile.need_max.tolist()) == [300, 500]
    weights = dict(zip(profile.need_max.tolist(), profile.weight.tolist(), strict=True))
    assert weights[500] > weights[300]


def test_a_pass_without_gpu_work_builds_no_profile() -> None:
    job = share_job("cpu", 0)
    assert pass_profile(cluster(), [(job, reconcile_job(job, []))]) is None
