"""The one fit check, reason by reason, and the plan applier's per-node re-check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.model import AllocationView, Constraint, ConstraintCache, NodeView, Resources
from federation.model.fit import admission, node_takes, per_node_limit, rejection
from federation.model.usage import Usage


def node(**kw) -> NodeView:
    return NodeView(kw.pop("id", "n1"), Resources(4000, 4096, kw.pop("gpus", 2)), **kw)


ASK = Resources(1000, 512, gpu_share_milli=600)


@pytest.mark.parametrize(("view", "constraints", "limit", "here", "ask", "reason"), [
    (node(), (), None, 0, ASK, None),
    (node(status="down"), (), None, 0, ASK, "filter:status down"),
    (node(draining=True), (), None, 0, ASK, "filter:draining"),
    (node(zone="a"), (Constraint("zone", "=", "b"),), None, 0, ASK, "filter:constraint zone = b"),
    (node(), (), per_node_limit(True, None), 1, ASK, "filter:distinct_hosts"),
    (node(), (), per_node_limit(False, 2), 1, ASK, None),
    (node(), (), None, 0, Resources(5000, 1), "resource:cpu"),
    (node(), (), None, 0, Resources(1, 5000), "resource:memory"),
    (node(), (), None, 0, Resources(gpu=3), "resource:gpu"),
    (node(gpu_used_milli=(500, 500)), (), None, 0, ASK, "resource:gpu_share"),
])
def test_rejection_reasons(view, constraints, limit, here, ask, reason) -> None:
    limit_reason = "distinct_hosts" if limit == 1 else "max_per_node"
    got = rejection(view, ask, Usage(), ConstraintCache(constraints), limit, here,
                    limit_reason=limit_reason)
    assert got == reason


def test_the_plan_check_refuses_a_device_without_room_for_the_share() -> None:
    n = node(gpu_used_milli=(500, 0))
    assert not node_takes(n, [("j", "g", ASK, (0,))])
    assert node_takes(n, [("j", "g", ASK, (1,))])
    # Two shares of 0.6 cannot both go on device 1.
    assert not node_takes(n, [("j", "g", ASK, (1,)), ("j", "g", ASK, (1,))])


def test_the_plan_check_counts_what_the_plan_frees() -> None:
    n = node(gpu_used_milli=(1000, 1000))
    victim = AllocationView("v", "other", "g", "n1", Resources(gpu=1), 10, (0,))
    assert not node_takes(n, [("j", "g", Resources(gpu=1), (0,))])
    assert node_takes(n, [("j", "g", Resources(gpu=1), (0,))], [victim])


def test_the_plan_check_wants_the_right_number_of_distinct_devices() -> None:
    two = Resources(gpu=2)
    assert not node_takes(node(), [("j", "g", two, (0, 0))])
    assert not node_takes(node(), [("j", "g", two, (0,))])
    assert node_takes(node(), [("j", "g", two, (0, 1))])


@settings(max_examples=1000, deadline=None)
@given(
    status=st.sampled_from(["ready", "down"]), draining=st.booleans(),
    zone=st.sampled_from(["a", "b"]), gpus=st.integers(0, 2),
    gpu_used=st.lists(st.sampled_from([0, 100, 400, 700, 1000]), min_size=2, max_size=2),
    # Coarse steps, so that asks meet the free room exactly as often as they miss it.
    cpu_used=st.sampled_from(range(0, 5001, 500)),
    memory_used=st.sampled_from(range(0, 5121, 512)),
    ask_cpu=st.sampled_from([*range(0, 4001, 500), *range(1, 4001, 500)]),
    ask_memory=st.sampled_from([*range(0, 4097, 512), *range(1, 4097, 512)]),
    ask_gpu=st.sampled_from([(0, 0), (1, 0), (2, 0), (0, 300), (0, 900)]),
    constraints=st.sampled_from([(), (Constraint("zone", "=", "a"),),
                                 (Constraint("node.id", "!=", "n1"),)]),
    limit=st.sampled_from([None, 1, 2]), here=st.integers(0, 3),
    overlay_cpu=st.sampled_from([0, 500, 1000]), overlay_memory=st.sampled_from([0, 512, 1024]),
)
def test_the_bound_admission_answers_as_the_fit_check_does(
        status, draining, zone, gpus, gpu_used, cpu_used, memory_used, ask_cpu, ask_memory,
        ask_gpu, constraints, limit, here, overlay_cpu, overlay_memory) -> None:
    view = NodeView("n1", Resources(4000, 4096, gpus), Resources(cpu_used, memory_used),
                    tuple(gpu_used[:gpus]), zone=zone, status=status, draining=draining)
    ask = Resources(ask_cpu, ask_memory, ask_gpu[0], ask_gpu[1])
    usage = Usage({"n1": overlay_cpu}, {"n1": overlay_memory})
    expected = rejection(view, ask, usage, ConstraintCache(constraints), limit, here) is None
    admits = admission(ask, usage, ConstraintCache(constraints), limit, lambda _: here)
    assert admits(view) is expected
