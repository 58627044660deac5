"""Properties that hold for any cluster and any demand (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.scheduler.feasibility import constraint_holds
from federation.scheduler.fragmentation import TaskShape, build_profile
from federation.scheduler.planner import plan_group
from federation.scheduler.types import (
    MILLI_PER_GPU,
    AllocationView,
    Constraint,
    NodeView,
    Resources,
    TaskGroupDemand,
)

PROFILE = build_profile([TaskShape(2000, 1, 500), TaskShape(4000, 1, 1000), TaskShape(1000)])


@st.composite
def nodes(draw):
    count = draw(st.integers(1, 8))
    out = []
    for i in range(count):
        gpus = draw(st.integers(0, 4))
        used = tuple(draw(st.sampled_from([0, 0, 250, 500, 900, 1000])) for _ in range(gpus))
        cap = Resources(draw(st.sampled_from([2000, 8000, 32000])), 16384, gpus)
        out.append(
            NodeView(
                id=f"n{i}",
                capacity=cap,
                allocated=Resources(draw(st.sampled_from([0, 1000])), 0),
                gpu_used_milli=used,
                provider=draw(st.sampled_from(["aws", "gcp", "onprem"])),
                zone=draw(st.sampled_from(["z1", "z2"])),
                status=draw(st.sampled_from(["ready", "ready", "ready", "down"])),
                draining=draw(st.booleans()),
                price_per_hour=draw(st.sampled_from([0.0, 0.3])),
            )
        )
    return out


@st.composite
def groups(draw):
    kind = draw(st.sampled_from(["cpu", "whole", "share"]))
    res = Resources(
        draw(st.sampled_from([500, 1500, 4000])),
        draw(st.sampled_from([256, 4096])),
        gpu=draw(st.integers(1, 2)) if kind == "whole" else 0,
        gpu_share_milli=draw(st.sampled_from([100, 400, 700])) if kind == "share" else 0,
    )
    constraints = draw(
        st.lists(
            st.sampled_from(
                [
                    Constraint("provider", "!=", "gcp"),
                    Constraint("zone", "in", ("z1",)),
                    Constraint("provider", "regex", "^(aws|onprem)$"),
                ]
            ),
            max_size=2,
        )
    )
    return TaskGroupDemand(
        job_id="j",
        name="g",
        count=draw(st.integers(1, 12)),
        resources=res,
        constraints=tuple(constraints),
        distinct_hosts=draw(st.booleans()),
        gang=draw(st.booleans()),
        job_type=draw(st.sampled_from(["batch", "service"])),
    )


def _plan(ns, g, **kw):
    return plan_group(ns, g, profile=PROFILE, **kw)


@settings(max_examples=150, deadline=None)
@given(nodes(), groups())
def test_no_node_is_ever_over_committed(ns, g):
    placements, _, _, _ = _plan(ns, g)
    by_id = {n.id: n for n in ns}
    for n in ns:
        mine = [p for p in placements if p.node_id == n.id]
        cpu = n.allocated.cpu_milli + sum(p.resources.cpu_milli for p in mine)
        mem = n.allocated.memory_mib + sum(p.resources.memory_mib for p in mine)
        assert cpu <= n.capacity.cpu_milli and mem <= n.capacity.memory_mib
        used = list(by_id[n.id].gpu_used)
        for p in mine:
            per = p.resources.gpu_share_milli or MILLI_PER_GPU
            wanted = p.resources.gpu or (1 if p.resources.gpu_share_milli else 0)
            assert len(p.gpu_devices) == wanted
            for d in p.gpu_devices:
                used[d] += per
        assert all(u <= MILLI_PER_GPU for u in used)


@settings(max_examples=150, deadline=None)
@given(nodes(), groups())
def test_constraints_status_and_distinct_hosts_always_hold(ns, g):
    placements, _, _, _ = _plan(ns, g)
    by_id = {n.id: n for n in ns}
    for p in placements:
        n = by_id[p.node_id]
        assert n.status == "ready" and not n.draining
        assert all(constraint_holds(c, n) for c in g.constraints)
    if g.distinct_hosts:
        assert len({p.node_id for p in placements}) == len(placements)


@settings(max_examples=150, deadline=None)
@given(nodes(), groups())
def test_a_gang_is_placed_all_or_nothing(ns, g):
    placements, _, report, _ = _plan(ns, g)
    if g.gang:
        assert len(placements) in (0, g.count)
        assert (report is None) == (len(placements) == g.count)
    else:
        assert (report is None) == (len(placements) == g.count)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.sampled_from([500, 1000, 2000])), max_size=6),
    st.integers(0, 100),
    st.sampled_from([500, 1500, 3000]),
)
def test_preemption_only_ever_evicts_lower_priority(existing, priority, cpu):
    total = sum(c for _, c in existing)
    n = NodeView("n", Resources(max(total, 4000), 8192), allocated=Resources(total, 0))
    allocs = [
        AllocationView(f"a{i}", f"j{i}", "g", "n", Resources(c, 0), priority=p)
        for i, (p, c) in enumerate(existing)
    ]
    g = TaskGroupDemand("new", "g", 1, Resources(cpu, 0), priority=priority)
    placements, evictions, _, _ = plan_group([n], g, allocs, preempt=True)
    by_id = {a.id: a for a in allocs}
    assert all(by_id[e.allocation_id].priority < priority for e in evictions)
    if placements:
        freed = sum(by_id[e.allocation_id].resources.cpu_milli for e in evictions)
        assert total - freed + cpu <= n.capacity.cpu_milli
    else:
        assert evictions == []
