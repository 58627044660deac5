"""The indexed ranking of GPU work makes exactly the choices of ranking node by node: same
nodes, same devices, same reasons when nothing fits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.model import Constraint, NodeView, Resources
from federation.scheduler.feasibility import Usage
from federation.scheduler.fragmentation import TaskShape, WorkloadProfile, build_profile
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.planner import plan_group
from federation.scheduler.types import TaskGroupDemand

PROFILES = {
    "none": None,
    "empty": WorkloadProfile.empty(),
    "mix": build_profile([TaskShape(8000, 1, 500)] * 5 + [TaskShape(4000, 1, 1000)] * 3
                         + [TaskShape(16000, 2, 1000)] + [TaskShape(2000)] * 2),
}

node_strategy = st.tuples(
    st.sampled_from([8000, 16000, 32000]), st.integers(0, 4),
    st.lists(st.sampled_from([0, 250, 500, 700, 1000]), min_size=4, max_size=4),
    st.sampled_from(["a", "b"]), st.sampled_from([0.0, 1.5]), st.sampled_from(["ready", "down"]))

ask_strategy = st.sampled_from([Resources(2000, 1024), Resources(4000, 1024, gpu=1),
                                Resources(1000, 512, gpu_share_milli=300),
                                Resources(6000, 512, gpu_share_milli=500),
                                Resources(8000, 2048, gpu=2)])


@settings(max_examples=120, deadline=None)
@given(st.lists(node_strategy, min_size=1, max_size=8), ask_strategy, st.integers(1, 12),
       st.sampled_from(sorted(PROFILES)), st.sampled_from([None, 1, 2]), st.booleans(),
       st.lists(st.tuples(st.integers(0, 7), ask_strategy), max_size=4))
def test_indexed_and_node_by_node_ranking_agree(raw, ask, count, profile_name, max_per_node,
                                                 zone_a, earlier) -> None:
    nodes = NodeSet([
        NodeView(f"n{i}", Resources(cpu, 65536, gpus), gpu_used_milli=tuple(used[:gpus]),
                 zone=zone, price_per_hour=price, status=status)
        for i, (cpu, gpus, used, zone, price, status) in enumerate(raw)])
    profile = PROFILES[profile_name]
    group = TaskGroupDemand("j", "g", count, ask, max_per_node=max_per_node, job_type="batch",
                            constraints=(Constraint("zone", "=", "a"),) if zone_a else ())
    # An overlay from plans made earlier in the pass.
    usage = Usage()
    for n, (i, res) in enumerate(earlier):
        prior = TaskGroupDemand(f"p{n}", "g", 1, res, job_type="batch")
        _, _, _, usage = plan_group(nodes[i % len(nodes):i % len(nodes) + 1], prior,
                                    usage=usage, profile=profile)
    fast = plan_group(nodes, group, usage=usage, profile=profile)
    slow = plan_group(nodes, group, usage=usage, profile=profile, indexed=False)
    if ask.gpu_milli or (profile is not None and nodes.has_gpus()):  # the index was used
        assert fast[3].index is not None
    assert [(p.node_id, p.gpu_devices) for p in fast[0]] == \
        [(p.node_id, p.gpu_devices) for p in slow[0]]
    if slow[2] is None:
        assert fast[2] is None
    else:
        assert fast[2] is not None and fast[2].to_dict() == slow[2].to_dict()
    assert fast[3].cpu_milli == slow[3].cpu_milli and fast[3].gpu_milli == slow[3].gpu_milli
