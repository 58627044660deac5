"""The autoscaler and the scheduler use one fit check: what the autoscaler counts as covered
by existing nodes is what the scheduler places there, so no job waits for capacity the
autoscaler believes exists."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from federation import model
from federation.autoscaler import observe
from federation.autoscaler.planner import Node, PoolState, Resources, Task, plan_scale_up
from federation.providers.base import InstanceType
from federation.scheduler.jobplan import plan_work
from federation.scheduler.reconcile import reconcile_job
from federation.scheduler.snapshot import Snapshot
from federation.specs.pool import PoolSpec
from federation.state.machine import StateMachine

TYPES = (InstanceType("m5.xlarge", 4000, 16384, 0, 0.192, None, ("us-east-1a",)),
         InstanceType("g5.2xlarge", 8000, 32768, 2, 1.2, None, ("us-east-1a",)))


def spec(max_nodes: int) -> PoolSpec:
    return PoolSpec(name="p", provider="aws", region="us-east-1", max_nodes=max_nodes)


nodes_strategy = st.lists(st.tuples(
    st.sampled_from([2000, 4000, 8000]),          # cpu
    st.sampled_from([4096, 16384]),               # memory
    st.integers(0, 2),                            # GPUs
    st.sampled_from(["a", "b"]),                  # zone
    st.lists(st.sampled_from([0, 300, 500, 1000]), min_size=2, max_size=2),  # used per GPU
    st.integers(0, 2),                            # the group's instances already there
), min_size=1, max_size=4)

group_strategy = st.fixed_dictionaries({
    "count": st.integers(1, 8),
    "cpu": st.sampled_from([250, 500, 1500]),
    "memory": st.sampled_from([256, 2048]),
    "gpu": st.sampled_from([0, 0.25, 0.46, 0.5, 0.7, 1, 2]),
    "distinct_hosts": st.booleans(),
    "max_per_node": st.sampled_from([None, 1, 2]),
    "constraint": st.sampled_from([None, ("zone", "=", "a"), ("zone", "!=", "b"),
                                   ("instance_type", "regex", "^g5")]),
})


def job_of(g: dict, existing: int) -> dict:
    group = {"name": "g", "count": existing + g["count"],
             "resources": {"cpu": g["cpu"], "memory": g["memory"], "gpu": g["gpu"]},
             "distinct_hosts": g["distinct_hosts"], "max_per_node": g["max_per_node"],
             "constraints": [] if g["constraint"] is None else [
                 dict(zip(("attribute", "operator", "value"), g["constraint"], strict=True))],
             "task": {"command": ["true"]}}
    return {"id": "j", "version": 1, "stopped": False,
            "spec": {"id": "j", "type": "batch", "priority": 50, "groups": [group]}}


@settings(max_examples=150, deadline=None)
@given(nodes_strategy, group_strategy)
def test_what_the_autoscaler_counts_as_covered_the_scheduler_places(raw_nodes, g) -> None:
    ask = model.Resources.from_spec({"cpu": g["cpu"], "memory": g["memory"], "gpu": g["gpu"]})
    views, planner_nodes, records, allocs = [], [], [], []
    for i, (cpu, memory, gpus, zone, used, mine) in enumerate(raw_nodes):
        node_id = f"n{i}"
        used = tuple(used[:gpus])
        mine = mine if cpu >= mine * g["cpu"] and memory >= mine * g["memory"] else 0
        allocated = model.Resources(mine * g["cpu"], mine * g["memory"])
        itype = "g5.2xlarge" if gpus else "m5.xlarge"
        views.append(model.NodeView(node_id, model.Resources(cpu, memory, gpus), allocated,
                                    used, provider="aws", pool="p", region="us-east-1",
                                    zone=zone, instance_type=itype))
        planner_nodes.append(Node(node_id, itype, Resources(cpu, memory, gpus),
                                  Resources(allocated.cpu_milli, allocated.memory_mib,
                                            sum(1 for u in used if u)),
                                  zone=zone, gpu_used_milli=used, groups={"j/g": mine}))
        for _ in range(mine):
            index = len(records)
            records.append({"id": f"a{index}", "group": "g", "index": index,
                            "node_id": node_id, "desired_status": "run",
                            "client_status": "running", "job_version": 1,
                            "create_index": index})
            allocs.append(model.AllocationView(f"a{index}", "j", "g", node_id,
                                               model.Resources(g["cpu"], g["memory"])))
    job = job_of(g, len(records))
    work = reconcile_job(job, records)
    placed = plan_work(Snapshot(tuple(views), tuple(allocs), {"j": tuple(records)}, {}),
                       job, work, preempt=False).allocations
    limit = model.fit.per_node_limit(g["distinct_hosts"], g["max_per_node"])
    demand = [Task("j/g", Resources(g["cpu"], g["memory"], math.ceil(g["gpu"])),
                   tuple(model.Constraint.from_spec(c)
                         for c in job["spec"]["groups"][0]["constraints"]),
                   ask=ask, max_per_node=limit) for _ in range(g["count"])]
    pools = [PoolState(spec(max_nodes=0), TYPES, tuple(planner_nodes))]
    covered = len(plan_scale_up(demand, pools).covered)
    assert len(placed) >= covered


def test_a_distinct_hosts_group_placed_one_of_three_makes_the_autoscaler_buy() -> None:
    sm = StateMachine()
    sm.apply({"id": "p", "type": "pool.apply", "time": 1.0,
              "spec": spec(max_nodes=5).model_dump(mode="json")})
    sm.apply({"id": "n", "type": "node.register", "time": 1.0, "node": {
        "id": "n1", "name": "n1", "token_hash": "h", "pool": "p", "provider": "aws",
        "region": "us-east-1", "zone": "us-east-1a", "instance_type": "m5.xlarge",
        "capacity": {"cpu_milli": 4000, "memory_mib": 16384, "gpu": 0}}})
    group = {"name": "g", "count": 3, "distinct_hosts": True,
             "resources": {"cpu": 500, "memory": 512, "gpu": 0},
             "task": {"command": ["sleep", "60"]}}
    sm.apply({"id": "j", "type": "job.register", "time": 1.0, "spec": {
        "id": "j", "type": "service", "priority": 50, "depends_on": [], "groups": [group]}})
    job = sm.jobs["j"]
    from federation.scheduler.snapshot import take
    snapshot = take(sm)
    plan = plan_work(snapshot, job, reconcile_job(job, ()))
    assert len(plan.allocations) == 1  # one per host, one host
    result = sm.apply({"id": "pl", "time": 2.0, **plan.command()})
    assert result["ok"], result
    # The node has room for two more by resources, but not by distinct_hosts.
    demand = observe.demand(sm)
    assert [(t.id, t.count, t.max_per_node) for t in demand] == [("j/g", 2, 1)]
    pools = [observe.pool_state(sm, spec(max_nodes=5), TYPES, {})]
    decision = plan_scale_up(demand, pools)
    assert decision.covered == ()
    assert sum(d.count for d in decision.scale_up) == 2
