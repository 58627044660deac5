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


def cpu_job(job_id: str, cpu: int) -> dict:
    return {"id": job_id, "version": 1, "stopped": False, "spec": {
        "id": job_id, "type": "batch", "priority": 50, "groups": [{
            "name": "g", "count": 1, "resources": {"cpu": cpu, "memory": 1024},
            "task": {"command": ["true"]}}]}}


def test_cpu_only_work_on_gpu_nodes_is_ranked_against_the_mix_too() -> None:
    # "gpu" runs one half-GPU task taking 2 cores of its 8; "cpu" has 32 cores and no GPU.
    # Packing by CPU alone puts a 5-core task on "gpu" (fuller afterwards), leaving it 1 core:
    # its free half GPU is stranded for the 2-core half-GPU tasks the cluster runs.
    nodes = (NodeView("gpu", Resources(8000, 65536, gpu=1), Resources(2000, 1024),
                      gpu_used_milli=(500,)),
             NodeView("cpu", Resources(32000, 65536)))
    running = (AllocationView("a", "other", "g", "gpu", Resources(2000, 1024,
                                                                   gpu_share_milli=500)),)
    snapshot = Snapshot(nodes, running, {}, {})
    job = cpu_job("batch-cpu", 5000)
    work = reconcile_job(job, [])
    assert plan_work(snapshot, job, work).allocations[0]["node_id"] == "gpu"
    profile = pass_profile(snapshot, [(job, work)])
    assert profile is not None
    chosen = plan_work(snapshot, job, work, profile=profile).allocations[0]["node_id"]
    assert chosen == "cpu"


def test_no_profile_where_no_node_has_a_gpu_or_nothing_is_placed() -> None:
    job = cpu_job("cpu", 1000)
    without_gpus = Snapshot((NodeView("n", Resources(8000, 8192)),), (), {}, {})
    assert pass_profile(without_gpus, [(job, reconcile_job(job, []))]) is None
    assert pass_profile(cluster(), []) is None
