"""One autoscaler decision from one snapshot: scale-up for pending demand, then scale-down of
quiet nodes that the scale-up did not just give work to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.autoscaler.planner import Plan, PoolState, Task, scale_up_and_busy_nodes
from federation.autoscaler.scaledown import Blocked, Occupancy, scale_down


@dataclass(frozen=True)
class Decision:
    plan: Plan
    blocked: tuple[Blocked, ...] = ()  # nodes that qualify for release but must stay


def decide(
    demand: Sequence[Task],
    pools: Sequence[PoolState],
    *,
    now: float,
    occupancy: Occupancy | None = None,
) -> Decision:
    """Scale-up for ``demand`` and scale-down, with the reasons nodes stay."""
    up, busy = scale_up_and_busy_nodes(demand, pools)
    down = scale_down(pools, now=now, keep=busy, occupancy=occupancy)
    return Decision(
        Plan(
            scale_up=up.scale_up,
            scale_down=down.release,
            unplaceable=up.unplaceable,
            covered=up.covered,
        ),
        down.blocked,
    )


def plan(
    demand: Sequence[Task],
    pools: Sequence[PoolState],
    *,
    now: float,
    occupancy: Occupancy | None = None,
) -> Plan:
    """Scale-up for ``demand`` and scale-down of quiet nodes, from one snapshot."""
    return decide(demand, pools, now=now, occupancy=occupancy).plan
