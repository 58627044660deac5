"""Planning a group or a job: counts, gang, explanations, preemption."""

from __future__ import annotations

from collections import Counter

from federation.scheduler.nodeset import NodeSet
from federation.scheduler.planner import plan_group, plan_job
from federation.scheduler.types import AllocationView, Constraint, Resources, Spread
from tests.scheduler.helpers import group, node


def test_all_instances_are_placed_when_they_fit():
    nodes = [node("a"), node("b")]
    placements, evictions, report, _ = plan_group(nodes, group(count=6))
    assert len(placements) == 6 and report is None and evictions == []
    assert [p.index for p in placements] == list(range(6))


def test_unplaced_instances_are_explained():
    nodes = [node("a", cpu=1000), node("gcp", provider="gcp")]
    g = group(count=3, cpu=500, constraints=(Constraint("provider", "!=", "gcp"),))
    placements, _, report, _ = plan_group(nodes, g)
    assert len(placements) == 2
    assert report is not None and report.unplaced == 1
    assert report.filtered == {"constraint provider != gcp": 1}
    assert report.exhausted == {"cpu": 1}
    assert "1 unplaced" in report.explain()


def test_an_impossible_gang_places_nothing_and_says_why():
    g = group(count=3, cpu=3000, gang=True)
    placements, _, report, usage = plan_group([node("a"), node("b")], g)
    assert placements == []
    assert report is not None and report.gang_incomplete and report.unplaced == 3
    assert usage.cpu_milli == {}


def test_a_possible_gang_places_every_instance():
    placements, _, report, _ = plan_group(
        [node("a"), node("b")], group(count=2, cpu=3000, gang=True)
    )
    assert len(placements) == 2 and report is None


def test_groups_of_one_job_see_each_others_placements():
    plan = plan_job([node("a", cpu=2000)], [group(name="x", cpu=1500), group(name="y", cpu=1000)])
    assert [p.group for p in plan.placements] == ["x"]
    assert plan.unplaced["y"].exhausted == {"cpu": 1}


def test_spread_balances_instances_across_racks():
    nodes = [node(f"{r}{i}", cpu=64000, mem=65536, rack=r) for r in "abc" for i in range(2)]
    placements, _, _, _ = plan_group(nodes, group(count=6, spread=Spread("rack")), sampling=False)
    racks = sorted(p.node_id[0] for p in placements)
    assert racks == ["a", "a", "b", "b", "c", "c"]


def test_sampled_spread_balances_a_large_group_across_zones():
    nodes = [node(f"{z}{i}", cpu=64000, mem=65536, zone=z) for z in "xyz" for i in range(20)]
    placements, _, report, _ = plan_group(nodes, group(count=60, spread=Spread("zone")), seed=3)
    assert report is None
    per_zone = Counter(p.node_id[0] for p in placements)
    assert per_zone == {"x": 20, "y": 20, "z": 20}


def test_sampled_large_batch_group_fills_nodes_before_opening_others():
    nodes = [node(f"n{i:02d}", cpu=4000, mem=8192) for i in range(40)]
    placements, _, _, usage = plan_group(nodes, group(count=200, cpu=500, job_type="batch"))
    assert len(placements) == 200
    assert len(usage.cpu_milli) == 25  # 8 instances of 500m fill a 4000m node
    assert all(used == 4000 for used in usage.cpu_milli.values())


def test_sampled_services_spread_over_nodes_as_their_count_asks():
    nodes = [node(f"n{i:02d}", cpu=64000, mem=65536) for i in range(40)]
    placements, _, _, _ = plan_group(nodes, group(count=4, cpu=100, mem=64), seed=1)
    assert len({p.node_id for p in placements}) > 1  # anti-affinity among the job's own


def test_a_node_set_is_planned_like_the_plain_list_it_holds():
    nodes = [node(f"n{i:02d}", cpu=2000 + 500 * (i % 3), zone=f"z{i % 2}") for i in range(30)]
    g = group(count=25, spread=Spread("zone"))
    from_list = plan_group(nodes, g, seed=7)[0]
    from_set = plan_group(NodeSet(nodes), g, seed=7)[0]
    assert from_list == from_set


def test_preemption_evicts_the_fewest_lowest_priority_allocations():
    n = node("a", cpu=4000, allocated=Resources(4000, 0))
    allocs = [
        AllocationView("low-small", "j1", "g", "a", Resources(1000, 0), priority=10),
        AllocationView("low-big", "j2", "g", "a", Resources(2000, 0), priority=10),
        AllocationView("mid", "j3", "g", "a", Resources(1000, 0), priority=40),
    ]
    placements, evictions, report, _ = plan_group(
        [n], group(cpu=2000, mem=0, priority=80, job_id="urgent"), allocs, preempt=True
    )
    assert report is None and len(placements) == 1
    assert [e.allocation_id for e in evictions] == ["low-big"]


def test_preemption_never_evicts_equal_or_higher_priority():
    n = node("a", cpu=2000, allocated=Resources(2000, 0))
    allocs = [AllocationView("same", "j1", "g", "a", Resources(2000, 0), priority=50)]
    placements, evictions, report, _ = plan_group(
        [n], group(cpu=1000, mem=0, priority=50, job_id="other"), allocs, preempt=True
    )
    assert placements == [] and evictions == [] and report is not None


def test_planning_does_not_mutate_its_inputs():
    nodes = [node("a")]
    allocs = [AllocationView("x", "j", "g", "a", Resources(100, 0))]
    before = (list(nodes), list(allocs))
    plan_group(nodes, group(count=2), allocs)
    assert (nodes, allocs) == before


def test_verify_plan_accepts_nodes_that_still_fit():
    from federation.scheduler.planner import verify_plan

    nodes = [node("a", cpu=2000), node("b", cpu=2000)]
    plan = plan_job(nodes, [group(count=2, cpu=1000, distinct_hosts=True)])
    accepted, rejected = verify_plan(plan, nodes)
    assert rejected == [] and len(accepted.placements) == 2


def test_verify_plan_rejects_a_node_that_filled_up_or_went_away_meanwhile():
    from federation.scheduler.planner import verify_plan

    nodes = [node("a", cpu=2000), node("b", cpu=2000)]
    plan = plan_job(nodes, [group(count=2, cpu=1000, distinct_hosts=True)])
    newer = [node("a", cpu=2000, allocated=Resources(1500, 0)), node("b", cpu=2000, status="down")]
    accepted, rejected = verify_plan(plan, newer)
    assert accepted.placements == [] and rejected == ["a", "b"]


def test_verify_plan_rejects_a_gpu_device_taken_meanwhile():
    from federation.scheduler.planner import verify_plan

    nodes = [node("g", gpu=2)]
    plan = plan_job(nodes, [group(cpu=100, share=600)])
    device = plan.placements[0].gpu_devices[0]
    used = tuple(700 if d == device else 0 for d in range(2))
    accepted, rejected = verify_plan(plan, [node("g", gpu=2, gpu_used_milli=used)])
    assert rejected == ["g"]
