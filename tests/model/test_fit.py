"""The one fit check, reason by reason, and the plan applier's per-node re-check."""

from __future__ import annotations

import pytest

from federation.model import AllocationView, Constraint, ConstraintCache, NodeView, Resources
from federation.model.fit import node_takes, per_node_limit, rejection
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
