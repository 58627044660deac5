"""One autoscaler decision from one snapshot: scale-up for pending demand, then scale-down of
idle nodes that the scale-up did not just give work to."""

from __future__ import annotations

from collections.abc import Sequence

from federation.autoscaler.planner import Plan, PoolState, Task, scale_up_and_busy_nodes
from federation.autoscaler.scaledown import plan_scale_down


def plan(demand: Sequence[Task], pools: Sequence[PoolState], *, now: float) -> Plan:
    """Scale-up for ``demand`` and scale-down of idle nodes, from one snapshot."""
    up, busy = scale_up_and_busy_nodes(demand, pools)
    down = plan_scale_down(pools, now=now, keep=busy)
    return Plan(
        scale_up=up.scale_up,
        scale_down=tuple(down),
        unplaceable=up.unplaceable,
        covered=up.covered,
    )
