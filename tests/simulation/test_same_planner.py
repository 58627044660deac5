"""``federation simulate`` is the scheduler: replaying a trace gives the placements that one
scheduling pass over a real state machine's snapshot commits for the same jobs."""

from __future__ import annotations

from federation import simulation as sim
from federation.scheduler.feasibility import Usage
from federation.scheduler.fragmentation import build_profile
from federation.scheduler.jobplan import plan_work
from federation.scheduler.reconcile import reconcile_job
from federation.scheduler.snapshot import take
from federation.simulation.replay import _Jobs
from federation.specs.job import validate_job
from federation.state.machine import StateMachine

MACHINES = """machine_id,cpu_milli,memory_mib,num_gpu,gpu_model
m0,32000,65536,4,T4
m1,16000,65536,2,V100
m2,8000,32768,1,V100
m3,32000,131072,0,
"""
TASKS = "task_id,cpu_milli,memory_mib,num_gpu,gpu_milli_per_gpu\n" + "".join(
    f"t{i},{cpu},{mem},{gpus},{milli}\n" for i, (cpu, mem, gpus, milli) in enumerate(
        [(4000, 8192, 1, 1000), (2000, 4096, 1, 500), (2000, 4096, 1, 300),
         (8000, 8192, 2, 1000), (6000, 2048, 0, 0), (1000, 1024, 1, 700),
         (3000, 4096, 1, 460), (12000, 8192, 0, 0), (2000, 2048, 1, 460),
         (16000, 16384, 1, 1000), (1000, 1024, 1, 250), (4000, 4096, 0, 0)]))


def test_simulate_places_as_a_scheduling_pass_over_the_state_does() -> None:
    machines, tasks = sim.parse_machines(MACHINES), sim.parse_tasks(TASKS)
    profile = build_profile(t.shape for t in tasks)
    simulated = sim.run(machines, tasks, profile=profile)

    sm = StateMachine()
    for m in machines:
        sm.apply({"id": f"n-{m.machine_id}", "type": "node.register", "time": 1.0, "node": {
            "id": m.machine_id, "name": m.machine_id, "token_hash": "h",
            "labels": {"gpu_model": m.gpu_model} if m.gpu_model else {},
            "capacity": {"cpu_milli": m.cpu_milli, "memory_mib": m.memory_mib,
                         "gpu": m.num_gpu}}})
    jobs = _Jobs()
    for seq, task in enumerate(tasks):
        job, _ = jobs.job_of(seq, task)
        result = sm.apply({"id": f"j{seq}", "type": "job.register", "time": 1.0,
                           "spec": validate_job(job["spec"])})
        assert result["ok"], result
    # One pass: every job against one snapshot plus the overlay, each plan committed.
    snapshot = take(sm)
    overlay = Usage()
    for seq in range(len(tasks)):
        job = sm.jobs[f"task-{seq}"]
        plan = plan_work(snapshot, job, reconcile_job(job, ()), usage=overlay,
                         profile=profile, preempt=False)
        overlay = plan.usage
        assert sm.apply({"id": f"p{seq}", "time": 2.0, **plan.command()})["ok"]
    committed = {}
    for alloc in sm.allocations.values():
        seq = int(alloc["job_id"].removeprefix("task-"))
        committed[seq] = (alloc["node_id"], tuple(alloc["resources"]["gpu_devices"]))
    replayed = {p.seq: (p.node_id, p.gpus) for p in simulated.placements if p.node_id}
    assert committed == replayed
    assert len(committed) >= 10
